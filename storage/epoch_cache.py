"""Leader epoch history: for each leader epoch, the first offset written in it (Kafka's KIP-101).

A follower asks the new leader "where does my last epoch end in your log?" and truncates to that
offset, instead of trusting its high watermark. This module is the pure bookkeeping plus its
checkpoint file ``leader-epoch-checkpoint`` (entries ``epoch start_offset``).

Invariants: entries are strictly increasing in both epoch and start offset; the start offset of
every entry is below the log end offset of the log that owns it. Not thread-safe: owned by one log.
"""

from __future__ import annotations

import bisect
from pathlib import Path
from typing import NamedTuple

from kbroker.storage.checkpoint import read_checkpoint, write_checkpoint

__all__ = ["EpochEntry", "LeaderEpochCache", "UNDEFINED_EPOCH", "UNDEFINED_OFFSET"]

UNDEFINED_EPOCH = -1
UNDEFINED_OFFSET = -1


class EpochEntry(NamedTuple):
    epoch: int
    start_offset: int


class LeaderEpochCache:
    def __init__(self, path: Path | None, entries: list[EpochEntry] | None = None) -> None:
        self._path = path
        self._entries: list[EpochEntry] = list(entries or [])

    @classmethod
    def load(cls, path: Path) -> "LeaderEpochCache":
        try:
            rows = read_checkpoint(path)
            entries = [EpochEntry(int(e), int(o)) for e, o in rows or []]
            missing = rows is None
        except (ValueError, TypeError):
            entries, missing = [], True  # rebuilt from the batches' epochs by the log on open
        cache = cls(path, entries)
        cache.missing = missing
        return cache

    missing = False  # set by load() when the checkpoint file was absent or unreadable

    @property
    def entries(self) -> list[EpochEntry]:
        return list(self._entries)

    @property
    def latest_epoch(self) -> int:
        return self._entries[-1].epoch if self._entries else UNDEFINED_EPOCH

    def start_offset_of(self, epoch: int) -> int | None:
        for entry in self._entries:
            if entry.epoch == epoch:
                return entry.start_offset
        return None

    def assign(self, epoch: int, start_offset: int) -> bool:
        """Record that ``epoch`` starts at ``start_offset``; returns True when the history changed."""
        if epoch < 0:
            return False
        if self._entries and epoch == self._entries[-1].epoch:
            return False
        if self._entries and epoch < self._entries[-1].epoch:
            # An older epoch cannot start after a newer one: the caller's data is stale.
            raise ValueError(f"leader epoch {epoch} is older than the latest epoch {self._entries[-1].epoch}")
        self._entries = [e for e in self._entries if e.start_offset < start_offset]
        self._entries.append(EpochEntry(epoch, start_offset))
        self._persist()
        return True

    def end_offset_for(self, requested_epoch: int, log_end_offset: int) -> tuple[int, int]:
        """``(epoch, end_offset)`` as Kafka's OffsetForLeaderEpoch answers it.

        The end offset of an epoch is the start offset of the next higher epoch, or the log end offset
        for the latest. For an epoch unknown here, the largest known epoch below it is returned.
        """
        if requested_epoch == UNDEFINED_EPOCH or not self._entries:
            return UNDEFINED_EPOCH, UNDEFINED_OFFSET
        if requested_epoch == self._entries[-1].epoch:
            return requested_epoch, log_end_offset
        epochs = [e.epoch for e in self._entries]
        higher = bisect.bisect_right(epochs, requested_epoch)
        if higher == len(epochs):
            return UNDEFINED_EPOCH, UNDEFINED_OFFSET
        if higher == 0:
            return requested_epoch, self._entries[0].start_offset
        return self._entries[higher - 1].epoch, self._entries[higher].start_offset

    def truncate_from_end(self, end_offset: int) -> None:
        """Forget epochs that start at or after ``end_offset`` (the log was truncated there)."""
        kept = [e for e in self._entries if e.start_offset < end_offset]
        if kept != self._entries:
            self._entries = kept
            self._persist()

    def truncate_from_start(self, start_offset: int) -> None:
        """The log now starts at ``start_offset``: drop epochs wholly before it, clamp the one spanning it."""
        before = [e for e in self._entries if e.start_offset <= start_offset]
        if not before:
            return
        after = [e for e in self._entries if e.start_offset > start_offset]
        last = before[-1]
        kept = [EpochEntry(last.epoch, start_offset), *after]
        if kept != self._entries:
            self._entries = kept
            self._persist()

    def clear(self) -> None:
        if self._entries:
            self._entries = []
            self._persist()

    def persist(self) -> None:
        """Write the history to its checkpoint file (also when empty, so its absence means loss)."""
        self._persist()

    def _persist(self) -> None:
        if self._path is not None:
            write_checkpoint(self._path, [tuple(e) for e in self._entries])
