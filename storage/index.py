"""Sparse per-segment indexes: offset -> file position, and timestamp -> offset.

    <base>.index      entries of 8 bytes:  relative_offset int32 | position int32      (big-endian)
    <base>.timeindex  entries of 12 bytes: timestamp int64 | relative_offset int32     (big-endian)

One entry is added after at least ``index.interval.bytes`` of log data, pointing at the start of a
batch. Entries are strictly increasing in every field. An index is only a hint: it can always be
rebuilt from the segment's batch headers, which is what happens when ``sane()`` says it is damaged.
Not thread-safe: owned by its segment.
"""

from __future__ import annotations

import bisect
import os
import struct
import sys
from array import array
from pathlib import Path

__all__ = ["OffsetIndex", "TimeIndex"]

_OFFSET_ENTRY = struct.Struct(">ii")
_TIME_ENTRY = struct.Struct(">qi")
_SWAP = sys.byteorder == "little"


def _read_file(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return b""


class _IndexFile:
    """Append-only file of fixed-size entries with an in-memory copy of the columns."""

    entry: struct.Struct

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._dirty = False

    def _open_fd(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        return self._fd

    def _write(self, data: bytes) -> None:
        os.write(self._open_fd(), data)
        self._dirty = True

    def _rewrite(self, data: bytes) -> None:
        fd = self._open_fd()
        os.ftruncate(fd, 0)
        if data:
            os.write(fd, data)
        self._dirty = True

    def flush(self) -> None:
        if self._fd is not None and self._dirty:
            os.fsync(self._fd)
            self._dirty = False

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def delete(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


class OffsetIndex(_IndexFile):
    entry = _OFFSET_ENTRY

    def __init__(self, path: Path, base_offset: int) -> None:
        super().__init__(path)
        self.base_offset = base_offset
        self.rel_offsets = array("i")
        self.positions = array("i")

    @classmethod
    def load(cls, path: Path, base_offset: int) -> "OffsetIndex":
        index = cls(path, base_offset)
        data = _read_file(path)
        usable = len(data) - len(data) % 8
        flat = array("i")
        flat.frombytes(data[:usable])
        if _SWAP:
            flat.byteswap()
        index.rel_offsets = flat[0::2]
        index.positions = flat[1::2]
        index._torn = usable != len(data)
        return index

    _torn = False

    def __len__(self) -> int:
        return len(self.rel_offsets)

    def sane(self, log_size: int) -> bool:
        """Entries strictly increasing, non-negative, within the log file, no torn tail."""
        if self._torn:
            return False
        rel, pos = self.rel_offsets, self.positions
        for i in range(len(rel)):
            if rel[i] < 0 or pos[i] < 0 or pos[i] >= log_size:
                return False
            if i and (rel[i] <= rel[i - 1] or pos[i] <= pos[i - 1]):
                return False
        return True

    def append(self, offset: int, position: int) -> None:
        rel = offset - self.base_offset
        if self.rel_offsets and rel <= self.rel_offsets[-1]:
            return
        self.rel_offsets.append(rel)
        self.positions.append(position)
        self._write(_OFFSET_ENTRY.pack(rel, position))

    def lookup(self, offset: int) -> tuple[int, int]:
        """Largest entry with offset <= ``offset``: ``(offset, position)``; ``(base, 0)`` if none."""
        i = bisect.bisect_right(self.rel_offsets, offset - self.base_offset) - 1
        if i < 0:
            return self.base_offset, 0
        return self.base_offset + self.rel_offsets[i], self.positions[i]

    def last(self) -> tuple[int, int]:
        if not self.rel_offsets:
            return self.base_offset, 0
        return self.base_offset + self.rel_offsets[-1], self.positions[-1]

    def truncate_to_position(self, position: int) -> None:
        """Drop entries pointing at ``position`` or beyond."""
        keep = bisect.bisect_left(self.positions, position)
        if keep == len(self.positions):
            return
        del self.rel_offsets[keep:]
        del self.positions[keep:]
        self._rewrite(b"".join(_OFFSET_ENTRY.pack(r, p) for r, p in zip(self.rel_offsets, self.positions)))

    def reset(self) -> None:
        self.rel_offsets = array("i")
        self.positions = array("i")
        self._torn = False
        self._rewrite(b"")


class TimeIndex(_IndexFile):
    entry = _TIME_ENTRY

    def __init__(self, path: Path, base_offset: int) -> None:
        super().__init__(path)
        self.base_offset = base_offset
        self.timestamps: list[int] = []
        self.rel_offsets: list[int] = []
        self._torn = False

    @classmethod
    def load(cls, path: Path, base_offset: int) -> "TimeIndex":
        index = cls(path, base_offset)
        data = _read_file(path)
        usable = len(data) - len(data) % 12
        for ts, rel in _TIME_ENTRY.iter_unpack(data[:usable]):
            index.timestamps.append(ts)
            index.rel_offsets.append(rel)
        index._torn = usable != len(data)
        return index

    def __len__(self) -> int:
        return len(self.timestamps)

    def sane(self, next_offset: int) -> bool:
        if self._torn:
            return False
        limit = next_offset - self.base_offset
        for i in range(len(self.timestamps)):
            if self.rel_offsets[i] < 0 or self.rel_offsets[i] >= limit:
                return False
            if i and (self.timestamps[i] <= self.timestamps[i - 1] or self.rel_offsets[i] < self.rel_offsets[i - 1]):
                return False
        return True

    @property
    def max_timestamp(self) -> int:
        return self.timestamps[-1] if self.timestamps else -1

    def append(self, timestamp: int, offset: int) -> None:
        """Record that the largest timestamp up to ``offset`` is ``timestamp`` (only if it grew)."""
        if self.timestamps and timestamp <= self.timestamps[-1]:
            return
        rel = offset - self.base_offset
        self.timestamps.append(timestamp)
        self.rel_offsets.append(rel)
        self._write(_TIME_ENTRY.pack(timestamp, rel))

    def last_offset_before(self, timestamp: int) -> int | None:
        """Offset of the last entry whose timestamp is < ``timestamp``: every record up to it is older."""
        i = bisect.bisect_left(self.timestamps, timestamp) - 1
        if i < 0:
            return None
        return self.base_offset + self.rel_offsets[i]

    def truncate_to_offset(self, next_offset: int) -> None:
        """Drop entries for offsets at or beyond ``next_offset``."""
        keep = bisect.bisect_left(self.rel_offsets, next_offset - self.base_offset)
        if keep == len(self.rel_offsets):
            return
        del self.timestamps[keep:]
        del self.rel_offsets[keep:]
        self._rewrite(b"".join(_TIME_ENTRY.pack(t, r) for t, r in zip(self.timestamps, self.rel_offsets)))

    def reset(self) -> None:
        self.timestamps = []
        self.rel_offsets = []
        self._torn = False
        self._rewrite(b"")
