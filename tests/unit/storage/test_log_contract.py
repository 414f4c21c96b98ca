"""The contract both log twins keep: the on-disk ``Log`` and the in-memory ``MemoryLog``.

Every test here runs against both (fixture ``make_log``); behaviour only the disk twin has (files,
fsync, checkpoints, recovery) is in test_log.py. Time is an injected clock, never ``sleep``.
Segments are small so that rolls happen, and both twins must roll at the same places.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, Union

import pytest

from kbroker.errors import (
    CorruptRecordError,
    InvalidFetchSizeError,
    InvalidRecordError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
)
from kbroker.storage.batch import CREATE_TIME, LOG_APPEND_TIME, BatchHeader, iter_batches
from kbroker.storage.config import TopicConfig
from kbroker.storage.log import Log
from kbroker.storage.memory_log import MemoryLog
from kbroker.storage.records import BatchBuilder, LogRecord, build_batch, decode_batches

AnyLog = Union[Log, MemoryLog]
T0 = 1_700_000_000_000
SMALL_SEGMENTS = {"segment.bytes": 400}
ONE_SEGMENT = {"segment.bytes": 1 << 20}


class Clock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["disk", "memory"])
def make_log(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[Callable[..., AnyLog]]:
    """``make_log(config_overrides=None)``: a fresh log of the twin under test (disk in tmp_path)."""
    made: list[AnyLog] = []

    def make(config_overrides: dict | None = None) -> AnyLog:
        config = TopicConfig.from_dict({**SMALL_SEGMENTS, **(config_overrides or {})})
        if request.param == "disk":
            log: AnyLog = Log.open(tmp_path / f"log-{len(made)}", config, clock)
        else:
            log = MemoryLog.open(None, config, clock)
        made.append(log)
        return log

    yield make
    for log in made:
        log.close()


def batch(n: int = 1, *, ts: int = T0, key: bytes | None = b"k", size: int = 20) -> bytes:
    return build_batch([(b"v" * size, key, None, ts) for _ in range(n)])


def epoch_batch(base_offset: int, leader_epoch: int, n: int = 1) -> bytes:
    """A batch as a leader would send it: offsets and leader epoch already assigned."""
    builder = BatchBuilder()
    for _ in range(n):
        builder.append(b"v", key=b"k", timestamp_ms=T0)
    return builder.build(base_offset, leader_epoch)


def headers(data: bytes) -> list[BatchHeader]:
    return [header for _, header in iter_batches(data)]


def read_raw(log: AnyLog, start: int | None = None, max_offset: int | None = None) -> bytes:
    """Every batch from ``start`` (default: the log start), one read after another."""
    offset = log.log_start_offset if start is None else start
    chunks = []
    while True:
        result = log.read(offset, 4096, max_offset)
        if not result.data:
            return b"".join(chunks)
        chunks.append(result.data)
        offset = result.next_offset


def read_all(log: AnyLog, start: int | None = None, max_offset: int | None = None) -> list[LogRecord]:
    first = log.log_start_offset if start is None else start
    return [r for r in decode_batches(read_raw(log, start, max_offset)) if r.offset >= first]


def offsets(log: AnyLog, max_offset: int | None = None) -> list[int]:
    return [r.offset for r in read_all(log, max_offset=max_offset)]


# ---------------------------------------------------------------------- append and offsets
def test_offsets_start_at_zero_and_are_contiguous_across_batches(make_log) -> None:
    log = make_log()
    results = [log.append(batch(n)) for n in (1, 3, 2, 5)]
    spans = [(r.first_offset, r.last_offset, r.records) for r in results]
    assert spans == [(0, 0, 1), (1, 3, 3), (4, 5, 2), (6, 10, 5)]
    assert log.log_end_offset == 11
    assert len(log.segments) > 1
    assert offsets(log) == list(range(11))


def test_one_append_may_carry_several_batches(make_log) -> None:
    log = make_log(ONE_SEGMENT)
    log.append(batch(1))
    data = batch(2, key=b"a") + batch(3, key=b"b") + batch(1, key=b"c")
    result = log.append(data)
    assert (result.first_offset, result.last_offset, result.records, result.size) == (1, 6, 6, len(data))
    assert [h.base_offset for h in headers(log.read(1).data)] == [1, 3, 6]
    keys = [(r.offset, r.key) for r in read_all(log, 1)]
    assert keys == [(1, b"a"), (2, b"a"), (3, b"b"), (4, b"b"), (5, b"b"), (6, b"c")]


def test_segments_roll_at_segment_bytes(make_log) -> None:
    size = len(batch())
    log = make_log({"segment.bytes": 3 * size})
    for _ in range(10):
        log.append(batch())
    assert [s.base_offset for s in log.segments] == [0, 3, 6, 9]
    assert all(s.size <= 3 * size for s in log.segments)
    assert log.size_bytes == 10 * size


def test_segments_roll_at_segment_ms_of_the_injected_clock(make_log, clock: Clock) -> None:
    log = make_log({"segment.ms": 1000, **ONE_SEGMENT})
    log.append(batch())
    clock.now += 999
    log.append(batch())
    clock.now += 1
    log.append(batch())
    assert [s.base_offset for s in log.segments] == [0, 2]


def test_roll_starts_a_segment_at_the_log_end_and_is_a_no_op_when_empty(make_log) -> None:
    log = make_log(ONE_SEGMENT)
    log.append(batch(2))
    first = log.roll()
    assert [s.base_offset for s in log.segments] == [0, 2]
    assert log.roll() is first is log.active_segment
    assert len(log.segments) == 2
    assert log.append(batch()).first_offset == 2
    assert offsets(log) == [0, 1, 2]


def test_empty_produce_request_is_rejected(make_log) -> None:
    log = make_log()
    with pytest.raises(InvalidRecordError):
        log.append(b"")
    assert log.log_end_offset == 0


def test_high_watermark_is_clamped_to_the_log_end_and_never_moves_back(make_log) -> None:
    log = make_log()
    log.append(batch(5))
    assert log.update_high_watermark(100) == 5
    assert log.update_high_watermark(2) == 5
    assert log.high_watermark == 5


# ---------------------------------------------------------------------- reads
def test_read_returns_whole_batches_from_the_one_holding_the_offset(make_log) -> None:
    log = make_log(ONE_SEGMENT)
    for _ in range(3):
        log.append(batch(3))
    result = log.read(4)
    assert [h.base_offset for h in headers(result.data)] == [3, 6]
    assert result.next_offset == 9
    assert [r.offset for r in decode_batches(result.data)] == [3, 4, 5, 6, 7, 8]


def test_read_respects_max_bytes_but_returns_at_least_one_batch(make_log) -> None:
    log = make_log(ONE_SEGMENT)
    for _ in range(5):
        log.append(batch(2))
    size = len(batch(2))
    one = log.read(0, max_bytes=1)
    assert [h.base_offset for h in headers(one.data)] == [0] and one.next_offset == 2
    assert [h.base_offset for h in headers(log.read(0, max_bytes=0).data)] == [0]
    assert [h.base_offset for h in headers(log.read(0, max_bytes=2 * size - 1).data)] == [0]
    two = log.read(2, max_bytes=2 * size)
    assert [h.base_offset for h in headers(two.data)] == [2, 4] and two.next_offset == 6


def test_read_stops_before_max_offset(make_log) -> None:
    log = make_log(ONE_SEGMENT)
    for _ in range(3):
        log.append(batch(3))
    log.update_high_watermark(4)
    below = log.read(0, max_offset=log.high_watermark)
    assert [h.base_offset for h in headers(below.data)] == [0]
    assert below.next_offset == 3
    assert log.read(3, max_offset=log.high_watermark) == (b"", 3)
    assert [h.base_offset for h in headers(log.read(0, max_offset=5).data)] == [0]  # 3..5 reaches 5
    assert [h.base_offset for h in headers(log.read(0, max_offset=6).data)] == [0, 3]
    assert offsets(log, max_offset=6) == [0, 1, 2, 3, 4, 5]
    assert [h.base_offset for h in headers(log.read(0, max_offset=9).data)] == [0, 3, 6]


def test_read_outside_the_log_raises(make_log) -> None:
    log = make_log()
    for _ in range(3):
        log.append(batch(3))
    assert log.read(9) == (b"", 9)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(10)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(-1)
    log.update_high_watermark(9)
    log.delete_records_before(4)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(3)
    with pytest.raises(InvalidFetchSizeError):
        log.read(4, max_bytes=-1)


# ---------------------------------------------------------------------- timestamps
def test_create_time_keeps_the_producers_timestamps(make_log, clock: Clock) -> None:
    log = make_log()
    result = log.append(build_batch([(b"a", b"k", None, 1000), (b"b", b"k", None, 1005)]))
    assert (result.max_timestamp, result.log_append_time) == (1005, -1)
    assert [(r.timestamp_ms, r.timestamp_type) for r in read_all(log)] == [(1000, CREATE_TIME), (1005, CREATE_TIME)]


def test_log_append_time_stamps_the_broker_time(make_log, clock: Clock) -> None:
    log = make_log({"message.timestamp.type": "LogAppendTime"})
    clock.now = T0 + 123
    result = log.append(build_batch([(b"a", b"k", None, 1000), (b"b", b"k", None, 1005)]))
    assert (result.max_timestamp, result.log_append_time) == (T0 + 123, T0 + 123)
    later = log.append(batch(), now_ms=T0 + 500)
    assert later.log_append_time == T0 + 500
    records = read_all(log)  # decoding checks every CRC: the patched header must still be valid
    assert [(r.timestamp_ms, r.timestamp_type) for r in records] == [
        (T0 + 123, LOG_APPEND_TIME),
        (T0 + 123, LOG_APPEND_TIME),
        (T0 + 500, LOG_APPEND_TIME),
    ]


@pytest.mark.parametrize("index_interval", [0, 4096])
def test_offset_for_timestamp_finds_the_first_record_at_or_after(make_log, index_interval: int) -> None:
    log = make_log({"index.interval.bytes": index_interval, "segment.bytes": 200})
    log.append(build_batch([(b"a", b"k", None, 100), (b"b", b"k", None, 200)]))
    log.append(build_batch([(b"c", b"k", None, 150)]))
    log.append(build_batch([(b"d", b"k", None, 400), (b"e", b"k", None, 300)]))
    log.append(build_batch([(b"f", b"k", None, 350)]))
    assert len(log.segments) > 1
    expected = {0: (0, 100), 100: (0, 100), 101: (1, 200), 150: (1, 200), 201: (3, 400), 400: (3, 400), 401: None}
    assert {ts: log.offset_for_timestamp(ts) for ts in expected} == expected
    log.update_high_watermark(6)
    log.delete_records_before(1)  # inside the first batch: offset 0 is gone, 1 is not
    assert log.offset_for_timestamp(0) == (1, 200)
    log.delete_records_before(2)
    assert log.offset_for_timestamp(0) == (2, 150)
    assert log.offset_for_timestamp(160) == (3, 400)


def test_offset_for_timestamp_with_log_append_time(make_log, clock: Clock) -> None:
    log = make_log({"message.timestamp.type": "LogAppendTime"})
    log.append(batch(2, ts=5), now_ms=1000)
    log.append(batch(2, ts=5), now_ms=2000)
    assert log.offset_for_timestamp(6) == (0, 1000)
    assert log.offset_for_timestamp(1500) == (2, 2000)
    assert log.offset_for_timestamp(2001) is None


# ---------------------------------------------------------------------- truncation and epochs
def test_truncate_inside_a_batch_removes_the_whole_batch(make_log) -> None:
    log = make_log()
    for _ in range(4):
        log.append(batch(3))
    log.update_high_watermark(12)
    assert log.truncate_to(100) == 12
    assert log.truncate_to(7) == 6
    assert (log.log_end_offset, log.high_watermark) == (6, 6)
    assert offsets(log) == list(range(6))
    assert log.append(batch()).first_offset == 6
    assert log.truncate_to(1) == 0
    assert (log.log_start_offset, log.log_end_offset, log.high_watermark) == (0, 0, 0)
    assert log.read(0) == (b"", 0)


def test_truncate_below_the_log_start_restarts_the_log_there(make_log) -> None:
    log = make_log()
    for _ in range(4):
        log.append(batch(3), leader_epoch=1)
    log.update_high_watermark(12)
    log.delete_records_before(6)
    assert log.truncate_to(4) == 4
    assert (log.log_start_offset, log.log_end_offset, log.high_watermark) == (4, 4, 4)
    assert log.epochs.entries == []
    assert log.append(batch(), leader_epoch=2).first_offset == 4
    assert offsets(log) == [4]


def test_truncate_fully_and_start_at_restarts_the_log_empty(make_log) -> None:
    log = make_log()
    log.append(batch(3), leader_epoch=2)
    log.update_high_watermark(3)
    log.truncate_fully_and_start_at(100)
    assert (log.log_start_offset, log.log_end_offset, log.high_watermark) == (100, 100, 100)
    assert log.epochs.entries == []
    with pytest.raises(OffsetOutOfRangeError):
        log.read(0)
    assert log.append(batch(), leader_epoch=3).first_offset == 100
    assert offsets(log) == [100]


def test_leader_epochs_are_recorded_and_answered(make_log) -> None:
    log = make_log()
    log.append(batch(2), leader_epoch=1)
    log.append(batch(1), leader_epoch=1)
    log.append(batch(3), leader_epoch=3)
    assert [tuple(e) for e in log.epochs.entries] == [(1, 0), (3, 3)]
    assert log.latest_epoch == 3
    end = log.log_end_offset
    answers = {e: log.epochs.end_offset_for(e, end) for e in (1, 2, 3, 4)}
    assert answers == {1: (1, 3), 2: (1, 3), 3: (3, 6), 4: (-1, -1)}
    assert [h.leader_epoch for h in headers(read_raw(log))] == [1, 1, 3]
    log.truncate_to(4)
    assert [tuple(e) for e in log.epochs.entries] == [(1, 0)]
    assert log.latest_epoch == 1


# ---------------------------------------------------------------------- followers
def test_append_replicated_copies_the_leaders_batches(make_log) -> None:
    leader, follower = make_log(), make_log()
    leader.append(batch(2), leader_epoch=1)
    leader.append(batch(3), leader_epoch=2)
    data = read_raw(leader)
    result = follower.append_replicated(data)
    assert (result.first_offset, result.last_offset, result.records) == (0, 4, 5)
    assert read_raw(follower) == data
    assert follower.epochs.entries == leader.epochs.entries
    assert follower.append_replicated(b"").records == 0
    assert follower.log_end_offset == 5


def test_append_replicated_rejects_batches_below_the_log_end(make_log) -> None:
    follower = make_log()
    follower.append_replicated(epoch_batch(0, 1, n=3))
    for bad in (epoch_batch(2, 1), epoch_batch(3, 1) + epoch_batch(3, 1), epoch_batch(3, 1, n=2) + epoch_batch(4, 1)):
        with pytest.raises(InvalidRecordError):
            follower.append_replicated(bad)
    assert follower.log_end_offset == 3
    assert offsets(follower) == [0, 1, 2]


def test_append_replicated_rejects_leader_epochs_going_back(make_log) -> None:
    follower = make_log()
    follower.append_replicated(epoch_batch(0, 3))
    with pytest.raises(InvalidRecordError):
        follower.append_replicated(epoch_batch(1, 2))
    with pytest.raises(InvalidRecordError):
        follower.append_replicated(epoch_batch(1, 4) + epoch_batch(2, 3))
    assert follower.log_end_offset == 1
    assert [tuple(e) for e in follower.epochs.entries] == [(3, 0)]


def test_append_replicated_accepts_gaps_left_by_compaction(make_log) -> None:
    follower = make_log()
    follower.append_replicated(epoch_batch(0, 1) + epoch_batch(10, 1) + epoch_batch(12, 2))
    assert follower.log_end_offset == 13
    assert [tuple(e) for e in follower.epochs.entries] == [(1, 0), (2, 12)]
    assert [h.base_offset for h in headers(follower.read(5).data)] == [10, 12]


def test_replicated_batch_far_past_the_log_end_starts_its_own_segment(make_log) -> None:
    follower = make_log(ONE_SEGMENT)
    follower.append_replicated(epoch_batch(0, 1))
    follower.roll()
    far = 1 + (1 << 31) + 5  # relative offsets in a segment must fit an int32
    follower.append_replicated(epoch_batch(far, 1))
    assert [s.base_offset for s in follower.segments] == [0, far]
    assert follower.log_end_offset == far + 1
    assert [h.base_offset for h in headers(follower.read(1).data)] == [far]


# ---------------------------------------------------------------------- deletion and retention
def test_delete_records_before_moves_the_log_start(make_log) -> None:
    log = make_log()
    for _ in range(4):
        log.append(batch(3), leader_epoch=1)
    log.update_high_watermark(8)
    with pytest.raises(OffsetOutOfRangeError):
        log.delete_records_before(9)
    segments_before = len(log.segments)
    assert log.delete_records_before(4) == 4
    assert log.log_start_offset == 4
    assert [h.base_offset for h in headers(log.read(4).data)][0] == 3  # the whole batch holding 4
    assert offsets(log) == list(range(4, 12))
    assert log.delete_records_before(2) == 4
    assert log.delete_records_before(8) == 8
    assert len(log.segments) < segments_before
    assert log.segments[0].base_offset <= 8
    assert [tuple(e) for e in log.epochs.entries] == [(1, 8)]


def test_retention_ms_deletes_old_segments_never_above_the_high_watermark(make_log, clock: Clock) -> None:
    log = make_log({"retention.ms": 1000, "segment.bytes": 2 * len(batch())})
    for _ in range(6):
        log.append(batch(ts=clock.now))
        clock.now += 10
    clock.now += 5000
    assert log.enforce_retention() == 0  # everything expired, nothing below the high watermark
    assert log.log_start_offset == 0
    log.update_high_watermark(3)
    assert log.enforce_retention() == 1
    assert log.log_start_offset == 2
    assert offsets(log) == [2, 3, 4, 5]
    log.update_high_watermark(6)
    log.enforce_retention()
    assert (log.log_start_offset, log.log_end_offset) == (6, 6)
    assert log.append(batch(ts=clock.now)).first_offset == 6


def test_retention_ms_keeps_recent_segments(make_log, clock: Clock) -> None:
    log = make_log({"retention.ms": 1000, "segment.bytes": 2 * len(batch())})
    for ts in (clock.now - 5000, clock.now - 5000, clock.now - 500, clock.now - 500, clock.now, clock.now):
        log.append(batch(ts=ts))
    log.update_high_watermark(6)
    assert log.enforce_retention() == 1
    assert offsets(log) == [2, 3, 4, 5]


def test_retention_never_moves_the_log_start_past_the_high_watermark_across_a_gap(make_log, clock: Clock) -> None:
    follower = make_log({"retention.ms": 1000, "segment.bytes": len(epoch_batch(0, 1))})
    for base in (0, 10, 20):  # gaps, as a compacted leader sends them; one segment each
        follower.append_replicated(epoch_batch(base, 1))
    assert [s.base_offset for s in follower.segments] == [0, 10, 20]
    clock.now += 5000
    follower.update_high_watermark(5)  # inside the gap after the first segment
    assert follower.enforce_retention() == 0
    assert follower.log_start_offset == 0
    follower.update_high_watermark(10)
    assert follower.enforce_retention() == 1
    assert (follower.log_start_offset, follower.high_watermark) == (10, 10)


def test_retention_bytes_deletes_oldest_segments_never_above_the_high_watermark(make_log) -> None:
    size = len(batch())
    log = make_log({"retention.bytes": 3 * size, "segment.bytes": 2 * size})
    for _ in range(8):
        log.append(batch())
    log.update_high_watermark(3)
    assert log.enforce_retention() == 1
    assert log.log_start_offset == 2
    log.update_high_watermark(8)
    assert log.enforce_retention() == 1
    assert log.log_start_offset == 4
    assert log.size_bytes >= 3 * size > log.size_bytes - log.segments[0].size
    assert offsets(log) == [4, 5, 6, 7]


def test_retention_applies_only_to_the_delete_policy(make_log, clock: Clock) -> None:
    log = make_log({"cleanup.policy": "compact", "retention.ms": 1, "retention.bytes": 0})
    for _ in range(10):
        log.append(batch(ts=0))
    log.update_high_watermark(10)
    assert log.enforce_retention() == 0
    assert offsets(log) == list(range(10))


# ---------------------------------------------------------------------- compaction
COMPACT = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": 0.01, "segment.bytes": 300}


def test_compaction_keeps_the_latest_record_per_key_at_its_offset(make_log, clock: Clock) -> None:
    log = make_log(COMPACT)
    written: dict[int, tuple[bytes, bytes]] = {}
    for i in range(24):
        key, value = f"k{i % 4}".encode(), f"v{i}".encode()
        log.append(build_batch([(value, key, None, clock.now)]))
        written[i] = (key, value)
    end = log.log_end_offset
    assert log.clean() is None  # nothing below the high watermark yet
    log.update_high_watermark(end)
    result = log.clean()
    assert result is not None and result.records_removed > 0
    records = read_all(log)
    assert all(written[r.offset] == (r.key, r.value) for r in records)  # offsets never move
    cleaned = [r for r in records if r.offset < result.end_offset]
    latest_below = {key: offset for offset, (key, _) in written.items() if offset < result.end_offset}
    assert sorted(r.offset for r in cleaned) == sorted(latest_below.values())
    assert {r.key: r.value for r in records} == {written[o][0]: written[o][1] for o in range(20, 24)}
    assert log.log_end_offset == end
    assert log.append(batch()).first_offset == end


def test_compaction_drops_tombstones_only_after_delete_retention_ms(make_log, clock: Clock) -> None:
    log = make_log({**COMPACT, "delete.retention.ms": 1000})
    log.append(build_batch([(b"old", b"gone", None, clock.now), (b"kept", b"stays", None, clock.now)]))
    log.append(build_batch([(None, b"gone", None, clock.now)]))
    for i in range(8):
        log.append(build_batch([(b"x" * 30, f"f{i}".encode(), None, clock.now)]))
    log.update_high_watermark(log.log_end_offset)
    clock.now += 1000
    assert log.clean() is not None
    assert [(r.offset, r.key, r.value) for r in read_all(log) if r.key in (b"gone", b"stays")] == [
        (1, b"stays", b"kept"),
        (2, b"gone", None),
    ]
    clock.now += 1
    for i in range(8, 16):
        log.append(build_batch([(b"x" * 30, f"f{i}".encode(), None, clock.now)]))
    log.update_high_watermark(log.log_end_offset)
    result = log.clean(force=True)
    assert result is not None and result.tombstones_removed == 1
    survivors = [(r.offset, r.key, r.value) for r in read_all(log) if r.key in (b"gone", b"stays")]
    assert survivors == [(1, b"stays", b"kept")]


def test_compaction_rewrites_partly_kept_batches_keeping_their_offset_span(make_log) -> None:
    log = make_log(COMPACT)
    spans = set()
    for i in range(6):
        keys = [f"u{i}.0".encode(), f"u{i}.1".encode(), b"a", b"b"]  # the batch's last records go
        result = log.append(build_batch([(f"v{i}".encode(), key, None, T0) for key in keys]))
        spans.add((result.first_offset, result.last_offset))
    log.update_high_watermark(log.log_end_offset)
    result = log.clean()
    assert result is not None and result.records_removed > 0
    after = headers(read_raw(log))
    assert {(h.base_offset, h.last_offset) for h in after} == spans
    assert any(h.records_count < h.last_offset_delta + 1 for h in after)
    assert offsets(log) == sorted(
        o for o in range(24) if o % 4 < 2 or o >= result.end_offset or o // 4 == (result.end_offset - 1) // 4
    )


def test_clean_does_nothing_without_the_compact_policy(make_log) -> None:
    log = make_log({"min.cleanable.dirty.ratio": 0.01, "segment.bytes": 300})
    for _ in range(20):
        log.append(build_batch([(b"v", b"same", None, T0)]))
    log.update_high_watermark(20)
    assert log.clean(force=True) is None
    assert offsets(log) == list(range(20))


# ---------------------------------------------------------------------- rejected input
def test_batch_above_max_message_bytes_is_rejected_and_nothing_appended(make_log) -> None:
    log = make_log({"max.message.bytes": 200})
    small, big = batch(), batch(size=300)
    for data in (big, small + big):
        with pytest.raises(RecordTooLargeError):
            log.append(data)
    assert (log.log_end_offset, log.size_bytes) == (0, 0)
    assert log.append(small).first_offset == 0


def test_garbage_is_rejected_as_corrupt_and_nothing_appended(make_log) -> None:
    log = make_log()
    good = batch(2)
    flipped = bytearray(good)
    flipped[-1] ^= 0xFF
    for data in (b"garbage" * 20, good + b"\x00" * 10, good + good[:-1], bytes(flipped), good + bytes(flipped)):
        with pytest.raises(CorruptRecordError):
            log.append(data)
        with pytest.raises(CorruptRecordError):
            log.append_replicated(data)
    assert (log.log_end_offset, log.size_bytes, offsets(log)) == (0, 0, [])


# ---------------------------------------------------------------------- one interface
def test_memory_twin_has_the_disk_logs_public_interface() -> None:
    def public(cls: type) -> set[str]:
        return {name for name in dir(cls) if not name.startswith("_")}

    assert public(Log) - public(MemoryLog) == set()


def test_reopened_disk_log_matches_the_memory_twin(tmp_path: Path) -> None:
    """Disk only: after close and reopen the disk log is indistinguishable from the memory twin."""
    clock = Clock()
    config = TopicConfig.from_dict(SMALL_SEGMENTS)

    def script(log: AnyLog) -> None:
        for i in range(10):
            log.append(batch(2, ts=T0 + i), leader_epoch=1 if i < 5 else 3)
        log.update_high_watermark(15)
        log.truncate_to(17)
        log.delete_records_before(5)

    def state(log: AnyLog) -> tuple:
        bases = [s.base_offset for s in log.segments]
        return log.log_start_offset, log.log_end_offset, log.high_watermark, log.epochs.entries, bases, read_raw(log)

    disk = Log.open(tmp_path / "log", config, clock)
    memory = MemoryLog(config, clock)
    script(disk)
    script(memory)
    disk.close()
    reopened = Log.open(tmp_path / "log", config, clock)
    try:
        assert state(reopened)[:4] == (5, 16, 15, [(1, 5), (3, 10)])
        assert len(state(reopened)[4]) > 1
        assert state(reopened) == state(memory)
    finally:
        reopened.close()


def test_append_with_an_older_leader_epoch_is_fenced_before_anything_changes(make_log) -> None:
    from kbroker.errors import FencedLeaderEpochError
    from kbroker.storage.records import build_batch

    log = make_log({})
    log.append(build_batch([(b"a", b"k")]), leader_epoch=3)
    segments_before = len(log.segments) if hasattr(log, "segments") else None
    with pytest.raises(FencedLeaderEpochError, match="epoch 2"):
        log.append(build_batch([(b"b", b"k")]), leader_epoch=2)
    assert log.log_end_offset == 1
    assert log.latest_epoch == 3
    if segments_before is not None:
        assert len(log.segments) == segments_before
