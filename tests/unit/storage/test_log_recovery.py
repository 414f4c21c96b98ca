"""Crash and corruption recovery of kbroker.storage.log: targeted cases, one failure mode each.

A "crash" here drops the ``Log`` without ``close`` (no flush, no checkpoint, no clean-shutdown
marker), then damages files the way a dying process or disk would, then reopens. One test kills a
real child process with SIGKILL while it appends.

What open re-validates (and what it does not), as these tests pin down:
- After a crash, every segment holding data past the recovery point (in practice the active
  segment: a roll fsyncs and checkpoints) is re-read batch by batch with CRC checks; a torn or
  corrupt batch and everything after it is cut.
- Segments wholly below the recovery point, and every segment after a clean shutdown, are trusted:
  open reads only their index tails. Corruption there is not found by open; consumers still catch
  it because ``decode_batches`` checks every batch's CRC.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from kbroker.errors import CorruptRecordError, OffsetOutOfRangeError
from kbroker.storage import cleaner as cleaner_module
from kbroker.storage import faults
from kbroker.storage.batch import HEADER_SIZE, read_header
from kbroker.storage.config import TopicConfig
from kbroker.storage.log import Log
from kbroker.storage.records import BatchBuilder, decode_batches
from kbroker.storage.segment import Segment

NOW = 1_700_000_000_000


class SimulatedCrash(Exception):
    pass


# ---------------------------------------------------------------------- helpers
def open_log(directory: Path, **overrides) -> Log:
    config = TopicConfig.from_dict({"segment.bytes": 1024, "index.interval.bytes": 128, **overrides})
    return Log.open(directory, config, clock=lambda: NOW)


def abandon(log: Log) -> None:
    """Drop ``log`` as a killed process would: descriptors closed, nothing flushed or checkpointed."""
    log.close_handlers()


def batch_bytes(first: int, count: int, *, keys: int | None = None, compression: str | None = None) -> bytes:
    """A batch whose records are a pure function of their offset (so any read can be checked)."""
    builder = BatchBuilder(compression)
    for offset in range(first, first + count):
        key = None if keys is None else f"k{offset % keys}".encode()
        builder.append(value_of(offset), key, [("offset", str(offset).encode())], NOW + offset)
    return builder.build()


def value_of(offset: int) -> bytes:
    return b"value-%d-" % offset + b"x" * (offset % 23)


def fill(
    log: Log, batches: int, *, per_batch: int = 3, epoch: int = 0, keys: int | None = None
) -> list[tuple[int, int]]:
    """Append ``batches`` batches; return their ``(base offset, next offset)``."""
    spans = []
    for _ in range(batches):
        first = log.log_end_offset
        result = log.append(batch_bytes(first, per_batch, keys=keys), leader_epoch=epoch)
        spans.append((result.first_offset, result.last_offset + 1))
    return spans


def read_records(log: Log, upto: int | None = None) -> list:
    """Every record from the log start, decoded with CRC checks (as a consumer does)."""
    records = []
    position = log.log_start_offset
    limit = log.log_end_offset if upto is None else upto
    while position < limit:
        result = log.read(position, 1 << 20, upto)
        if not result.data:
            break
        records.extend(decode_batches(result.data, allow_partial_tail=False))
        position = result.next_offset
    return records


def assert_offset_records(log: Log, end: int) -> None:
    """The log holds exactly offsets [log start, end), each with the content ``batch_bytes`` gave it."""
    records = read_records(log)
    assert [r.offset for r in records] == list(range(log.log_start_offset, end))
    assert all(r.value == value_of(r.offset) for r in records)
    assert log.log_end_offset == end


def batch_positions(path: Path) -> list[tuple[int, int, int]]:
    """``(position, base offset, next offset)`` of each batch in a segment file, by walking headers."""
    data = path.read_bytes()
    out, pos = [], 0
    while pos + HEADER_SIZE <= len(data):
        header = read_header(data, pos)
        if pos + header.size > len(data):
            break
        out.append((pos, header.base_offset, header.next_offset))
        pos += header.size
    return out


def flip_byte(path: Path, position: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(position)
        byte = fh.read(1)
        fh.seek(position)
        fh.write(bytes([byte[0] ^ 0x5A]))


@pytest.fixture(autouse=True)
def _no_armed_faults():
    yield
    faults.disarm()


@pytest.fixture
def recover_spy(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Base offsets of the segments that open re-validates (``Segment.recover``)."""
    calls: list[int] = []
    original = Segment.recover

    def recover(self: Segment) -> int:
        calls.append(self.base_offset)
        return original(self)

    monkeypatch.setattr(Segment, "recover", recover)
    return calls


# ---------------------------------------------------------------------- torn and garbage tails
@pytest.mark.parametrize("into_last_batch", [1, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 5, -1])
def test_torn_last_batch_is_cut_and_earlier_batches_survive(tmp_path: Path, into_last_batch: int) -> None:
    log = open_log(tmp_path, **{"segment.bytes": 1 << 20})
    spans = fill(log, 6)
    path = log.active_segment.path
    abandon(log)
    position, base, _ = batch_positions(path)[-1]
    size = path.stat().st_size
    cut_at = size - 1 if into_last_batch == -1 else position + into_last_batch
    os.truncate(path, cut_at)

    log = open_log(tmp_path)
    assert log.recovered_bytes == cut_at - position
    assert base == spans[-1][0]
    assert_offset_records(log, base)
    # The log goes on from the cut: the next append takes the first lost offset.
    assert log.append(batch_bytes(base, 2)).first_offset == base
    assert_offset_records(log, base + 2)


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"\x00" * 100, id="zeros"),
        pytest.param(os.urandom(7), id="shorter-than-a-header"),
        pytest.param(bytes(range(256)) * 3, id="bytes"),
        pytest.param("bad-crc", id="valid-header-bad-crc"),
        pytest.param("replayed-batch", id="old-batch-replayed"),
    ],
)
def test_garbage_after_the_last_batch_is_cut(tmp_path: Path, garbage) -> None:
    log = open_log(tmp_path, **{"segment.bytes": 1 << 20})
    fill(log, 4)
    end = log.log_end_offset
    path = log.active_segment.path
    abandon(log)
    data = path.read_bytes()
    if garbage == "bad-crc":
        fake = bytearray(batch_bytes(end, 2))
        fake[0:8] = end.to_bytes(8, "big")
        fake[-1] ^= 0xFF
        garbage = bytes(fake)
    elif garbage == "replayed-batch":
        garbage = data[: read_header(data, 0).size]  # intact, CRC valid, but offsets go backwards
    with open(path, "ab") as fh:
        fh.write(garbage)

    log = open_log(tmp_path)
    assert log.recovered_bytes == len(garbage)
    assert path.stat().st_size == len(data)
    assert_offset_records(log, end)


def test_flipped_byte_in_the_last_segment_cuts_there_and_drops_the_rest(tmp_path: Path) -> None:
    log = open_log(tmp_path, **{"segment.bytes": 1 << 20})
    fill(log, 10)
    path = log.active_segment.path
    abandon(log)
    positions = batch_positions(path)
    position, base, _ = positions[4]
    size = path.stat().st_size
    flip_byte(path, position + HEADER_SIZE + 3)  # inside the fifth batch's body

    log = open_log(tmp_path)
    assert log.recovered_bytes == size - position
    assert log.log_end_offset == base
    assert path.stat().st_size == position
    assert_offset_records(log, base)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(base + 1)  # the later batches are gone, never served


def test_flipped_byte_in_an_unvalidated_middle_segment_drops_later_segments(
    tmp_path: Path, recover_spy: list[int]
) -> None:
    log = open_log(tmp_path)
    fill(log, 20)
    bases = [s.base_offset for s in log.segments]
    assert len(bases) >= 4
    victim = log.segments[1]
    abandon(log)
    (tmp_path / "log-state").unlink()  # no recovery point: every segment is re-validated
    position, base, _ = batch_positions(victim.path)[1]
    flip_byte(victim.path, position + HEADER_SIZE + 1)

    log = open_log(tmp_path)
    assert recover_spy == bases[:2]  # recovery stops at the corrupt segment
    assert [s.base_offset for s in log.segments] == bases[:2]
    assert all(not (tmp_path / f"{b:020d}.log").exists() for b in bases[2:])
    assert_offset_records(log, base)


def test_flipped_byte_in_an_old_segment_is_not_rescanned_but_consumers_catch_it(
    tmp_path: Path, recover_spy: list[int]
) -> None:
    """Only data after the recovery point is re-validated on open (as in Kafka): a flushed segment is
    trusted, so a bit flip there is served as stored. Consumers still never accept it: every batch
    they decode is CRC-checked."""
    log = open_log(tmp_path)
    fill(log, 20)
    end = log.log_end_offset
    old = log.segments[0]
    abandon(log)  # a crash: no clean-shutdown marker, yet the old segment is below the recovery point
    position, base, _ = batch_positions(old.path)[1]
    flip_byte(old.path, position + HEADER_SIZE + 2)

    log = open_log(tmp_path)
    assert old.base_offset not in recover_spy
    assert recover_spy == [log.active_segment.base_offset]
    assert log.recovered_bytes == 0 and log.log_end_offset == end
    result = log.read(base)
    assert read_header(result.data).base_offset == base  # the broker hands the stored bytes out
    with pytest.raises(CorruptRecordError, match="CRC"):
        decode_batches(result.data)


@pytest.mark.parametrize("shutdown", ["clean", "crash"])
def test_torn_trusted_segment_is_recovered_instead_of_failing_every_open(tmp_path: Path, shutdown: str) -> None:
    """Regression: a segment open trusts (clean shutdown, or below the recovery point) whose file
    lost its tail made ``Log.open`` raise CorruptRecordError on every attempt ("reopen the log to
    recover it", which never happened): the log could not be opened again. Open now validates that
    segment after all and cuts it like any corrupt data found by recovery."""
    log = open_log(tmp_path)
    fill(log, 20)
    victim = log.segments[1].path
    later = [s.path for s in log.segments[2:]]
    log.close() if shutdown == "clean" else abandon(log)
    position, base, _ = batch_positions(victim)[1]
    os.truncate(victim, position + HEADER_SIZE + 5)  # past a header: the walk sees it overrun the file

    log = open_log(tmp_path)
    assert log.recovered_bytes == HEADER_SIZE + 5
    assert_offset_records(log, base)
    assert not any(p.exists() for p in later)  # recovery keeps the log contiguous: later data goes
    log.close()
    log = open_log(tmp_path)
    assert_offset_records(log, base)


@pytest.mark.parametrize("junk", [1, 10, HEADER_SIZE - 1])
def test_junk_shorter_than_a_header_after_a_clean_shutdown_is_cut_before_appends(tmp_path: Path, junk: int) -> None:
    """Regression: a trusted segment ending in fewer stray bytes than a header opened "clean" with
    those bytes kept; the next appends landed after them, reads past them failed, and a later clean
    reopen silently lost every batch appended since. Open now sees the file does not end on a batch
    boundary and recovers the segment."""
    log = open_log(tmp_path, **{"segment.bytes": 1 << 20, "index.interval.bytes": 1 << 20})
    fill(log, 5)
    end = log.log_end_offset
    path = log.active_segment.path
    log.close()
    with open(path, "ab") as fh:
        fh.write(b"\x00" * junk)

    log = open_log(tmp_path)
    assert log.recovered_bytes == junk
    fill(log, 2)
    assert_offset_records(log, end + 6)
    log.close()
    log = open_log(tmp_path)
    assert_offset_records(log, end + 6)


# ---------------------------------------------------------------------- indexes
def _index_files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.suffix in (".index", ".timeindex")}


@pytest.mark.parametrize("shutdown", ["clean", "crash"])
def test_missing_indexes_are_rebuilt(tmp_path: Path, shutdown: str) -> None:
    log = open_log(tmp_path)
    fill(log, 20)
    end = log.log_end_offset
    expected_time = {ts: log.offset_for_timestamp(ts) for ts in (NOW, NOW + 7, NOW + end - 1, NOW + end)}
    log.close() if shutdown == "clean" else abandon(log)
    originals = _index_files(tmp_path)
    assert len(originals) >= 8
    for name in originals:
        (tmp_path / name).unlink()

    log = open_log(tmp_path)
    assert_offset_records(log, end)
    assert {ts: log.offset_for_timestamp(ts) for ts in expected_time} == expected_time
    log.close()
    assert _index_files(tmp_path) == originals


def _damage(path: Path, how: str, log_size: int) -> None:
    data = path.read_bytes()
    entry = 8 if path.suffix == ".index" else 12
    if how == "garbage":
        path.write_bytes(b"\xff" * (entry * 4))
    elif how == "torn":
        path.write_bytes(data + b"\x01\x02\x03")
    elif how == "unordered":
        assert len(data) >= 2 * entry
        path.write_bytes(data[entry : 2 * entry] + data[:entry] + data[2 * entry :])
    elif how == "past-the-log":
        if entry == 8:
            path.write_bytes(data + (1_000_000).to_bytes(4, "big") + (log_size + 10).to_bytes(4, "big"))
        else:
            path.write_bytes(data + (NOW * 2).to_bytes(8, "big") + (1_000_000).to_bytes(4, "big"))
    elif how == "empty":
        path.write_bytes(b"")


@pytest.mark.parametrize("how", ["garbage", "torn", "unordered", "past-the-log", "empty"])
@pytest.mark.parametrize("suffix", [".index", ".timeindex"])
def test_damaged_index_is_rebuilt(tmp_path: Path, how: str, suffix: str) -> None:
    log = open_log(tmp_path, **{"index.interval.bytes": 64})
    fill(log, 20)
    end = log.log_end_offset
    expected_time = {ts: log.offset_for_timestamp(ts) for ts in range(NOW - 1, NOW + end + 1, 5)}
    log.close()
    originals = _index_files(tmp_path)
    for segment_path in sorted(tmp_path.glob("*.log"))[:-1]:
        _damage(segment_path.with_suffix(suffix), how, segment_path.stat().st_size)

    log = open_log(tmp_path)
    assert_offset_records(log, end)
    for offset in range(0, end, 4):
        assert read_header(log.read(offset, 1).data).last_offset >= offset
    assert {ts: log.offset_for_timestamp(ts) for ts in expected_time} == expected_time
    log.close()
    assert _index_files(tmp_path) == originals


# ---------------------------------------------------------------------- checkpoints and the marker
@pytest.mark.parametrize(
    "content",
    [None, b"", b"garbage\n", b"0\n4\nlog_start_offset 0\n", b"0\n1\nhigh_watermark x\n", b"\xff\xfe\x00", b"7\n0\n"],
    ids=["missing", "empty", "garbage", "short", "not-a-number", "binary", "unknown-version"],
)
def test_missing_or_corrupt_log_state_means_full_recovery(tmp_path: Path, recover_spy: list[int], content) -> None:
    log = open_log(tmp_path)
    fill(log, 20)
    log.update_high_watermark(log.log_end_offset)
    end = log.log_end_offset
    bases = [s.base_offset for s in log.segments]
    abandon(log)
    state = tmp_path / "log-state"
    if content is None:
        state.unlink()
    else:
        state.write_bytes(content)
    # A torn tail is still found: the whole log is re-validated.
    os.truncate(log.segments[-1].path, log.segments[-1].path.stat().st_size - 1)

    log = open_log(tmp_path)
    assert recover_spy == bases
    last_base = batch_positions(log.active_segment.path)[-1][2]
    assert_offset_records(log, last_base)
    assert last_base < end
    # What the checkpoint held is lost: the high watermark restarts at the log start (the leader
    # tells a follower its high watermark again) and the checkpoint is written afresh.
    assert log.high_watermark == log.log_start_offset == 0
    assert (tmp_path / "log-state").read_text().startswith("0\n")


@pytest.mark.parametrize("content", [None, b"garbage", b"0\n2\n0 0\n"], ids=["missing", "garbage", "short"])
def test_leader_epoch_checkpoint_is_rebuilt_from_batch_headers(tmp_path: Path, content) -> None:
    log = open_log(tmp_path)
    for epoch in (0, 0, 1, 3, 3, 3, 5, 8, 8):
        fill(log, 2, epoch=epoch)
    entries = log.epochs.entries
    assert [e.epoch for e in entries] == [0, 1, 3, 5, 8]
    abandon(log)
    path = tmp_path / "leader-epoch-checkpoint"
    if content is None:
        path.unlink()
    else:
        path.write_bytes(content)

    log = open_log(tmp_path)
    assert log.epochs.entries == entries
    assert log.epochs.end_offset_for(3, log.log_end_offset) == (3, entries[3].start_offset)
    log.close()
    log = open_log(tmp_path)  # and it was persisted again
    assert log.epochs.entries == entries


def test_clean_shutdown_marker_skips_recovery(tmp_path: Path, recover_spy: list[int]) -> None:
    log = open_log(tmp_path)
    fill(log, 20)
    end = log.log_end_offset
    log.close()
    assert (tmp_path / ".clean-shutdown").exists()

    log = open_log(tmp_path)
    assert recover_spy == [] and log.recovered_bytes == 0
    assert not (tmp_path / ".clean-shutdown").exists()  # a crash from now on is recovered again
    assert_offset_records(log, end)
    fill(log, 1)
    abandon(log)

    log = open_log(tmp_path)
    assert recover_spy == [log.active_segment.base_offset]
    assert_offset_records(log, end + 3)


def test_fault_at_roll_leaves_a_recoverable_log(tmp_path: Path) -> None:
    for point in ("segment.roll", "segment.fsync", "log.checkpoint"):
        directory = tmp_path / point
        log = open_log(directory)
        fill(log, 3)
        end = log.log_end_offset
        with faults.armed(point, SimulatedCrash(point), times=1):
            with pytest.raises(SimulatedCrash):
                log.roll()
        abandon(log)
        log = open_log(directory)
        assert_offset_records(log, end)


# ---------------------------------------------------------------------- interrupted compaction
def _compacted_log(directory: Path) -> Log:
    """Small segments of keyed records (keys repeat), all committed: ready to clean in one group."""
    log = open_log(directory, **{"cleanup.policy": "compact", "segment.bytes": 600})
    fill(log, 16, per_batch=4, keys=5)
    log.roll()
    log.update_high_watermark(log.log_end_offset)
    log.update_config(TopicConfig.from_dict({"segment.bytes": 1 << 20}, base=log.config))  # one cleaner group
    return log


def _snapshot(log: Log) -> list[tuple]:
    return [(r.offset, r.key, r.value) for r in read_records(log)]


def _assert_latest_values(records: list[tuple], all_written: list[tuple]) -> None:
    latest = {}
    for offset, key, value in all_written:
        latest[key] = (offset, key, value)
    assert set(latest.values()) <= set(records)
    offsets = [r[0] for r in records]
    assert offsets == sorted(set(offsets))


@pytest.fixture
def compaction_case(tmp_path: Path):
    """``(directory of an uncleaned log, its records, the records after a successful clean)``."""
    source = tmp_path / "source"
    log = _compacted_log(source)
    before = _snapshot(log)
    assert len(log.segments) >= 4
    log.close()
    reference = tmp_path / "reference"
    shutil.copytree(source, reference)
    cleaned = open_log(reference, **{"cleanup.policy": "compact"})
    cleaned.update_config(TopicConfig.from_dict({"segment.bytes": 1 << 20}, base=cleaned.config))
    result = cleaned.clean(force=True)
    assert result is not None and result.segments_before >= 3 and result.segments_after == 1
    after = _snapshot(cleaned)
    assert len(after) < len(before)
    cleaned.close()
    return source, before, after


def _reopen_after_crash(log: Log, directory: Path) -> Log:
    abandon(log)
    reopened = open_log(directory, **{"cleanup.policy": "compact"})
    assert not list(directory.glob("*.cleaned")) and not list(directory.glob("*.swap"))
    return reopened


def test_compaction_crash_before_the_swap_keeps_the_old_segments(compaction_case) -> None:
    directory, before, after = compaction_case
    log = open_log(directory, **{"cleanup.policy": "compact"})
    log.update_config(TopicConfig.from_dict({"segment.bytes": 1 << 20}, base=log.config))
    with faults.armed("cleaner.swap", SimulatedCrash("before the swap"), times=1):
        with pytest.raises(SimulatedCrash):
            log.clean(force=True)
    assert list(directory.glob("*.log.cleaned"))  # written and fsynced, not yet swapped in
    log = _reopen_after_crash(log, directory)
    assert _snapshot(log) == before
    log.update_config(TopicConfig.from_dict({"segment.bytes": 1 << 20}, base=log.config))
    assert log.clean(force=True) is not None  # the next pass does the work
    assert _snapshot(log) == after


@pytest.mark.parametrize("deleted_before_crash", [0, 1, 2, "all"])
def test_compaction_crash_after_the_swap_rename_is_completed_on_open(
    compaction_case, monkeypatch: pytest.MonkeyPatch, deleted_before_crash
) -> None:
    """Crash once ``<base>.<end>.swap`` exists: before, while and after the old segments are deleted."""
    directory, before, after = compaction_case
    log = open_log(directory, **{"cleanup.policy": "compact"})
    log.update_config(TopicConfig.from_dict({"segment.bytes": 1 << 20}, base=log.config))
    group = len(log.segments) - 1
    stop_after = group if deleted_before_crash == "all" else deleted_before_crash
    deleted = []
    original_delete = Segment.delete

    def delete(segment: Segment) -> None:
        if len(deleted) == stop_after:
            raise SimulatedCrash(f"after deleting {stop_after} old segments")
        original_delete(segment)
        deleted.append(segment.base_offset)
        if len(deleted) == stop_after == group:
            raise SimulatedCrash("after deleting every old segment, before renaming the swap file")

    monkeypatch.setattr(Segment, "delete", delete)
    with pytest.raises(SimulatedCrash):
        log.clean(force=True)
    monkeypatch.undo()
    assert len(list(directory.glob("*.swap"))) == 1
    log = _reopen_after_crash(log, directory)
    assert _snapshot(log) == after
    _assert_latest_values(after, before)


def test_compaction_crash_after_the_final_rename(compaction_case, monkeypatch: pytest.MonkeyPatch) -> None:
    directory, before, after = compaction_case
    log = open_log(directory, **{"cleanup.policy": "compact"})
    log.update_config(TopicConfig.from_dict({"segment.bytes": 1 << 20}, base=log.config))
    calls = []
    original_fsync_dir = cleaner_module.fsync_dir

    def fsync_dir(path: Path) -> None:
        original_fsync_dir(path)
        calls.append(path)
        if len(calls) == 2:
            raise SimulatedCrash("after renaming the swap file, before the log knows")

    monkeypatch.setattr(cleaner_module, "fsync_dir", fsync_dir)
    with pytest.raises(SimulatedCrash):
        log.clean(force=True)
    monkeypatch.undo()
    log = _reopen_after_crash(log, directory)
    assert _snapshot(log) == after


def test_hand_made_leftovers_of_an_interrupted_compaction(compaction_case, tmp_path: Path) -> None:
    """Leftover files as a crash leaves them, made by hand: a partial ``.cleaned`` file, and a
    ``.swap`` file whose first old segment lost its ``.log`` but kept its indexes."""
    directory, before, after = compaction_case
    reference = tmp_path / "reference"
    cleaned_segment = sorted(reference.glob("*.log"))[0]
    old_logs = sorted(directory.glob("*.log"))
    end = int(sorted(reference.glob("*.log"))[1].stem)  # the active segment starts where the group ended

    partial = directory / f"{int(old_logs[-1].stem):020d}.log.cleaned"
    partial.write_bytes(cleaned_segment.read_bytes()[:100])
    (directory / f"{int(old_logs[0].stem):020d}.{end:020d}.swap").write_bytes(cleaned_segment.read_bytes())
    old_logs[0].unlink()
    (directory / ".clean-shutdown").unlink()

    log = open_log(directory, **{"cleanup.policy": "compact"})
    assert not list(directory.glob("*.cleaned")) and not list(directory.glob("*.swap"))
    assert sorted(p.name for p in directory.glob("*.log")) == sorted(p.name for p in reference.glob("*.log"))
    assert _snapshot(log) == after
    _assert_latest_values(after, before)


def test_unrelated_swap_file_names_are_discarded(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    fill(log, 5)
    end = log.log_end_offset
    log.close()
    (tmp_path / "junk.swap").write_bytes(b"x")
    (tmp_path / "1.2.3.swap").write_bytes(b"x")
    log = open_log(tmp_path)
    assert not list(tmp_path.glob("*.swap"))
    assert_offset_records(log, end)


# ---------------------------------------------------------------------- a real process killed
_CHILD = textwrap.dedent(
    """
    import sys
    from kbroker.storage.config import TopicConfig
    from kbroker.storage.log import Log
    from kbroker.storage.records import BatchBuilder

    def value_of(offset):
        return b"value-%d-" % offset + b"x" * (offset % 23)

    log = Log.open(sys.argv[1], TopicConfig.from_dict({"segment.bytes": 4096, "flush.messages": int(sys.argv[2])}))
    print("ready", log.log_end_offset, flush=True)
    first_epoch = max(log.latest_epoch, 0)
    i = 0
    while i < 1_000_000:  # bounded: never outlives a test that lost track of it
        first = log.log_end_offset
        builder = BatchBuilder("gzip" if i % 3 == 0 else None)
        for offset in range(first, first + 1 + i % 5):
            builder.append(value_of(offset), b"k", [("offset", str(offset).encode())], 1000 + offset)
        result = log.append(builder.build(), leader_epoch=first_epoch + i // 50)
        print("appended", result.last_offset + 1, flush=True)
        i += 1
    """
)


def _run_and_kill(directory: Path, flush_messages: int, target: int, deadline_s: float = 30.0) -> int:
    """Start the appending child, SIGKILL it once it reports a log end past ``target``; return the
    last log end it reported (every batch up to there was fully appended)."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(directory), str(flush_messages)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in child.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    reported = -1
    deadline = time.monotonic() + deadline_s
    try:
        while reported < target:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            assert line is not None, f"child exited early: {child.stderr.read()}"
            word, value = line.split()
            reported = int(value)
            assert time.monotonic() < deadline, f"child reached only {reported} of {target}"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        # Lines already written before the kill are complete appends too.
        while (line := lines.get(timeout=10)) is not None:
            parts = line.split()
            if line.endswith("\n") and len(parts) == 2:  # the kill can cut the last line short
                reported = max(reported, int(parts[1]))
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    return reported


@pytest.mark.parametrize("flush_messages", [1, 1_000_000])
def test_sigkill_while_appending_keeps_every_reported_batch(tmp_path: Path, flush_messages: int) -> None:
    first_end = _run_and_kill(tmp_path, flush_messages, target=1500)
    log = open_log(tmp_path)
    assert log.log_end_offset >= first_end
    assert len(log.segments) > 3
    assert_offset_records(log, log.log_end_offset)
    end = log.log_end_offset
    assert not (tmp_path / ".clean-shutdown").exists()
    abandon(log)
    # A second life on the recovered log, killed again, still loses nothing it reported.
    second_end = _run_and_kill(tmp_path, flush_messages, target=end + 500)
    log = open_log(tmp_path)
    assert log.log_end_offset >= second_end > end
    assert_offset_records(log, log.log_end_offset)
    log.close()


# ---------------------------------------------------------------------- reopen cost
def test_clean_open_of_a_large_log_reads_only_index_tails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = open_log(tmp_path, **{"segment.bytes": 256 << 10, "index.interval.bytes": 4096})
    builder_batch = batch_bytes(0, 40)  # ~2 KiB per batch
    while len(log.segments) < 7:
        log.append(builder_batch)
    end = log.log_end_offset
    total = log.size_bytes
    last_size = log.active_segment.size
    segments = len(log.segments)
    log.close()

    read_bytes = []
    original_pread = os.pread

    def pread(fd: int, size: int, offset: int) -> bytes:
        data = original_pread(fd, size, offset)
        read_bytes.append(len(data))
        return data

    monkeypatch.setattr(os, "pread", pread)
    log = open_log(tmp_path, **{"segment.bytes": 256 << 10, "index.interval.bytes": 4096})
    clean_open = sum(read_bytes)
    # Per segment: the walk from its last index entry (at most one 16 KiB chunk) and one header.
    assert clean_open <= segments * ((16 << 10) + HEADER_SIZE)
    assert clean_open < total // 10
    assert log.log_end_offset == end
    abandon(log)

    read_bytes.clear()
    log = open_log(tmp_path, **{"segment.bytes": 256 << 10, "index.interval.bytes": 4096})
    crash_open = sum(read_bytes)
    # After a crash only the segment past the recovery point (the active one) is read whole.
    assert crash_open <= last_size + segments * ((16 << 10) + HEADER_SIZE)
    assert crash_open < total // 4
    assert log.log_end_offset == end
    log.close()
