"""The benchmark's commands as functions: each builds a report dict (see ``report``).

``Session`` is the broker the runs talk to (its own ``LocalBroker`` unless ``--bootstrap``), a
progress bar on stderr, and fresh topic names per run (so runs can repeat against one broker).
Throughput runs repeat ``--repeat`` times and report the median run (``stats.median_run``);
the RSS of every worker is sampled during each run (``memory.RssSampler``).
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from typing import Any, Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from kbroker.cli.bench import report as report_mod
from kbroker.cli.bench import stats, workloads
from kbroker.cli.bench.broker import LocalBroker
from kbroker.cli.bench.memory import RssSampler
from kbroker.cli.bench.options import MAX_IN_FLIGHT, PACE_MS, BenchOptions

__all__ = ["Session", "run_produce", "run_consume", "run_latency", "run_all", "new_report"]


class Session:
    def __init__(self, opts: BenchOptions, console: Console) -> None:
        self.opts = opts
        self.console = console
        self.broker: LocalBroker | None = None
        self._run_id = uuid.uuid4().hex[:6]
        self._topics = 0

    def __enter__(self) -> Session:
        if self.opts.bootstrap is None:
            with self.console.status(f"starting a {self.opts.workers}-worker broker", spinner="dots"):
                self.broker = LocalBroker(self.opts.workers)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.broker is not None:
            self.broker.stop()

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap if self.broker is not None else str(self.opts.bootstrap)

    def workers(self) -> dict[int, int]:
        """Worker id -> pid of the live workers (RSS is read where those pids are local)."""
        from kbroker import Admin

        with Admin(self.bootstrap, timeout=30) as admin:
            return {w.id: w.pid for w in admin.describe_cluster() if w.alive}

    def topic(self, kind: str, partitions: int, replication_factor: int) -> str:
        self._topics += 1
        name = f"bench-{self._run_id}-{kind}-{self._topics}"
        workloads.create_topic(self.bootstrap, name, partitions, replication_factor)
        return name

    def broker_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"bootstrap": self.bootstrap, "own": self.broker is not None}
        if self.broker is not None:
            info.update(workers=self.broker.workers, startup_s=self.broker.startup_s,
                        reported_ready_s=self.broker.reported_ready_s)  # fmt: skip
        else:
            info["workers"] = len(self.workers())
        return info

    @contextlib.contextmanager
    def progress(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=self.console, transient=True, disable=not self.console.is_terminal,
        )  # fmt: skip
        with bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)


def _load1() -> float:
    """The 1-minute load average when a run ends (the machine is shared: it explains outliers)."""
    return round(os.getloadavg()[0], 2)


def new_report(command: str, opts: BenchOptions, session: Session) -> dict[str, Any]:
    options = {k: v for k, v in vars(opts).items() if k != "bootstrap"}
    return {"command": command, "machine": report_mod.machine_info(), "options": options,
            "broker": session.broker_info(), "results": [], "comparison": [], "notes": []}  # fmt: skip


def _label(kind: str, opts: BenchOptions) -> str:
    acks = "all" if opts.acks_value == "all" else opts.acks_value
    extra = f", {opts.producers} producers" if kind == "produce" and opts.producers > 1 else ""
    extra += f", {opts.consumers} consumers" if kind == "consume" and opts.consumers > 1 else ""
    extra += f", {opts.compression}" if opts.compression != "none" else ""
    extra += f", send_many {opts.send_many}" if kind == "produce" and opts.send_many else ""
    extra += f", max_in_flight {opts.max_in_flight}" if kind != "consume" and opts.max_in_flight != MAX_IN_FLIGHT else ""
    extra += f", pace {opts.pace_ms:g} ms" if kind == "latency" and opts.pace_ms != PACE_MS else ""
    if kind == "consume":
        return f"consume {opts.partitions}p RF{opts.replication_factor}{extra}"
    return f"{kind} acks={acks} RF{opts.replication_factor} {opts.partitions}p {opts.record_size}B{extra}"


def run_produce(session: Session, opts: BenchOptions) -> dict[str, Any]:
    runs = []
    for i in range(opts.repeat):
        topic = session.topic("produce", opts.partitions, opts.replication_factor)
        total = None if opts.duration_s else opts.records
        with RssSampler(session.workers()) as sampler, session.progress(f"produce run {i + 1}/{opts.repeat}", total) as advance:
            runs.append(workloads.produce(session.bootstrap, topic, opts, advance))
        runs[-1]["memory"] = sampler.summary()
    chosen = stats.median_run(runs)
    memory = chosen.pop("memory")
    return {"workload": _label("produce", opts), **chosen, "memory": memory, "load1": _load1()}


def fill(session: Session, opts: BenchOptions) -> str:
    """A topic holding ``opts.records`` records (written with acks=1, not measured)."""
    topic = session.topic("consume", opts.partitions, opts.replication_factor)
    with session.progress("writing the records to read", opts.records) as advance:
        workloads.produce(session.bootstrap, topic, opts.with_(acks="1", producers=1, rate=0.0, duration_s=0.0), advance)
    return topic


def run_consume(session: Session, opts: BenchOptions, topic: str | None = None) -> dict[str, Any]:
    topic = topic or fill(session, opts)
    runs = []
    for i in range(opts.repeat):
        with session.progress(f"consume run {i + 1}/{opts.repeat}", None) as advance:
            runs.append(workloads.consume(session.bootstrap, topic, opts, advance))
    return {"workload": _label("consume", opts), **stats.median_run(runs), "load1": _load1()}


def run_latency(session: Session, opts: BenchOptions) -> dict[str, Any]:
    topic = session.topic("latency", opts.partitions, opts.replication_factor)
    with RssSampler(session.workers()) as sampler, session.progress(f"latency at {opts.rate:g} records/s", opts.records) as advance:
        result = workloads.latency(session.bootstrap, topic, opts, advance)
    return {"workload": _label("latency", opts), **result, "memory": sampler.summary(), "load1": _load1()}


def run_all(session: Session, opts: BenchOptions) -> list[dict[str, Any]]:
    """produce acks=1 RF1, produce acks=all RF min(3, workers), consume, latency acks=all (1 partition)."""
    rf = min(3, len(session.workers()))
    one = opts.with_(acks="1", replication_factor=1)
    every = opts.with_(acks="all", replication_factor=rf)
    results = [run_produce(session, one), run_produce(session, every), run_consume(session, one)]
    rate = opts.rate or 10_000.0
    latency_opts = every.with_(rate=rate, records=opts.latency_records or int(rate * 10), repeat=1, partitions=1)
    results.append(run_latency(session, latency_opts))
    return results


def startup(workers: int, repeat: int) -> dict[str, Any]:
    """``kbroker start --workers N`` until the "ready" line, ``repeat`` times (median)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        with LocalBroker(workers) as broker:
            times.append({"seconds": time.perf_counter() - started, "reported_s": broker.reported_ready_s})
    chosen = stats.median_run(times, key="seconds")
    return {"workload": f"kbroker start --workers {workers} until ready", **chosen}
