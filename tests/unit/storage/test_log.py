"""Disk-specific behaviour of the segmented Log: rolling, flush policy, checkpoints, files on disk.

(The behaviour both twins share is in test_log_contract.py; crashes in test_log_recovery.py.)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kbroker.storage.checkpoint import read_checkpoint
from kbroker.storage.config import TopicConfig
from kbroker.storage.log import Log
from kbroker.storage.records import build_batch, decode_batches


class Clock:
    def __init__(self, now: int = 1_700_000_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def batch(n: int = 1, size: int = 20, ts: int | None = None, key: bytes | None = b"k") -> bytes:
    return build_batch([(b"v" * size, key, None, ts) for _ in range(n)])


def open_log(path: Path, clock: Clock | None = None, **overrides: object) -> Log:
    config = TopicConfig.from_dict({k.replace("_", "."): v for k, v in overrides.items()})
    return Log.open(path, config, clock or Clock())


def read_all(log: Log, start: int | None = None, max_offset: int | None = None) -> list:
    offset = log.log_start_offset if start is None else start
    records = []
    while True:
        result = log.read(offset, 4096, max_offset)
        if not result.data:
            return records
        records.extend(r for r in decode_batches(result.data) if r.offset >= offset)
        offset = result.next_offset


def segment_files(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.suffix == ".log")


def test_segment_files_are_named_by_base_offset(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_bytes=300)
    for _ in range(10):
        log.append(batch(3))
    names = segment_files(tmp_path)
    assert len(names) > 1
    bases = [int(name[:20]) for name in names]
    assert bases == [s.base_offset for s in log.segments]
    assert all(len(name) == len("00000000000000000000.log") for name in names)
    assert (tmp_path / names[0].replace(".log", ".index")).exists()
    assert (tmp_path / names[0].replace(".log", ".timeindex")).exists()


def test_roll_by_segment_bytes_keeps_segments_under_the_limit(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_bytes=1000)
    for _ in range(50):
        log.append(batch(2))
    assert len(log.segments) > 5
    assert all(s.size <= 1000 for s in log.segments)
    assert [r.offset for r in read_all(log)] == list(range(100))


def test_batch_larger_than_a_segment_gets_its_own_segment(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_bytes=200)
    log.append(batch(1))
    log.append(batch(1, size=500))
    log.append(batch(1))
    assert [s.base_offset for s in log.segments] == [0, 1, 2]


def test_roll_by_segment_ms_uses_the_injected_clock(tmp_path: Path) -> None:
    clock = Clock()
    log = open_log(tmp_path, clock, segment_ms=1000)
    log.append(batch(ts=clock.now))
    clock.now += 999
    log.append(batch(ts=clock.now))
    assert len(log.segments) == 1
    clock.now += 1000
    log.append(batch(ts=clock.now))
    assert [s.base_offset for s in log.segments] == [0, 2]


def test_roll_on_empty_active_segment_is_a_no_op(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    first = log.roll()
    assert log.roll() is first
    assert len(log.segments) == 1


def fsync_counter(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = os.fsync

    def spy(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return calls


def test_default_flush_policy_leaves_fsync_to_roll_and_close(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = open_log(tmp_path)
    calls = fsync_counter(monkeypatch)
    for _ in range(20):
        log.append(batch())
    assert calls == []
    log.close()
    assert calls, "close must fsync"


def test_flush_messages_fsyncs_every_n_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = open_log(tmp_path, flush_messages=5)
    calls = fsync_counter(monkeypatch)
    log.append(batch(3))
    assert calls == []
    log.append(batch(3))
    assert calls
    assert log.recovery_point == log.log_end_offset == 6


def test_flush_ms_fsyncs_after_the_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    log = open_log(tmp_path, clock, flush_ms=100)
    calls = fsync_counter(monkeypatch)
    log.append(batch())
    assert calls == [] and not log.maybe_flush()
    clock.now += 100
    assert log.maybe_flush()
    assert calls
    assert log.recovery_point == 1


def test_roll_fsyncs_the_old_segment_and_moves_the_recovery_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = open_log(tmp_path)
    log.append(batch(4))
    calls = fsync_counter(monkeypatch)
    log.roll()
    assert calls
    assert log.recovery_point == 4
    state = dict(read_checkpoint(tmp_path / "log-state"))
    assert state["recovery_point"] == "4"


def test_checkpoint_round_trips_offsets(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_bytes=300)
    for _ in range(10):
        log.append(batch(3))
    log.update_high_watermark(21)
    log.delete_records_before(9)
    log.write_checkpoint()
    state = dict(read_checkpoint(tmp_path / "log-state"))
    assert state["high_watermark"] == "21"
    assert state["log_start_offset"] == "9"
    log.close()
    reopened = open_log(tmp_path, segment_bytes=300)
    assert (reopened.log_start_offset, reopened.high_watermark, reopened.log_end_offset) == (9, 21, 30)
    assert read_all(reopened)[0].offset == 9


def test_high_watermark_is_clamped_and_never_moves_back(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(batch(5))
    assert log.update_high_watermark(100) == 5
    assert log.update_high_watermark(2) == 5


def test_clean_close_writes_marker_and_reopen_removes_it(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(batch())
    log.close()
    assert (tmp_path / ".clean-shutdown").exists()
    reopened = open_log(tmp_path)
    assert not (tmp_path / ".clean-shutdown").exists()
    assert reopened.recovered_bytes == 0
    reopened.close()
    reopened.close()  # idempotent


def test_delete_removes_the_directory(tmp_path: Path) -> None:
    path = tmp_path / "t-0"
    log = open_log(path, segment_bytes=300)
    for _ in range(5):
        log.append(batch(3))
    log.delete()
    assert not path.exists()


def test_update_config_takes_effect_on_next_append(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(batch())
    log.update_config(TopicConfig.from_dict({"max.message.bytes": "100"}))
    from kbroker.errors import RecordTooLargeError

    with pytest.raises(RecordTooLargeError, match="max.message.bytes=100"):
        log.append(batch(size=200))
    assert log.log_end_offset == 1


def test_compaction_swap_leaves_only_log_files(tmp_path: Path) -> None:
    clock = Clock()
    log = open_log(tmp_path, clock, cleanup_policy="compact", segment_bytes=400, min_cleanable_dirty_ratio=0.01)
    for i in range(40):
        log.append(build_batch([(f"v{i}".encode(), f"k{i % 4}".encode(), None, clock.now)]))
    log.update_high_watermark(log.log_end_offset)
    result = log.clean()
    assert result is not None and result.records_removed > 0
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith((".cleaned", ".swap", ".tmp"))]
    assert leftovers == []
    latest = {r.key: r.value for r in read_all(log)}
    assert latest == {f"k{k}".encode(): f"v{36 + k}".encode() for k in range(4)}
    log.close()
    reopened = open_log(tmp_path, clock, cleanup_policy="compact", segment_bytes=400)
    assert {r.key: r.value for r in read_all(reopened)} == latest
