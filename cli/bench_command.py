"""``kbroker bench produce|consume|latency|all|compare|startup``: kbroker's perf-test tools.

Every command takes the same flags (defaults differ where the workload does: latency runs use
acks=all, RF 3 and a rate), starts its own broker (``--workers N``, a temp data dir, a free port)
unless ``--bootstrap`` names one, shows a progress bar on a terminal, and prints rich tables, or
one JSON document with ``--json``. Exit codes: 0 done, 1 a run failed, 2 bad flags or a missing
optional tool (redis-server / redis-py for ``compare``, matplotlib for ``--plot``: both come with
``pip install 'kbroker[bench]'``).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from kbroker.cli.bench.options import MAX_IN_FLIGHT, PACE_MS

__all__ = ["bench_app"]

bench_app = typer.Typer(
    name="bench", no_args_is_help=True, add_completion=False,
    help="Benchmarks in the manner of Kafka's perf-test tools: throughput, latency, and a comparison with Redis Streams.",
)  # fmt: skip

# flag name -> (python type, default, help)
_FLAGS: dict[str, tuple[type, Any, str]] = {
    "records": (int, 1_000_000, "Records per run (latency: records timed)."),
    "record_size": (int, 100, "Value size in bytes."),
    "keys": (int, 0, "Distinct keys, used in turn (0: keyless records, sticky partitioning)."),
    "partitions": (int, 6, "Partitions of the benchmark topic."),
    "replication_factor": (int, 1, "Replication factor of the benchmark topic."),
    "acks": (str, "1", "0, 1 or all."),
    "batch_bytes": (int, 512 * 1024, "Producer batch size in bytes."),
    "linger_ms": (float, 5.0, "Producer linger in ms."),
    "max_in_flight": (int, MAX_IN_FLIGHT, "Producer requests in flight per partition (1: fewer, larger requests; lower latency "
                              "when the CPUs are busy)."),
    "compression": (str, "none", "none, gzip, zstd or lz4."),
    "send_many": (int, 0, "0: Producer.send per record; N: Producer.send_many with N keyless records per call "
                          "(one future per call, like a Redis pipeline)."),
    "producers": (int, 1, "Producer clients (more than 1: one process each)."),
    "consumers": (int, 1, "Consumer clients (more than 1: one process each, partitions split)."),
    "rate": (float, 0.0, "Target records/s over all producers (0: as fast as possible; latency runs need one)."),
    "pace_ms": (float, PACE_MS, "Latency runs: the producer sleeps only when this far ahead of --rate, then sends what "
                            "is due at once, as Kafka's perf-test throttler does (2 ms); 0: every record on its own "
                            "schedule, a sleep before each."),
    "duration": (float, 0.0, "Produce for this many seconds instead of --records (0: use --records)."),
    "repeat": (int, 1, "Runs of each throughput workload; the median run is reported."),
    "latency_records": (int, 0, "all/compare: records of the latency run (0: 10 s at --rate)."),
    "workers": (int, 3, "Workers of the broker the benchmark starts (ignored with --bootstrap)."),
}
_DEFAULTS: dict[str, dict[str, Any]] = {
    "produce": {},
    "consume": {},
    "latency": {"records": 100_000, "partitions": 1, "replication_factor": 3, "acks": "all", "rate": 10_000.0},
    "all": {},
    "compare": {"repeat": 3},
    "startup": {"workers": 4, "repeat": 3},
}


def _signature(command: str) -> inspect.Signature:
    params = []
    defaults = _DEFAULTS[command]
    for name, (kind, default, help_text) in _FLAGS.items():
        flag = "--" + name.replace("_", "-")
        option = typer.Option(defaults.get(name, default), flag, help=help_text)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind))
    params += [
        inspect.Parameter("bootstrap", inspect.Parameter.KEYWORD_ONLY, annotation=str | None, default=typer.Option(
            None, "--bootstrap", "-b",
            help="A running broker (host:port) instead of starting one (KBROKER_BOOTSTRAP is not used here).")),
        inspect.Parameter("json_output", inspect.Parameter.KEYWORD_ONLY, annotation=bool, default=typer.Option(
            False, "--json", help="Print one JSON document instead of tables.")),
        inspect.Parameter("plot", inspect.Parameter.KEYWORD_ONLY, annotation=Path | None, default=typer.Option(
            None, "--plot", dir_okay=False,
            help="Also sweep record sizes and rates and draw them into this PNG (needs matplotlib).")),
    ]  # fmt: skip
    return inspect.Signature(params)


def _options(flags: dict[str, Any]) -> Any:
    from kbroker.cli.bench.options import BenchOptions

    return BenchOptions(
        records=flags["records"], record_size=flags["record_size"], key_count=flags["keys"],
        partitions=flags["partitions"], replication_factor=flags["replication_factor"], acks=str(flags["acks"]),
        batch_bytes=flags["batch_bytes"], linger_ms=flags["linger_ms"], max_in_flight=flags["max_in_flight"],
        compression=str(flags["compression"]).lower(), send_many=flags["send_many"],
        producers=flags["producers"], consumers=flags["consumers"], rate=flags["rate"], pace_ms=flags["pace_ms"],
        duration_s=flags["duration"],
        repeat=flags["repeat"], latency_records=flags["latency_records"], workers=flags["workers"], bootstrap=flags["bootstrap"],
    )  # fmt: skip


def _usage_error(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _run(command: str, flags: dict[str, Any]) -> None:
    from kbroker.cli.bench import plot as plot_mod
    from kbroker.cli.bench import redis_peer, suite
    from kbroker.cli.bench.report import machine_info, render, to_json

    opts = _options(flags)
    problems = opts.validate()
    if command == "latency" and opts.rate <= 0:
        problems.append("--rate must be positive for a latency run")
    if command == "latency" and opts.record_size < 8:
        problems.append("--record-size must be at least 8 for a latency run (the value carries the send time)")
    if problems:
        raise _usage_error("; ".join(problems))
    if command == "compare" and (why := redis_peer.missing()):
        raise _usage_error(why)
    if flags["plot"] is not None and not plot_mod.available():
        raise _usage_error("--plot needs matplotlib: pip install 'kbroker[bench]'")
    err = Console(stderr=True)
    out = Console()
    if not out.is_terminal:
        out = Console(width=160)  # a pipe or a file: whole rows rather than 80 columns
    try:
        if command == "startup":
            report = {"command": "startup", "machine": machine_info(), "options": {"workers": opts.workers},
                      "broker": {}, "results": [suite.startup(opts.workers, opts.repeat)], "comparison": [], "notes": []}  # fmt: skip
        else:
            with suite.Session(opts, err) as session:
                report = _workloads(command, session, opts)
                if flags["plot"] is not None:
                    report["plot"] = plot_mod.sweep(session, opts)
                    title = f"kbroker, {report['broker'].get('workers')} workers, {report['machine']['cpus']} cores"
                    plot_mod.draw(report["plot"], flags["plot"], title)
                    report["notes"].append(f"plot written to {flags['plot']}")
        report["machine"]["loadavg_end"] = machine_info()["loadavg"]
    except Exception as exc:  # a broker or client failure: reported, exit 1
        err.print(f"[red]error:[/red] the benchmark failed: {exc}")
        raise typer.Exit(1) from None
    if flags["json_output"]:
        typer.echo(to_json(report))
    else:
        render(report, out)


def _workloads(command: str, session: Any, opts: Any) -> dict[str, Any]:
    from kbroker.cli.bench import compare, suite

    if command == "compare":
        return compare.run_compare(session, opts)
    report = suite.new_report(command, opts, session)
    if command == "produce":
        report["results"] = [suite.run_produce(session, opts)]
    elif command == "consume":
        report["results"] = [suite.run_consume(session, opts)]
    elif command == "latency":
        report["results"] = [suite.run_latency(session, opts)]
    else:
        report["results"] = suite.run_all(session, opts)
    return report


def _register(command: str, doc: str) -> None:
    def run(**flags: Any) -> None:
        _run(command, flags)

    run.__signature__ = _signature(command)  # type: ignore[attr-defined]
    run.__doc__ = doc
    run.__name__ = command
    bench_app.command(command)(run)


_COMMANDS: dict[str, str] = {
    "produce": "Producer throughput (records/s, MB/s). Example: kbroker bench produce --records 1000000 --acks all --replication-factor 3",
    "consume": "Consumer throughput reading --records records from offset 0 (written first, not timed).",
    "latency": "End-to-end latency, produce to consumer receive, at --rate records/s: p50/p99/p99.9/max.",
    "all": "produce acks=1 RF1, produce acks=all RF3, consume, latency acks=all at --rate (default 10000/s).",
    "compare": "The issue's workloads against Redis Streams (redis-server, redis-py) and raw ZeroMQ, with ratios.",
    "startup": "Time `kbroker start --workers N` takes until it is ready (median of --repeat).",
}
for _name, _doc in _COMMANDS.items():
    _register(_name, _doc)
