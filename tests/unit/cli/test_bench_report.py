"""kbroker.cli.bench.report: comparison rows, JSON and the rich tables (pure: rendered to a string)."""

from __future__ import annotations

import io
import json

from rich.console import Console

from kbroker.cli.bench.report import comparison_row, machine_info, render, to_json


def _report() -> dict:
    return {
        "command": "compare",
        "machine": {"cpus": 2, "loadavg": [0.5, 0.4, 0.3]},
        "options": {"record_size": 100},
        "broker": {"bootstrap": "tcp://127.0.0.1:1234", "own": True, "workers": 3, "startup_s": 0.81},
        "results": [
            {"workload": "produce acks=1 RF1 6p 100B", "records": 1000, "seconds": 0.5, "records_per_s": 2000.0,
             "mb_per_s": 0.2, "runs": [1900.0, 2000.0, 2100.0],
             "memory": {"worker-0": {"start_mb": 30.0, "peak_mb": 44.0, "end_mb": 40.0, "growth_second_half_mb": 1.5}}},
            {"workload": "latency acks=all RF3", "count": 100, "rate": 1000.0, "p50_ms": 0.8, "p99_ms": 2.5,
             "p99_9_ms": 2.9, "max_ms": 3.1, "ack": {"p50_ms": 0.5, "p99_ms": 1.0}},
            {"workload": "kbroker start --workers 4 until ready", "seconds": 1.25, "runs": [1.2, 1.25, 1.3]},
        ],
        "comparison": [{**comparison_row("produce", "records/s", 1000.0, "Redis XADD", 250.0, 5), "round_ratios": [3.5, 4.25]},
                       comparison_row("consume", "records/s", 900.0, "Redis XREAD", 100.0, 3)],
        "notes": ["something worth knowing"],
    }  # fmt: skip


def test_comparison_row_says_whether_the_target_is_met() -> None:
    row = comparison_row("produce", "records/s", 1000.0, "Redis", 250.0, 5)
    assert row["ratio"] == 4.0 and row["met"] is False
    assert comparison_row("c", "records/s", 900.0, "Redis", 100.0, 3)["met"] is True
    assert comparison_row("c", "MB/s", 1.0, "zmq", 0.0, 0.4)["ratio"] is None
    assert comparison_row("c", "MB/s", 1.0, "zmq", 1.0, None)["met"] is None


def test_json_round_trips_every_figure() -> None:
    report = _report()
    back = json.loads(to_json(report))
    assert back["results"][0]["records_per_s"] == 2000.0
    assert back["comparison"][0]["ratio"] == 4.0
    assert back["results"][1]["p99_9_ms"] == 2.9


def test_render_prints_every_table() -> None:
    buffer = io.StringIO()
    render(_report(), Console(file=buffer, width=200, force_terminal=False, color_system=None))
    text = buffer.getvalue()
    for expected in ("throughput", "2,000", "2k", "end-to-end latency", "0.80", "2.90",
                     "worker memory", "44", "comparison", "4.00x", "3.50, 4.25", ">= 5x", "no", "9.00x", "yes",
                     "kbroker start --workers 4 until ready", "1.25", "something worth knowing"):  # fmt: skip
        assert expected in text, f"{expected!r} missing from:\n{text}"


def test_machine_info_names_the_cores_and_the_load() -> None:
    info = machine_info()
    assert info["cpus"] >= 1
    assert len(info["loadavg"]) == 3
