"""The memory twin of the partition log: ``MemoryLog`` has ``Log``'s interface and keeps no files.

The replication layer's test double (STYLE habit 2). Choice: it keeps the disk twin's segments
(rolled by ``segment.bytes`` / ``segment.ms``), so retention deletes whole segments and compaction
spares the active one exactly as on disk, and reads return the same bytes:

    MemoryLog.segments:      [MemorySegment(base 0), MemorySegment(base 37), ..., active segment]
    MemorySegment.batches:   [(BatchHeader, batch bytes), ...]     positions are list indexes

One rule, two twins: both call the same pure code for validation and offset assignment
(``log.prepare_append``), follower continuity (``log.check_replicated``), reads
(``log.read_segments``), rolling (``log.should_roll``), retention (``log.retention_plan``), the
cleaner pass (``cleaner.clean_log`` with an in-memory group rewrite, ``cleaner.compact_batch``) and
the epoch history (``LeaderEpochCache`` with path None).

Invariants (``Log``'s):
- ``log_start_offset <= high_watermark <= log_end_offset``; the high watermark moves back only by
  truncation. Reads never return a batch reaching ``max_offset``.
- Segment base offsets strictly increase; a segment's batches lie in [base, next segment's base),
  in increasing offset order. Stored batches are whole, validated and already patched.
- Nothing outlives the object: flush, maybe_flush, write_checkpoint and close keep nothing, and
  ``recovery_point`` is the log end. Fault points segment.append/roll/truncate fire as on disk.
Not thread-safe: owned by one actor (or one test).
"""

from __future__ import annotations

import bisect
from typing import Iterable, Iterator

from kbroker.errors import OffsetOutOfRangeError
from kbroker.storage.batch import BatchHeader, read_header
from kbroker.storage.cleaner import CleanResult, clean_log, compact_group
from kbroker.storage.config import TopicConfig
from kbroker.storage.epoch_cache import LeaderEpochCache
from kbroker.storage.faults import fault_point
from kbroker.storage.log_rules import AppendResult, Clock, PreparedBatches, ReadResult, system_clock
from kbroker.storage.log_rules import check_replicated, prepare_append, read_segments, retention_plan, should_roll
from kbroker.storage.records import decode_body

__all__ = ["MemoryLog", "MemorySegment"]


class MemorySegment:
    """Whole batches of one segment, in offset order, with what the cleaner and the shared policies
    read from a disk ``Segment``. Positions are indexes into ``batches``."""

    batches: list[tuple[BatchHeader, bytes]]

    def __init__(self, base_offset: int, created_ms: int) -> None:
        self.base_offset = base_offset
        self.created_ms = created_ms
        self._refill([])

    def _refill(self, batches: Iterable[tuple[BatchHeader, bytes]]) -> None:
        self.batches, self._last_offsets = [], []
        self.size, self.next_offset, self.max_timestamp = 0, self.base_offset, -1
        for header, raw in batches:
            self.append(header, raw)

    def append(self, header: BatchHeader, raw: bytes) -> None:
        self.batches.append((header, raw))
        self._last_offsets.append(header.last_offset)
        self.size += len(raw)
        self.next_offset = header.next_offset
        self.max_timestamp = max(self.max_timestamp, header.max_timestamp)

    def truncate_to(self, offset: int) -> None:
        """Remove every batch whose last offset is >= ``offset`` (in place, as ``Segment.truncate_to``)."""
        position = self.find_position(offset)
        if position is not None:
            self._refill(self.batches[:position])

    def find_position(self, offset: int) -> int | None:
        """Index of the first batch whose last offset is >= ``offset``, or None if beyond the end."""
        position = bisect.bisect_left(self._last_offsets, offset)
        return position if position < len(self.batches) else None

    def iter_batches(self, position: int = 0) -> Iterator[tuple[int, BatchHeader, bytes]]:
        return ((i, header, raw) for i, (header, raw) in enumerate(self.batches[position:], position))

    def read(self, offset: int, max_bytes: int, max_offset: int) -> tuple[bytes, int]:
        """As ``Segment.read``: whole batches from the one holding ``offset``, at most ``max_bytes``
        unless the first alone is larger, none reaching ``max_offset``. ``(data, next offset)``."""
        position = self.find_position(offset)
        if position is None:
            return b"", offset
        out: list[bytes] = []
        size, next_offset = 0, offset
        for header, raw in self.batches[position:]:
            if header.last_offset >= max_offset or (out and size + len(raw) > max_bytes):
                break
            out.append(raw)
            size += len(raw)
            next_offset = header.next_offset
        return b"".join(out), next_offset


class MemoryLog:
    """``Log``'s public interface in memory (see the module docstring)."""

    def __init__(self, config: TopicConfig | None = None, clock: Clock = system_clock) -> None:
        self.directory = None
        self.config = config or TopicConfig()
        self.clock = clock
        self.segments: list[MemorySegment] = [MemorySegment(0, clock())]
        self.log_start_offset = self.high_watermark = self.cleaner_offset = 0
        self.epochs = LeaderEpochCache(None)
        self.recovered_bytes = 0
        self.closed = False

    @classmethod
    def open(
        cls, directory: object = None, config: TopicConfig | None = None, clock: Clock = system_clock
    ) -> "MemoryLog":
        """Same signature as ``Log.open``; ``directory`` is ignored (a new, empty log every time)."""
        return cls(config, clock)

    def _now(self, now_ms: int | None) -> int:
        return self.clock() if now_ms is None else now_ms

    # ------------------------------------------------------------------ properties
    @property
    def active_segment(self) -> MemorySegment:
        return self.segments[-1]

    @property
    def log_end_offset(self) -> int:
        return self.segments[-1].next_offset

    @property
    def recovery_point(self) -> int:
        return self.log_end_offset

    @property
    def size_bytes(self) -> int:
        return sum(segment.size for segment in self.segments)

    @property
    def latest_epoch(self) -> int:
        return self.epochs.latest_epoch

    def update_config(self, config: TopicConfig) -> None:
        self.config = config

    def update_high_watermark(self, offset: int) -> int:
        """Move the high watermark forward (never backward), clamped to the log end. Returns it."""
        self.high_watermark = max(self.high_watermark, min(offset, self.log_end_offset))
        return self.high_watermark

    # ------------------------------------------------------------------ append
    def append(
        self, data: bytes | bytearray | memoryview, leader_epoch: int = -1, now_ms: int | None = None
    ) -> AppendResult:
        """As ``Log.append``: validate, assign offsets (and LogAppendTime) by patching, all or nothing."""
        now = self._now(now_ms)
        batches = prepare_append(data, self.log_end_offset, leader_epoch, now, self.config, self.epochs.latest_epoch)
        self._maybe_roll(batches, now)
        if leader_epoch >= 0:
            self.epochs.assign(leader_epoch, batches.first_offset)
        self._write(batches)
        return batches.result(now if self.config.log_append_time else -1)

    def append_is_quick(self, size: int, now_ms: int) -> bool:
        """Always: nothing here is fsynced (the disk log's answer depends on rolls and flushes)."""
        return True

    def append_replicated(self, data: bytes | bytearray | memoryview, now_ms: int | None = None) -> AppendResult:
        """As ``Log.append_replicated``: batches from the leader, kept as they are."""
        now = self._now(now_ms)
        batches = check_replicated(data, self.log_end_offset, self.epochs.latest_epoch)
        if batches.headers:
            self._maybe_roll(batches, now)
            for _, header in batches.headers:
                if header.leader_epoch > self.epochs.latest_epoch:
                    self.epochs.assign(header.leader_epoch, header.base_offset)
            self._write(batches)
        return batches.result()

    def _maybe_roll(self, batches: PreparedBatches, now: int) -> None:
        first, last = batches.first_offset, batches.next_offset - 1
        if should_roll(self.active_segment, batches.size, first, last, now, self.config):
            self.roll(now, base_offset=first)

    def _write(self, batches: PreparedBatches) -> None:
        fault_point("segment.append")
        blob = b"".join(batches.pieces)  # a private copy: the caller may reuse its buffer
        for position, header in batches.headers:
            raw = blob[position : position + header.size]
            self.active_segment.append(read_header(raw), raw)

    def roll(self, now_ms: int | None = None, base_offset: int | None = None) -> MemorySegment:
        """Start a new active segment at the log end (or ``base_offset`` past it)."""
        fault_point("segment.roll")
        now = self._now(now_ms)
        base = max(self.log_end_offset, base_offset or 0)
        old = self.active_segment
        if old.size == 0 and old.base_offset == base:
            return old
        if old.size == 0:
            self.segments.pop()
        self.segments.append(MemorySegment(base, now))
        return self.segments[-1]

    # ------------------------------------------------------------------ durability: nothing to keep
    def flush(self, now_ms: int | None = None) -> None: ...

    def maybe_flush(self, now_ms: int | None = None) -> bool:
        return False

    def write_checkpoint(self) -> None: ...

    def close(self) -> None:
        self.closed = True

    def close_handlers(self) -> None:
        """As ``Log.close_handlers``; nothing to release in memory."""
        self.closed = True

    def delete(self) -> None:
        self.segments = [MemorySegment(self.log_end_offset, self.clock())]
        self.closed = True

    # ------------------------------------------------------------------ read
    def read(self, offset: int, max_bytes: int = 1 << 20, max_offset: int | None = None) -> ReadResult:
        """As ``Log.read``: whole batches from one segment, at least one, none reaching ``max_offset``."""
        index = max(bisect.bisect_right([s.base_offset for s in self.segments], offset) - 1, 0)
        return read_segments(self.segments, index, self.log_start_offset, offset, max_bytes, max_offset)

    def iter_batch_headers(self, start_offset: int = 0) -> Iterator[BatchHeader]:
        """As ``Log.iter_batch_headers``: headers from the batch holding ``start_offset`` on."""
        for segment in self.segments:
            if segment.next_offset > start_offset:
                position = segment.find_position(start_offset)
                if position is not None:
                    for _, header, _ in segment.iter_batches(position):
                        yield header

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int] | None:
        """``(offset, timestamp)`` of the first record with a timestamp >= ``timestamp_ms``, or None."""
        for segment in self.segments:
            for _, header, raw in segment.iter_batches():
                if header.max_timestamp < timestamp_ms or header.last_offset < self.log_start_offset:
                    continue
                for record in decode_body(raw, 0, header):
                    if record.offset >= self.log_start_offset and record.timestamp_ms >= timestamp_ms:
                        return record.offset, record.timestamp_ms
        return None

    # ------------------------------------------------------------------ truncation
    def truncate_to(self, offset: int) -> int:
        """As ``Log.truncate_to``: remove every batch whose last offset is >= ``offset``."""
        if offset >= self.log_end_offset:
            return self.log_end_offset
        if offset <= self.log_start_offset:
            self.truncate_fully_and_start_at(offset)
            return self.log_end_offset
        fault_point("segment.truncate")
        while len(self.segments) > 1 and self.segments[-1].base_offset >= offset:
            self.segments.pop()
        self.active_segment.truncate_to(offset)
        self._after_truncation()
        return self.log_end_offset

    def truncate_fully_and_start_at(self, offset: int, now_ms: int | None = None) -> None:
        """Drop everything; the log restarts empty at ``offset``."""
        self.segments = [MemorySegment(offset, self._now(now_ms))]
        self.log_start_offset = self.high_watermark = offset
        self.epochs.clear()
        self._after_truncation()

    def _after_truncation(self) -> None:
        end = self.log_end_offset
        self.high_watermark = min(self.high_watermark, end)
        self.cleaner_offset = min(self.cleaner_offset, end)
        self.log_start_offset = min(self.log_start_offset, end)
        self.epochs.truncate_from_end(end)

    # ------------------------------------------------------------------ retention
    def delete_records_before(self, offset: int) -> int:
        """As ``Log.delete_records_before``: move the log start (at most to the high watermark)."""
        if offset > self.high_watermark:
            raise OffsetOutOfRangeError(
                f"cannot delete records before {offset}: beyond the high watermark {self.high_watermark}"
            )
        if offset <= self.log_start_offset:
            return self.log_start_offset
        self.log_start_offset = offset
        while len(self.segments) > 1 and self.segments[1].base_offset <= offset:
            self._delete_oldest_segment()
        self.epochs.truncate_from_start(offset)
        return self.log_start_offset

    def _delete_oldest_segment(self) -> None:
        self.segments.pop(0)
        self.log_start_offset = max(self.log_start_offset, self.segments[0].base_offset)
        self.cleaner_offset = max(self.cleaner_offset, self.log_start_offset)

    def enforce_retention(self, now_ms: int | None = None) -> int:
        """As ``Log.enforce_retention``: whole segments, by the shared ``retention_plan``."""
        now = self._now(now_ms)
        roll, deleted = retention_plan(self.segments, self.high_watermark, now, self.config)
        if roll:
            self.roll(now)
        for _ in range(deleted):
            self._delete_oldest_segment()
        if deleted:
            self.epochs.truncate_from_start(self.log_start_offset)
        return deleted

    # ------------------------------------------------------------------ compaction
    def clean(self, now_ms: int | None = None, *, force: bool = False) -> CleanResult | None:
        """As ``Log.clean``: the shared cleaner pass, each group of segments rewritten in memory."""
        if not self.config.compact:
            return None
        return clean_log(self, self._now(now_ms), force=force, rewrite=_rewrite_group)

    def replace_segments(self, old: list[MemorySegment], new: MemorySegment) -> None:
        first = self.segments.index(old[0])
        self.segments[first : first + len(old)] = [new]


def _rewrite_group(
    log: MemoryLog, group: list[MemorySegment], offset_map: dict[bytes, int], now_ms: int
) -> tuple[MemorySegment, int, int]:
    """The cleaner's last step, in memory: ``compact_group`` the batches, swap the group for the result."""
    new = MemorySegment(group[0].base_offset, now_ms)
    tally = [0, 0]
    for data in compact_group(group, offset_map, now_ms, log.config.delete_retention_ms, tally):
        new.append(read_header(data), data)
    if new.batches and new.batches[0][0].max_timestamp >= 0:
        new.created_ms = new.batches[0][0].max_timestamp  # dated as the disk twin dates a rewritten segment
    log.replace_segments(group, new)
    return new, tally[0], tally[1]
