"""One log segment: ``<base_offset:020d>.log`` with its ``.index`` and ``.timeindex``.

The ``.log`` file is a plain concatenation of record batches (see batch.py), in offset order.

Invariants:
- ``base_offset <=`` the base offset of every batch in the file; batch offsets strictly increase.
- The file ends on a batch boundary (``recover()`` makes it so after a crash).
- ``next_offset`` is the offset after the last batch, or ``base_offset`` when empty.
- Index entries point at batch starts; the indexes may be rebuilt from the file at any time.
Not thread-safe: owned by one ``Log``.
"""

from __future__ import annotations

import bisect
import os
from pathlib import Path
from typing import Iterator

from kbroker.errors import CorruptRecordError
from kbroker.storage.batch import HEADER_SIZE, BatchHeader, read_header, validate_batch
from kbroker.storage.faults import fault_point
from kbroker.storage.index import OffsetIndex, TimeIndex

__all__ = ["Segment", "segment_path", "parse_segment_name", "LOG_SUFFIX"]

LOG_SUFFIX = ".log"
_SCAN_CHUNK = 4 << 20  # bytes read at a time when validating a whole segment
_WALK_CHUNK = 16 << 10  # bytes read at a time when walking headers
_IOV_MAX = 1024


def segment_path(directory: Path, base_offset: int, suffix: str = LOG_SUFFIX) -> Path:
    return directory / f"{base_offset:020d}{suffix}"


def parse_segment_name(name: str) -> int | None:
    stem, dot, suffix = name.partition(".")
    if dot and suffix == LOG_SUFFIX[1:] and len(stem) == 20 and stem.isdigit():
        return int(stem)
    return None


class Segment:
    def __init__(self, directory: Path, base_offset: int, index_interval_bytes: int, created_ms: int) -> None:
        self.directory = directory
        self.base_offset = base_offset
        self.path = segment_path(directory, base_offset)
        self.index_interval_bytes = index_interval_bytes
        self.created_ms = created_ms
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self.size = os.fstat(self._fd).st_size
        self.next_offset = base_offset
        self._offset_index: OffsetIndex | None = None
        self._time_index: TimeIndex | None = None
        self._max_timestamp: int | None = -1
        self._bytes_since_index = 0
        self._dirty = False
        # the batches from the last index entry to the end, as appended (last offsets, positions):
        # find_position near the end without reading the file back; _tail_base -1 when not known
        self._tail_base = -1
        self._tail_last: list[int] = []
        self._tail_pos: list[int] = []

    # ------------------------------------------------------------------ opening and recovery
    @classmethod
    def create(cls, directory: Path, base_offset: int, index_interval_bytes: int, now_ms: int) -> "Segment":
        for suffix in (LOG_SUFFIX, ".index", ".timeindex"):
            segment_path(directory, base_offset, suffix).unlink(missing_ok=True)
        seg = cls(directory, base_offset, index_interval_bytes, now_ms)
        seg._offset_index = OffsetIndex(segment_path(directory, base_offset, ".index"), base_offset)
        seg._time_index = TimeIndex(segment_path(directory, base_offset, ".timeindex"), base_offset)
        return seg

    @classmethod
    def open_clean(cls, directory: Path, base_offset: int, index_interval_bytes: int, now_ms: int) -> "Segment":
        """Open a segment that was closed cleanly: trust the file, use the index to find its end.

        Raises ``CorruptRecordError`` when the walk from the last index entry does not end exactly
        at the end of the file (a torn tail): ``Log._load`` then recovers the segment instead."""
        seg = cls(directory, base_offset, index_interval_bytes, now_ms)
        seg._max_timestamp = None  # computed on demand
        try:
            index = seg.offset_index  # loads, rebuilds if damaged
            _, position = index.last()
            last = None
            for position, header in seg._walk_headers(position):
                last = header
            end = position + last.size if last is not None else position
            if end != seg.size:  # a tail shorter than a header: appends would land after it
                raise CorruptRecordError(f"segment {seg.path.name} ends with {seg.size - end} bytes of no whole batch")
        except CorruptRecordError:
            seg.close()
            raise  # the file is torn after all: the caller recovers it instead (Log._load)
        if last is not None:
            seg.next_offset = last.next_offset
        seg.created_ms = seg._first_batch_time(now_ms)
        return seg

    @classmethod
    def open_recover(
        cls, directory: Path, base_offset: int, index_interval_bytes: int, now_ms: int
    ) -> tuple["Segment", int]:
        """Open after a crash: check every batch's CRC, cut a torn or corrupt tail, rebuild indexes.

        Returns the segment and the number of bytes cut off.
        """
        seg = cls(directory, base_offset, index_interval_bytes, now_ms)
        cut = seg.recover()
        seg.created_ms = seg._first_batch_time(now_ms)
        return seg, cut

    def recover(self) -> int:
        """Validate the whole file; truncate at the first bad batch; rebuild both indexes."""
        offset_index = OffsetIndex(segment_path(self.directory, self.base_offset, ".index"), self.base_offset)
        time_index = TimeIndex(segment_path(self.directory, self.base_offset, ".timeindex"), self.base_offset)
        offset_index.reset()
        time_index.reset()
        self._offset_index, self._time_index = offset_index, time_index
        self.next_offset = self.base_offset
        self._max_timestamp = -1
        self._bytes_since_index = 0
        self._forget_tail()
        valid_end = 0
        for position, header in self._walk_batches_checked():
            if header.base_offset < self.next_offset:
                break  # offsets went backwards: garbage that happens to parse
            self._track(position, header)
            valid_end = position + header.size
        cut = self.size - valid_end
        if cut:
            os.ftruncate(self._fd, valid_end)
            self.size = valid_end
        # What was validated may still sit only in the page cache (written before a crash that left
        # the OS running): fsync it before anyone trusts it, e.g. a clean close skipping recovery.
        self._dirty = True
        return cut

    def _first_batch_time(self, fallback_ms: int) -> int:
        if self.size < HEADER_SIZE:
            return fallback_ms
        header = read_header(os.pread(self._fd, HEADER_SIZE, 0))
        return header.max_timestamp if header.max_timestamp >= 0 else fallback_ms

    # ------------------------------------------------------------------ indexes
    @property
    def offset_index(self) -> OffsetIndex:
        if self._offset_index is None:
            path = segment_path(self.directory, self.base_offset, ".index")
            index = OffsetIndex.load(path, self.base_offset)
            if not index.sane(self.size) or (self.size and not len(index)):
                self._rebuild_indexes()
            else:
                self._offset_index = index
        assert self._offset_index is not None
        return self._offset_index

    @property
    def time_index(self) -> TimeIndex:
        if self._time_index is None:
            path = segment_path(self.directory, self.base_offset, ".timeindex")
            index = TimeIndex.load(path, self.base_offset)
            next_offset = self.next_offset if self.size else self.base_offset
            if not index.sane(max(next_offset, self.base_offset + 1)) or (self.size and not len(index)):
                self._rebuild_indexes()
            else:
                self._time_index = index
        assert self._time_index is not None
        return self._time_index

    def _rebuild_indexes(self) -> None:
        offset_index = OffsetIndex(segment_path(self.directory, self.base_offset, ".index"), self.base_offset)
        time_index = TimeIndex(segment_path(self.directory, self.base_offset, ".timeindex"), self.base_offset)
        offset_index.reset()
        time_index.reset()
        self._offset_index, self._time_index = offset_index, time_index
        self._max_timestamp = -1
        self._bytes_since_index = 0
        self._forget_tail()
        for position, header in self._walk_headers(0):
            self._track(position, header)

    @property
    def max_timestamp(self) -> int:
        """Largest record timestamp in the segment (-1 when empty)."""
        if self._max_timestamp is None:
            ts = self.time_index.max_timestamp
            _, position = self.offset_index.last()
            for _, header in self._walk_headers(position):
                ts = max(ts, header.max_timestamp)
            self._max_timestamp = ts
        return self._max_timestamp

    def _track(self, position: int, header: BatchHeader) -> None:
        """Update indexes and counters for a batch now at ``position``."""
        assert self._offset_index is not None and self._time_index is not None
        if self._max_timestamp is not None and header.max_timestamp > self._max_timestamp:
            self._max_timestamp = header.max_timestamp
        if self._bytes_since_index >= self.index_interval_bytes or not len(self._offset_index):
            self._offset_index.append(header.base_offset, position)
            ts = self._max_timestamp if self._max_timestamp is not None else header.max_timestamp
            self._time_index.append(ts, header.last_offset)
            self._bytes_since_index = 0
            self._tail_base, self._tail_last, self._tail_pos = header.base_offset, [header.last_offset], [position]
        elif self._tail_base >= 0:
            self._tail_last.append(header.last_offset)
            self._tail_pos.append(position)
        self._bytes_since_index += header.size
        self.next_offset = header.next_offset

    # ------------------------------------------------------------------ writing
    def append(self, pieces: list, headers: list[tuple[int, BatchHeader]]) -> None:
        """Write buffers ``pieces`` (whole batches, already patched) and index ``headers``.

        ``headers`` holds ``(relative position within the pieces, header with final offsets)``.
        """
        fault_point("segment.append")
        _ = self.offset_index, self.time_index, self.max_timestamp  # loaded before tracking
        start = self.size
        total = 0
        for i in range(0, len(pieces), _IOV_MAX):
            chunk = pieces[i : i + _IOV_MAX]
            expected = sum(len(p) for p in chunk)
            written = os.writev(self._fd, chunk)
            while written < expected:  # short write: finish the rest
                flat = b"".join(bytes(p) for p in chunk)[written:]
                written += os.write(self._fd, flat)
            total += expected
        self.size = start + total
        self._dirty = True
        for rel_pos, header in headers:
            self._track(start + rel_pos, header)

    def flush(self) -> None:
        fault_point("segment.fsync")
        if self._dirty:
            os.fsync(self._fd)
            self._dirty = False
        if self._offset_index is not None:
            self._offset_index.flush()
        if self._time_index is not None:
            self._time_index.flush()

    def truncate_to(self, offset: int) -> int:
        """Remove every batch whose last offset is >= ``offset``; returns bytes removed."""
        fault_point("segment.truncate")
        if offset >= self.next_offset:
            return 0
        position = self.find_position(offset)
        if position is None:
            return 0
        removed = self.size - position
        self._forget_tail()
        os.ftruncate(self._fd, position)
        self.size = position
        self._dirty = True
        index = self.offset_index
        index.truncate_to_position(position)
        _, last_pos = index.last()
        self.next_offset = self.base_offset
        for _, header in self._walk(last_pos if len(index) else 0, checked=False):
            self.next_offset = header.next_offset
        self.time_index.truncate_to_offset(self.next_offset)
        self._max_timestamp = None  # recomputed on demand
        self._bytes_since_index = self.size - last_pos if len(index) else self.size
        return removed

    def close_handlers(self) -> None:
        """Close the file descriptors without flushing anything (a disk failure, or a test's crash)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        for index in (self._offset_index, self._time_index):
            if index is not None:
                index.close()

    def close(self) -> None:
        if self._fd >= 0:
            self.flush()
        self.close_handlers()

    def delete(self) -> None:
        self.close_handlers()
        for suffix in (LOG_SUFFIX, ".index", ".timeindex"):
            segment_path(self.directory, self.base_offset, suffix).unlink(missing_ok=True)

    # ------------------------------------------------------------------ reading
    def pread(self, size: int, position: int) -> bytes:
        return os.pread(self._fd, size, position)

    def find_position(self, offset: int) -> int | None:
        """Position of the first batch whose last offset is >= ``offset``, or None if beyond the end.
        Past the last index entry it comes from the batches this process appended there (what a
        follower push or a consumer at the high watermark reads), else from a walk of the file."""
        base = self._tail_base
        if base >= 0 and offset >= base:
            i = bisect.bisect_left(self._tail_last, offset)
            return self._tail_pos[i] if i < len(self._tail_pos) else None
        _, position = self.offset_index.lookup(offset)
        for pos, header in self._walk_headers(position):
            if header.last_offset >= offset:
                return pos
        return None

    def read(self, offset: int, max_bytes: int, max_offset: int) -> tuple[bytes, int]:
        """Whole batches from the one holding ``offset``, up to ``max_bytes`` (at least one batch),
        none reaching ``max_offset`` or beyond. Returns ``(data, next_offset_after_data)``."""
        position = self.find_position(offset)
        if position is None:
            return b"", offset
        want = max(max_bytes, HEADER_SIZE)
        data = os.pread(self._fd, min(want, self.size - position), position)
        view = memoryview(data)
        end = 0
        next_offset = offset
        while end + HEADER_SIZE <= len(view):
            header = read_header(view, end)
            if header.last_offset >= max_offset:
                break
            if end + header.size > len(view):
                if end == 0:  # the first batch is larger than max_bytes: return it whole anyway
                    data = os.pread(self._fd, header.size, position)
                    return data, header.next_offset
                break
            end += header.size
            next_offset = header.next_offset
        if end == len(data):
            return data, next_offset
        return bytes(view[:end]), next_offset

    def _forget_tail(self) -> None:
        self._tail_base, self._tail_last, self._tail_pos = -1, [], []

    def _walk_headers(self, position: int) -> Iterator[tuple[int, BatchHeader]]:
        """Batch headers from ``position`` to the end (no CRC check: the file is trusted)."""
        return self._walk(position, checked=False)

    def _walk_batches_checked(self) -> Iterator[tuple[int, BatchHeader]]:
        """Every batch from the start, fully validated; stops quietly before the first bad one."""
        return self._walk(0, checked=True, chunk=_SCAN_CHUNK)

    def _walk(self, position: int, *, checked: bool, chunk: int = _WALK_CHUNK) -> Iterator[tuple[int, BatchHeader]]:
        """Walk batches from ``position``, reading the file in chunks.

        Trusted walks (``checked=False``) raise ``CorruptRecordError`` on a batch that overruns the
        file; checked walks validate length, counts and CRC and simply stop at the first bad batch.
        """
        buf = b""
        buf_start = position
        pos = position
        while pos + HEADER_SIZE <= self.size:
            rel = pos - buf_start
            if len(buf) - rel < HEADER_SIZE:
                buf = os.pread(self._fd, min(chunk, self.size - pos), pos)
                buf_start, rel = pos, 0
            size = read_header(buf, rel).size
            if size < HEADER_SIZE or pos + size > self.size:
                if checked:
                    return
                raise CorruptRecordError(
                    f"segment {self.path.name} has a batch at position {pos} that overruns the file; "
                    "reopen the log to recover it"
                )
            if checked:
                if rel + size > len(buf):
                    buf = os.pread(self._fd, max(size, min(chunk, self.size - pos)), pos)
                    buf_start, rel = pos, 0
                try:
                    header = validate_batch(buf, rel)
                except CorruptRecordError:
                    return
            else:
                header = read_header(buf, rel)
            yield pos, header
            pos += size

    def iter_batches(self, position: int = 0) -> Iterator[tuple[int, BatchHeader, bytes]]:
        """``(position, header, batch bytes)`` for each batch from ``position`` (for the cleaner)."""
        for pos, header in self._walk_headers(position):
            yield pos, header, os.pread(self._fd, header.size, pos)
