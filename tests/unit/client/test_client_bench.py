"""The client-core benchmark runs end to end on a small size and prints its figures (no limits)."""

from __future__ import annotations

import json

import pytest

from kbroker.transport.client.bench import main, run

FIGURES = (
    "baseline", "partition_sticky", "partition_keyed", "partition_keyed_repeat",
    "send_keyless", "send_keyed", "produce_keyless", "consume",
)


def test_figures_per_record(capsys: pytest.CaptureFixture[str]) -> None:
    figures = run(records=20_000, repeat=1)
    assert set(figures) == set(FIGURES) and all(ns > 0 for ns in figures.values())
    with capsys.disabled():
        print("\n[client core, ns/record, 20k records, GC on] " + ", ".join(f"{k} {v:.0f}" for k, v in figures.items()))


def test_main_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--records", "500", "--repeat", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["ns_per_record"]) == set(FIGURES) and out["records"] == 500
