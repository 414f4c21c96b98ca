"""End-to-end broker benchmark: producer and consumer throughput, produce latency.

    python examples/bench_broker.py [--records 200000] [--workers 3] [--bootstrap HOST:PORT] [--json]
    make bench-broker ARGS="--records 100000"

Unless ``--bootstrap`` names a running broker, this starts its own (``kbroker start`` in a
subprocess, ``--port 0``, a temporary data directory, ``--workers 3``) and stops it at the end.
With 100-byte values and one producer (keyless records, sticky partitioning):

- ``produce acks=1``:   topic with 6 partitions, replication factor 1; records/s and MB/s of values
- ``produce acks=all``: topic with 6 partitions, replication factor 3
- ``consume ...``:      one consumer reading each of those topics back from offset 0
- ``latency acks=all``: one record at a time, ``result()`` on each, paced at ``--latency-rate``
  records/s on a 1-partition RF 3 topic: p50 / p99 / max in ms

MB/s counts value bytes only (as Kafka's perf tools count record sizes). Each run uses fresh topic
names, so it can run again against the same broker.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from kbroker import Admin, Consumer, Producer, TopicPartition

PARTITIONS = 6
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
_LISTENING = re.compile(r"listening on (tcp://\S+)")
_READY = re.compile(r"\bready in \d+\.\d+ s\b")


class LocalBroker:
    """``kbroker start`` in its own process group on a free port; ``stop()`` takes it all down."""

    def __init__(self, workers: int, log_level: str = "info") -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="kbroker-bench-")
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kbroker.cli.main", "start", "--workers", str(workers),
             "--data-dir", str(Path(self._tmp.name) / "data"), "--host", "127.0.0.1", "--port", "0",
             "--log-level", log_level],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            env=dict(os.environ, PYTHONUNBUFFERED="1"), start_new_session=True,
        )  # fmt: skip
        threading.Thread(target=self._read, name="broker-output", daemon=True).start()
        try:
            # "listening on" and "ready" are INFO lines; the reader thread keeps draining the pipe
            self.bootstrap = self._wait(_LISTENING).group(1)
            self._wait(_READY)
        except BaseException:
            self.stop()
            raise

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._cond:
                self._lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _wait(self, pattern: re.Pattern[str]) -> re.Match[str]:
        deadline = time.monotonic() + READY_TIMEOUT_S
        with self._cond:
            while True:
                for line in self._lines:
                    if match := pattern.search(line):
                        return match
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.process.poll() is not None:
                    output = "\n".join(self._lines[-40:])
                    raise RuntimeError(f"the broker did not start (waiting for {pattern.pattern!r}):\n{output}")
                self._cond.wait(min(remaining, 0.5))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                print("the broker did not stop in time; killing it", file=sys.stderr)
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # whatever is left of its process group
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait(STOP_TIMEOUT_S)
        self._tmp.cleanup()


def create_topic(admin: Admin, name: str, partitions: int, replication_factor: int) -> None:
    admin.create_topic(name, partitions=partitions, replication_factor=replication_factor)
    deadline = time.monotonic() + 30
    while True:
        info = admin.describe_topic(name)
        if all(p.leader >= 0 and len(p.isr) == replication_factor and p.high_watermark >= 0 for p in info.partitions):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"topic {name!r} has no leader or full ISR after 30 s: {info.partitions}")
        time.sleep(0.05)


def bench_produce(bootstrap: str, topic: str, acks: int | str, records: int, value: bytes) -> dict[str, float]:
    with Producer(bootstrap, acks=acks) as producer:
        started = time.perf_counter()
        send = producer.send
        for _ in range(records):
            send(topic, value)
        producer.flush()
        seconds = time.perf_counter() - started
    return _rates(records, len(value), seconds)


def bench_consume(bootstrap: str, topic: str, records: int, value_bytes: int, timeout_s: float = 120) -> dict[str, float]:
    got = 0
    with Consumer(bootstrap, auto_offset_reset="earliest") as consumer:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        started = time.perf_counter()
        deadline = time.monotonic() + timeout_s
        while got < records and time.monotonic() < deadline:
            got += len(consumer.poll(500))
        seconds = time.perf_counter() - started
    if got < records:
        raise RuntimeError(f"read {got} of {records} records of {topic!r} in {timeout_s:g} s")
    return _rates(records, value_bytes, seconds)


def bench_latency(bootstrap: str, topic: str, records: int, rate: float, value: bytes) -> dict[str, float]:
    """acks=all, one record in flight at a time, sends paced at ``rate`` per second."""
    samples: list[float] = []
    with Producer(bootstrap, acks="all", linger_ms=0) as producer:
        producer.send(topic, value, partition=0).result(30)  # connections and metadata: not measured
        started = time.perf_counter()
        for i in range(records):
            due = started + i / rate
            now = time.perf_counter()
            if due > now:
                time.sleep(due - now)  # pacing the load, not synchronising
            sent = time.perf_counter()
            producer.send(topic, value, partition=0).result(30)
            samples.append((time.perf_counter() - sent) * 1000)
    samples.sort()
    return {
        "records": records,
        "p50_ms": _percentile(samples, 50),
        "p99_ms": _percentile(samples, 99),
        "max_ms": samples[-1],
        "mean_ms": statistics.fmean(samples),
    }


def _percentile(sorted_samples: list[float], pct: float) -> float:
    index = min(len(sorted_samples) - 1, max(0, round(pct / 100 * len(sorted_samples)) - 1))
    return sorted_samples[index]


def _rates(records: int, value_bytes: int, seconds: float) -> dict[str, float]:
    return {
        "records": records,
        "seconds": seconds,
        "records_per_s": records / seconds,
        "mb_per_s": records * value_bytes / seconds / 1e6,
    }


def run(bootstrap: str, records: int, value_bytes: int, latency_records: int, latency_rate: float) -> dict[str, dict]:
    value = b"v" * value_bytes
    run_id = uuid.uuid4().hex[:6]
    one, all_, lat = f"bench-{run_id}-rf1", f"bench-{run_id}-rf3", f"bench-{run_id}-latency"
    with Admin(bootstrap, timeout=30) as admin:
        workers = len(admin.describe_cluster())
        replication = min(3, workers)
        create_topic(admin, one, PARTITIONS, 1)
        create_topic(admin, all_, PARTITIONS, replication)
        create_topic(admin, lat, 1, replication)
    results: dict[str, dict] = {}
    results["produce acks=1 RF1"] = bench_produce(bootstrap, one, 1, records, value)
    results[f"produce acks=all RF{replication}"] = bench_produce(bootstrap, all_, "all", records, value)
    results["consume RF1 topic"] = bench_consume(bootstrap, one, records, value_bytes)
    results[f"consume RF{replication} topic"] = bench_consume(bootstrap, all_, records, value_bytes)
    results[f"latency acks=all RF{replication}"] = bench_latency(bootstrap, lat, latency_records, latency_rate, value)
    return results


def print_table(results: dict[str, dict], workers: str, value_bytes: int) -> None:
    print(f"kbroker end-to-end benchmark: {workers}, {value_bytes}-byte values, 1 client, {PARTITIONS} partitions")
    print(f"{'workload':<26} {'records':>9} {'records/s':>11} {'MB/s':>8}   {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, r in results.items():
        if "records_per_s" in r:
            print(f"{name:<26} {r['records']:>9,} {r['records_per_s']:>11,.0f} {r['mb_per_s']:>8.1f}")
        else:
            print(f"{name:<26} {r['records']:>9,} {'':>11} {'':>8}   {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['max_ms']:>8.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", help="a running broker (default: start one for this run)")
    parser.add_argument("--workers", type=int, default=3, help="workers of the broker this starts (default 3)")
    parser.add_argument("--records", type=int, default=200_000, help="records per throughput run (default 200000)")
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--latency-records", type=int, default=1000, help="records timed one by one (default 1000)")
    parser.add_argument("--latency-rate", type=float, default=200.0, help="records/s during the latency run (default 200)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.records < 1 or args.latency_records < 1 or args.latency_rate <= 0 or args.workers < 1:
        parser.error("--records, --latency-records, --latency-rate and --workers must be positive")

    broker = None if args.bootstrap else LocalBroker(args.workers)
    try:
        bootstrap = args.bootstrap or broker.bootstrap  # type: ignore[union-attr]
        results = run(bootstrap, args.records, args.value_bytes, args.latency_records, args.latency_rate)
    finally:
        if broker is not None:
            broker.stop()
    where = f"broker at {args.bootstrap}" if args.bootstrap else f"local broker, {args.workers} workers"
    if args.json:
        print(json.dumps({"broker": where, "value_bytes": args.value_bytes, "results": results}, indent=2))
    else:
        print_table(results, where, args.value_bytes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
