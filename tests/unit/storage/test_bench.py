"""Smoke tests for kbroker.storage.bench: the benchmark runs end to end on tiny sizes (no timing checks)."""

from __future__ import annotations

import json
import math

from kbroker.storage.bench import TARGETS, build_test_batch, main
from kbroker.storage.config import TopicConfig
from kbroker.storage.records import decode_batch

TINY = ["--log-gib", "0.002", "--batch-mib", "0.0625", "--small-batches", "50", "--decode-mib", "0.1"]


def _run_json(capsys, tmp_path, *extra: str) -> dict:
    assert main([*TINY, "--json", "--dir", str(tmp_path), *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_has_every_figure_and_check(capsys, tmp_path):
    result = _run_json(capsys, tmp_path, "--repeat", "2")
    assert len(result["samples"]) == 2
    medians = result["medians"]
    for key in (
        "log_mb_s",
        "write_mb_s",
        "append_ratio",
        "crc_gb_s",
        "read_gb_s",
        "decode_records_s",
        "reopen_clean_s",
        "recovery_s",
        "small_records_s",
        "small_us_per_batch",
        "small_write_calls_s",
    ):
        assert math.isfinite(medians[key]) and medians[key] > 0, key
    assert set(result["checks"]) == set(TARGETS)
    assert all(isinstance(check["pass"], bool) for check in result["checks"].values())
    setup = result["setup"]
    assert setup["batches"] * setup["batch_bytes"] == setup["log_bytes"]
    assert setup["batch_bytes"] <= 0.0625 * (1 << 20)
    assert setup["fsync_included"] is False
    assert list(tmp_path.iterdir()) == []  # the temporary directory is removed afterwards


def test_table_output(capsys, tmp_path):
    assert main([*TINY, "--repeat", "1", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for text in ("append ratio", "read", "reopen", "recovery", "small batches", ">= 0.8"):
        assert text in out
    assert "PASS" in out or "FAIL" in out
    assert list(tmp_path.iterdir()) == []


def test_fsync_and_batches_above_max_message_bytes(capsys, tmp_path):
    result = _run_json(capsys, tmp_path, "--repeat", "1", "--fsync", "--batch-mib", "1.5")
    assert result["setup"]["fsync_included"] is True
    assert result["setup"]["batch_bytes"] > TopicConfig().max_message_bytes
    assert result["setup"]["max_message_bytes"] >= result["setup"]["batch_bytes"]


def test_build_test_batch_fits_target_and_decodes():
    batch, records = build_test_batch(64 << 10, 100, 1_700_000_000_000)
    assert len(batch) <= 64 << 10
    assert len(batch) > (64 << 10) * 0.95
    decoded = decode_batch(batch)
    assert len(decoded) == records
    assert all(len(r.value) == 100 for r in decoded)
    one, n = build_test_batch(1, 100, 1_700_000_000_000)
    assert n == 1 and len(decode_batch(one)) == 1
