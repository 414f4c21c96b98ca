"""Producer ids for idempotent producers (``InitProducerId``), never repeated across restarts.

    DATA/controller/producer-ids.json     {"version": 1, "next_block": N}

Ids are handed out from blocks of ``block_size`` (as Kafka's ProducerIdBlock): before the first id
of a block is given, the end of that block is persisted (temp file, fsync, rename, fsync of the
directory). After a restart, allocation resumes at the persisted end, so an id given before a
crash is never given again; at most one block's unused ids are skipped.

Invariants:
- every id returned is greater than every id returned before, in this process and in any earlier
  one that used the same file;
- the file is written before an id from a new block leaves ``allocate``.
Not thread-safe: owned by the controller actor. ``path=None`` keeps everything in memory (tests).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Final

from kbroker.errors import CorruptRecordError
from kbroker.storage.checkpoint import fsync_dir

__all__ = ["PRODUCER_IDS_FILE", "MAX_PRODUCER_EPOCH", "ProducerIdAllocator"]

PRODUCER_IDS_FILE: Final = Path("controller") / "producer-ids.json"
"""Relative to the data directory."""
MAX_PRODUCER_EPOCH: Final = 32767  # int16 in the batch header
_VERSION: Final = 1


class ProducerIdAllocator:
    def __init__(self, path: Path | None, *, block_size: int = 1000) -> None:
        if block_size < 1:
            raise ValueError(f"block_size must be positive, got {block_size}")
        self.path = path
        self.block_size = block_size
        self._next = self._load()
        self._block_end = self._next  # nothing reserved yet in this process

    def _load(self) -> int:
        if self.path is None:
            return 0
        try:
            doc = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            raise CorruptRecordError(f"{self.path} is unreadable ({exc}); restore it or remove it with care") from None
        if not isinstance(doc, dict):
            raise CorruptRecordError(f"{self.path} is damaged: {doc!r}")
        value = doc.get("next_block")
        if doc.get("version") != _VERSION or isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise CorruptRecordError(f"{self.path} is damaged: {doc!r}")
        return value

    @property
    def issued_below(self) -> int:
        """Every id below this one may have been handed out (in this process or an earlier one)."""
        return self._next

    def allocate(self) -> int:
        """A fresh producer id."""
        if self._next >= self._block_end:
            self._reserve(self._next + self.block_size)
        producer_id = self._next
        self._next += 1
        return producer_id

    def _reserve(self, end: int) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, (json.dumps({"version": _VERSION, "next_block": end}) + "\n").encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            fsync_dir(self.path.parent)
        self._block_end = end

    def init_producer(self, producer_id: int, producer_epoch: int) -> tuple[int, int]:
        """``InitProducerId``: a new id at epoch 0, or the same id with the next epoch when the
        producer names one this controller issued (a new id once the epoch would overflow)."""
        if producer_id < 0 or producer_id >= self._next or producer_epoch < 0:
            return self.allocate(), 0
        if producer_epoch >= MAX_PRODUCER_EPOCH:
            return self.allocate(), 0
        return producer_id, producer_epoch + 1
