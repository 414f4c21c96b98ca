"""What the benchmark prints: rich tables for people, one JSON document for machines.

A report is a plain dict (so ``--json`` is ``json.dumps`` of it):

    {"command": "produce", "machine": {...}, "options": {...}, "broker": {...},
     "results": [{"workload": "produce acks=1 RF1", "records_per_s": ..., "mb_per_s": ...,
                  "runs": [...], "memory": {"worker-0": {"start_mb", "peak_mb", "end_mb", ...}}},
                 {"workload": "latency acks=all RF3", "p50_ms": ..., "p99_ms": ..., ...}],
     "comparison": [{"workload", "unit", "kbroker", "peer", "peer_value", "ratio", "target"}]}

``machine_info()`` records where the figures come from (cores, Python, load average before and
after), because on a shared 2-core machine the load explains much of the spread.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["machine_info", "render", "to_json", "comparison_row"]


def machine_info() -> dict[str, Any]:
    try:
        load = list(os.getloadavg())
    except OSError:
        load = []
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "loadavg": [round(x, 2) for x in load],
    }


def comparison_row(workload: str, unit: str, ours: float, peer: str, theirs: float, target: float | None) -> dict[str, Any]:
    from kbroker.cli.bench.stats import ratio

    r = ratio(ours, theirs)
    return {
        "workload": workload, "unit": unit, "kbroker": ours, "peer": peer, "peer_value": theirs,
        "ratio": r, "target": target, "met": None if target is None or r is None else r >= target,
    }  # fmt: skip


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=False, default=str)


def _n(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _runs(result: dict[str, Any]) -> str:
    runs = result.get("runs")
    if not runs or len(runs) < 2:
        return ""
    return ", ".join(f"{r / 1000:,.0f}k" for r in runs)


def render(report: dict[str, Any], console: Console) -> None:
    results = report.get("results", [])
    throughput = [r for r in results if "records_per_s" in r]
    latency = [r for r in results if "p50_ms" in r]
    opts = report.get("options", {})
    broker = report.get("broker", {})
    where = broker.get("bootstrap", "")
    own = f"own broker, {broker.get('workers')} workers, ready in {broker.get('startup_s', 0):.2f} s" if broker.get("own") else "broker"
    context = [f"{own} at {where}"] if where else []
    context += [f"{opts['record_size']}-byte values"] if "record_size" in opts else []
    context.append(f"load average {report.get('machine', {}).get('loadavg')}")
    console.print(f"[bold]kbroker bench {report.get('command', '')}[/bold]  ({'; '.join(context)})")
    if throughput:
        table = Table(title="throughput", title_justify="left")
        for column in ("workload", "records", "records/s", "MB/s", "seconds", "runs (records/s)"):
            table.add_column(column, justify="left" if column == "workload" else "right")
        for r in throughput:
            table.add_row(r["workload"], _n(r["records"]), _n(r["records_per_s"]), _n(r["mb_per_s"], 1),
                          _n(r["seconds"], 2), _runs(r))  # fmt: skip
        console.print(table)
    if latency:
        table = Table(title="end-to-end latency, produce to consumer receive (ms)", title_justify="left")
        for column in ("workload", "records", "rate", "p50", "p99", "p99.9", "max", "ack p50", "ack p99"):
            table.add_column(column, justify="left" if column == "workload" else "right")
        for r in latency:
            ack = r.get("ack", {})
            table.add_row(r["workload"], _n(r["count"]), _n(r.get("rate", 0)), _n(r["p50_ms"], 2), _n(r["p99_ms"], 2),
                          _n(r["p99_9_ms"], 2), _n(r["max_ms"], 2), _n(ack.get("p50_ms", 0), 2), _n(ack.get("p99_ms", 0), 2))  # fmt: skip
        console.print(table)
    timings = [r for r in results if "records_per_s" not in r and "p50_ms" not in r and "seconds" in r]
    if timings:
        table = Table(title="timings (s)", title_justify="left")
        for column in ("workload", "seconds", "runs"):
            table.add_column(column, justify="left" if column == "workload" else "right")
        for r in timings:
            table.add_row(r["workload"], _n(r["seconds"], 2), ", ".join(f"{x:.2f}" for x in r.get("runs", [])))
        console.print(table)
    memory = [(r["workload"], w, m) for r in results for w, m in r.get("memory", {}).items()]
    if memory:
        table = Table(title="worker memory (RSS, MB)", title_justify="left")
        for column in ("workload", "worker", "start", "peak", "end", "growth, 2nd half"):
            table.add_column(column, justify="left" if column in ("workload", "worker") else "right")
        for workload, worker, m in memory:
            table.add_row(workload, worker, _n(m["start_mb"]), _n(m["peak_mb"]), _n(m["end_mb"]), _n(m["growth_second_half_mb"], 1))
        console.print(table)
    comparison = report.get("comparison", [])
    if comparison:
        table = Table(title="comparison (one run, same machine)", title_justify="left")
        for column in ("workload", "unit", "kbroker", "peer", "peer figure", "ratio", "per round", "target", "met"):
            table.add_column(column, justify="left" if column in ("workload", "unit", "peer") else "right")
        for c in comparison:
            ratio = "-" if c["ratio"] is None else f"{c['ratio']:.2f}x"
            target = "" if c["target"] is None else f">= {c['target']:g}x"
            met = "" if c["met"] is None else ("yes" if c["met"] else "[red]no[/red]")
            rounds = ", ".join("-" if r is None else f"{r:.2f}" for r in c.get("round_ratios", []))
            table.add_row(c["workload"], c["unit"], _n(c["kbroker"]), c["peer"], _n(c["peer_value"]), ratio, rounds, target, met)
        console.print(table)
    for line in report.get("notes", []):
        console.print(f"note: {line}")
