"""The partition log: an ordered list of segments in one directory, one per replica.

    <topic>-<partition>/
        00000000000000000000.log        batches, offsets [0, 1000)
        00000000000000000000.index      sparse offset -> position
        00000000000000000000.timeindex  sparse max timestamp -> offset
        00000000000000001000.log        the active segment (appends go here)
        ...
        log-state                       checkpoint: log start, recovery point, high watermark, cleaner offset
        leader-epoch-checkpoint         epoch -> start offset history (KIP-101)
        .clean-shutdown                 present only while closed cleanly

Invariants:
- ``log_start_offset <= high_watermark <= log_end_offset``; the high watermark never moves backward
  except by truncation. Reads never return a batch reaching ``max_offset`` (the replica passes the
  high watermark for consumers).
- Segment base offsets strictly increase; every batch's offsets are >= its segment's base offset
  and below the next segment's base offset. Batches are whole on disk; after a crash ``open``
  checks every batch written since the last flush (the recovery point) by CRC and cuts a torn or
  corrupt tail, so corrupt data is never served.
- Offsets are assigned here, by patching batch headers; records are never decoded on append/read.
Not thread-safe: a log is owned by one actor.
"""

from __future__ import annotations

import bisect
import os
from pathlib import Path
from typing import Iterator

from kbroker.errors import CorruptRecordError, OffsetOutOfRangeError
from kbroker.storage.batch import BatchHeader
from kbroker.storage.checkpoint import read_checkpoint, write_checkpoint
from kbroker.storage.config import TopicConfig
from kbroker.storage.epoch_cache import LeaderEpochCache
from kbroker.storage.faults import fault_point
from kbroker.storage.log_rules import (
    AppendResult,
    Clock,
    ReadResult,
    check_replicated,
    prepare_append,
    read_segments,
    retention_plan,
    should_roll,
    system_clock,
)
from kbroker.storage.records import decode_body
from kbroker.storage.segment import Segment, parse_segment_name

__all__ = ["Log", "AppendResult", "ReadResult", "Clock", "system_clock"]

_STATE_FILE = "log-state"
_EPOCH_FILE = "leader-epoch-checkpoint"
_CLEAN_MARKER = ".clean-shutdown"
_FLUSH_MARGIN_MS = 100  # append_is_quick: a flush.ms flush this close is left to the replica's own thread


class Log:
    """A segmented, crash-safe log (see module docstring). Build with ``Log.open``."""

    def __init__(self, directory: Path, config: TopicConfig, clock: Clock) -> None:
        self.directory = directory
        self.config = config
        self.clock = clock
        self.segments: list[Segment] = []
        self._bases: list[int] = []
        self.log_start_offset = 0
        self.high_watermark = 0
        self.recovery_point = 0
        self.cleaner_offset = 0
        self.epochs = LeaderEpochCache(directory / _EPOCH_FILE)
        self._unflushed_messages = 0
        self._last_flush_ms = clock()
        self.recovered_bytes = 0  # bytes cut off by the last open (0 after a clean shutdown)
        self.closed = False

    # ------------------------------------------------------------------ open / close
    @classmethod
    def open(cls, directory: str | os.PathLike, config: TopicConfig | None = None, clock: Clock = system_clock) -> "Log":
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        log = cls(directory, config or TopicConfig(), clock)
        log._load()
        return log

    def _load(self) -> None:
        from kbroker.storage.cleaner import finish_interrupted_swaps

        now = self.clock()
        for leftover in self.directory.glob("*.tmp"):
            leftover.unlink()
        finish_interrupted_swaps(self.directory)
        state = self._read_state()
        self.log_start_offset = state.get("log_start_offset", 0)
        self.recovery_point = state.get("recovery_point", 0)
        marker = self.directory / _CLEAN_MARKER
        clean = marker.exists()
        marker.unlink(missing_ok=True)

        bases = sorted(b for b in (parse_segment_name(p.name) for p in self.directory.iterdir()) if b is not None)
        self._remove_orphan_indexes(set(bases))
        interval = self.config.index_interval_bytes
        for i, base in enumerate(bases):
            next_base = bases[i + 1] if i + 1 < len(bases) else None
            segment, cut = None, 0
            if clean or (next_base is not None and next_base <= self.recovery_point):
                try:
                    segment = Segment.open_clean(self.directory, base, interval, now)
                except CorruptRecordError:
                    pass  # a trusted segment is torn (the disk lost data): validate it after all
            if segment is None:
                segment, cut = Segment.open_recover(self.directory, base, interval, now)
            if self.segments and segment.size and segment.base_offset < self.segments[-1].next_offset:
                segment.delete()  # overlaps its predecessor: left over from an interrupted operation
                continue
            self._add_segment(segment)
            self.recovered_bytes += cut
            if cut and next_base is not None:
                # Corrupt data in the middle: everything after it is unreachable; drop it.
                for later in bases[i + 1 :]:
                    Segment(self.directory, later, interval, now).delete()
                break
        if not self.segments:
            self._add_segment(Segment.create(self.directory, self.log_start_offset, interval, now))
        self.log_start_offset = min(max(self.log_start_offset, self.segments[0].base_offset), self.log_end_offset)
        self.high_watermark = min(max(state.get("high_watermark", 0), self.log_start_offset), self.log_end_offset)
        self.cleaner_offset = min(max(state.get("cleaner_offset", 0), self.log_start_offset), self.log_end_offset)
        epoch_path = self.directory / _EPOCH_FILE
        self.epochs = LeaderEpochCache.load(epoch_path)
        if self.epochs.missing:
            # Missing or unreadable history: rebuild it once from the batch headers, then persist it.
            self.epochs = LeaderEpochCache(epoch_path)
            self._rebuild_epoch_cache()
            self.epochs.persist()
        self.epochs.truncate_from_end(self.log_end_offset)
        self.epochs.truncate_from_start(self.log_start_offset)
        self.flush()  # fsyncs every segment recovered past the old recovery point, then moves it
        self.write_checkpoint()

    def _read_state(self) -> dict[str, int]:
        try:
            rows = read_checkpoint(self.directory / _STATE_FILE) or []
            return {key: int(value) for key, value in rows}
        except (ValueError, TypeError):
            return {}  # unreadable: recover everything (recovery point 0)

    def _remove_orphan_indexes(self, bases: set[int]) -> None:
        for path in self.directory.iterdir():
            stem, _, suffix = path.name.partition(".")
            if suffix in ("index", "timeindex") and stem.isdigit() and int(stem) not in bases:
                path.unlink()

    def _rebuild_epoch_cache(self) -> None:
        for segment in self.segments:
            for _, header in segment._walk_headers(0):
                if header.leader_epoch > self.epochs.latest_epoch:
                    self.epochs.assign(header.leader_epoch, header.base_offset)

    def write_checkpoint(self) -> None:
        """Persist log start, recovery point, high watermark and cleaner offset (atomically)."""
        fault_point("log.checkpoint")
        write_checkpoint(
            self.directory / _STATE_FILE,
            [
                ("log_start_offset", self.log_start_offset),
                ("recovery_point", self.recovery_point),
                ("high_watermark", self.high_watermark),
                ("cleaner_offset", self.cleaner_offset),
            ],
        )

    def close_handlers(self) -> None:
        """Close every file descriptor without flushing, checkpointing or marking the shutdown clean,
        as Kafka's closeHandlers does after a disk failure; tests use it to stand for a killed process.
        The log must not be used afterwards; the next ``open`` recovers it."""
        for segment in self.segments:
            segment.close_handlers()
        self.closed = True

    def close(self) -> None:
        """Flush, checkpoint, close files and mark the shutdown clean (next open skips recovery)."""
        if self.closed:
            return
        self.flush()
        self.write_checkpoint()
        for segment in self.segments:
            segment.close()
        (self.directory / _CLEAN_MARKER).touch()
        self.closed = True

    def delete(self) -> None:
        """Close and remove the whole log directory (topic deletion)."""
        for segment in self.segments:
            segment.delete()
        self.segments.clear()
        self._bases.clear()
        self.closed = True
        for path in self.directory.iterdir():
            path.unlink()
        self.directory.rmdir()

    # ------------------------------------------------------------------ properties
    @property
    def active_segment(self) -> Segment:
        return self.segments[-1]

    @property
    def log_end_offset(self) -> int:
        return self.segments[-1].next_offset

    @property
    def size_bytes(self) -> int:
        return sum(segment.size for segment in self.segments)

    @property
    def latest_epoch(self) -> int:
        return self.epochs.latest_epoch

    def _add_segment(self, segment: Segment) -> None:
        self.segments.append(segment)
        self._bases.append(segment.base_offset)

    def update_config(self, config: TopicConfig) -> None:
        self.config = config

    def update_high_watermark(self, offset: int) -> int:
        """Move the high watermark forward (never backward), clamped to the log end. Returns it."""
        offset = min(offset, self.log_end_offset)
        if offset > self.high_watermark:
            self.high_watermark = offset
        return self.high_watermark

    # ------------------------------------------------------------------ append
    def append(self, data: bytes | bytearray | memoryview, leader_epoch: int = -1, now_ms: int | None = None) -> AppendResult:
        """Append producer batches as the leader: assign offsets (and LogAppendTime) by patching headers.

        ``data`` holds one or more whole batches. Every batch is validated (length, counts, CRC,
        ``max.message.bytes``) before anything is written; a bad batch rejects the whole call.
        """
        now = self.clock() if now_ms is None else now_ms
        batches = prepare_append(data, self.log_end_offset, leader_epoch, now, self.config, self.epochs.latest_epoch)
        self._maybe_roll(batches.size, batches.first_offset, batches.next_offset - 1, now)
        if leader_epoch >= 0:
            self.epochs.assign(leader_epoch, batches.first_offset)
        self.active_segment.append(batches.pieces, batches.headers)
        self._after_append(batches.records, now)
        return batches.result(now if self.config.log_append_time else -1)

    def append_replicated(self, data: bytes | bytearray | memoryview, now_ms: int | None = None) -> AppendResult:
        """Append batches copied from the leader as they are (offsets and epochs already assigned).

        Batches must start at or after the log end offset and be in increasing offset order (the
        leader's log may have gaps after compaction); their leader epochs extend the epoch history.
        """
        now = self.clock() if now_ms is None else now_ms
        batches = check_replicated(data, self.log_end_offset, self.epochs.latest_epoch)
        if not batches.headers:
            return batches.result()
        self._maybe_roll(batches.size, batches.first_offset, batches.next_offset - 1, now)
        for _, header in batches.headers:
            if header.leader_epoch > self.epochs.latest_epoch:
                self.epochs.assign(header.leader_epoch, header.base_offset)
        self.active_segment.append(batches.pieces, batches.headers)
        self._after_append(batches.records, now)
        return batches.result()

    def append_is_quick(self, size: int, now_ms: int) -> bool:
        """Whether appending ``size`` bytes at ``now_ms`` is only a write to the page cache: no flush
        falls due (``flush.messages``, counting at most one record per byte; ``flush.ms`` with
        ``_FLUSH_MARGIN_MS`` to spare) and the active segment takes them without rolling (a roll
        fsyncs the segment it closes). The replica runs quick appends on its I/O thread."""
        config = self.config
        if self._unflushed_messages + size >= config.flush_messages:
            return False
        if now_ms - self._last_flush_ms + _FLUSH_MARGIN_MS >= config.flush_ms:
            return False
        end = self.log_end_offset
        return not should_roll(self.active_segment, size, end, end, now_ms, config)

    def _after_append(self, records: int, now: int) -> None:
        self._unflushed_messages += records
        if self._unflushed_messages >= self.config.flush_messages or now - self._last_flush_ms >= self.config.flush_ms:
            self.flush(now)

    def _maybe_roll(self, size: int, first_offset: int, last_offset: int, now: int) -> None:
        if should_roll(self.active_segment, size, first_offset, last_offset, now, self.config):
            self.roll(now, base_offset=first_offset)

    def roll(self, now_ms: int | None = None, base_offset: int | None = None) -> Segment:
        """Close the active segment to appends (fsync it) and start a new one at the log end."""
        fault_point("segment.roll")
        now = self.clock() if now_ms is None else now_ms
        base = max(self.log_end_offset, base_offset or 0)
        old = self.active_segment
        if old.size == 0 and old.base_offset == base:
            return old
        old.flush()
        if old.size == 0:
            old.delete()
            self.segments.pop()
            self._bases.pop()
        segment = Segment.create(self.directory, base, self.config.index_interval_bytes, now)
        self._add_segment(segment)
        self.recovery_point = max(self.recovery_point, min(base, self.log_end_offset))
        self.write_checkpoint()
        return segment

    # ------------------------------------------------------------------ flush
    def flush(self, now_ms: int | None = None) -> None:
        """fsync every segment holding data past the recovery point; move the recovery point.

        The checkpoint file is written on roll, truncation, retention and close (and whenever the
        owner calls ``write_checkpoint``), not on every flush: a stale recovery point on disk only
        means that a crash re-validates a little more data.
        """
        for segment in self.segments[self._segment_index(self.recovery_point) :]:
            segment.flush()
        self.recovery_point = self.log_end_offset
        self._unflushed_messages = 0
        self._last_flush_ms = self.clock() if now_ms is None else now_ms

    def maybe_flush(self, now_ms: int | None = None) -> bool:
        """Flush if ``flush.ms`` has passed since the last flush and there is unflushed data."""
        now = self.clock() if now_ms is None else now_ms
        if self._unflushed_messages and now - self._last_flush_ms >= self.config.flush_ms:
            self.flush(now)
            return True
        return False

    # ------------------------------------------------------------------ read
    def _segment_index(self, offset: int) -> int:
        return max(bisect.bisect_right(self._bases, offset) - 1, 0)

    def read(self, offset: int, max_bytes: int = 1 << 20, max_offset: int | None = None) -> ReadResult:
        """Whole batches starting with the one that holds ``offset``: at most ``max_bytes`` unless the
        first batch alone is larger (it is returned whole), none reaching ``max_offset`` (default:
        the log end; consumers pass the high watermark)."""
        index = self._segment_index(offset)
        return read_segments(self.segments, index, self.log_start_offset, offset, max_bytes, max_offset)

    def iter_batch_headers(self, start_offset: int = 0) -> Iterator[BatchHeader]:
        """Headers of the stored batches from the one holding ``start_offset`` to the log end, in offset
        order; no record is decoded (state rebuilt from headers: the producer table). Consume it before
        the log changes."""
        for segment in self.segments[self._segment_index(start_offset) :]:
            position = segment.find_position(max(start_offset, segment.base_offset))
            if position is not None:
                for _, header in segment._walk_headers(position):
                    yield header

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int] | None:
        """``(offset, timestamp)`` of the first record with a timestamp >= ``timestamp_ms``, or None."""
        for segment in self.segments:
            if segment.max_timestamp < timestamp_ms:
                continue
            before = segment.time_index.last_offset_before(timestamp_ms)
            start = max(self.log_start_offset, segment.base_offset if before is None else before + 1)
            position = segment.find_position(start)
            if position is None:
                continue
            for pos, header, raw in segment.iter_batches(position):
                if header.max_timestamp < timestamp_ms or header.last_offset < start:
                    continue
                for record in decode_body(raw, 0, header):
                    if record.offset >= start and record.timestamp_ms >= timestamp_ms:
                        return record.offset, record.timestamp_ms
        return None

    # ------------------------------------------------------------------ truncation
    def truncate_to(self, offset: int) -> int:
        """Remove every batch whose last offset is >= ``offset`` (a diverged follower's tail).

        Whole batches only: a batch spanning ``offset`` goes too. Returns the new log end offset.
        """
        if offset >= self.log_end_offset:
            return self.log_end_offset
        if offset <= self.log_start_offset:
            self.truncate_fully_and_start_at(offset if offset < self.log_start_offset else self.log_start_offset)
            return self.log_end_offset
        while len(self.segments) > 1 and self.segments[-1].base_offset >= offset:
            self.segments.pop().delete()
            self._bases.pop()
        self.active_segment.truncate_to(offset)
        self._after_truncation()
        return self.log_end_offset

    def truncate_fully_and_start_at(self, offset: int, now_ms: int | None = None) -> None:
        """Drop everything; the log restarts empty at ``offset`` (a follower far behind the leader)."""
        now = self.clock() if now_ms is None else now_ms
        for segment in self.segments:
            segment.delete()
        self.segments.clear()
        self._bases.clear()
        self._add_segment(Segment.create(self.directory, offset, self.config.index_interval_bytes, now))
        self.log_start_offset = offset
        self.high_watermark = offset
        self.epochs.clear()
        self._after_truncation()

    def _after_truncation(self) -> None:
        end = self.log_end_offset
        self.high_watermark = min(self.high_watermark, end)
        self.recovery_point = min(self.recovery_point, end)
        self.cleaner_offset = min(self.cleaner_offset, end)
        self.log_start_offset = min(self.log_start_offset, end)
        self.epochs.truncate_from_end(end)
        self.flush()
        self.write_checkpoint()

    # ------------------------------------------------------------------ retention
    def delete_records_before(self, offset: int) -> int:
        """Advance the log start offset to ``offset`` (at most the high watermark), dropping whole
        segments below it. Returns the new log start offset."""
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
        self.write_checkpoint()
        return self.log_start_offset

    def _delete_oldest_segment(self) -> None:
        segment = self.segments.pop(0)
        self._bases.pop(0)
        segment.delete()
        self.log_start_offset = max(self.log_start_offset, self.segments[0].base_offset)
        self.cleaner_offset = max(self.cleaner_offset, self.log_start_offset)

    def enforce_retention(self, now_ms: int | None = None) -> int:
        """Delete whole old segments by ``retention.ms`` and ``retention.bytes`` (delete policy only).

        Only data below the high watermark is deleted. The active segment is rolled first when it
        has expired entirely. Returns the number of segments deleted.
        """
        now = self.clock() if now_ms is None else now_ms
        roll, deleted = retention_plan(self.segments, self.high_watermark, now, self.config)
        if roll:
            self.roll(now)
        for _ in range(deleted):
            self._delete_oldest_segment()
        if deleted:
            self.epochs.truncate_from_start(self.log_start_offset)
            self.write_checkpoint()
        return deleted

    # ------------------------------------------------------------------ compaction
    def clean(self, now_ms: int | None = None, *, force: bool = False):
        """Compact the log if ``cleanup.policy`` includes compact and the dirty ratio is reached.

        Returns a ``CleanResult`` or None when there was nothing to do (see cleaner.py).
        """
        from kbroker.storage.cleaner import clean_log

        if not self.config.compact:
            return None
        return clean_log(self, self.clock() if now_ms is None else now_ms, force=force)

    def replace_segments(self, old: list[Segment], new: Segment) -> None:
        """Swap ``old`` (consecutive segments) for ``new`` in the segment list (cleaner's final step)."""
        first = self.segments.index(old[0])
        self.segments[first : first + len(old)] = [new]
        self._bases[first : first + len(old)] = [new.base_offset]
