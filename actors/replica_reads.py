"""Consumer reads of a partition leader: fetches clamped at the high watermark, with long poll, and
ListOffsets.

    ConsumerReads
        rlog                        the replica's log (read through it, clamped at its high watermark)
        waiting: Purgatory[PendingFetch]
            key = the high watermark when it last fell short of min_bytes (ready once it moves past)
            deadline = arrival + max_wait_ms (then answered with whatever there is)

Invariants:
- No read returns a batch reaching the high watermark (the layer that knows the bound clamps:
  STYLE habit 3); an offset outside [log start, log end] is OffsetOutOfRange, one in
  [high watermark, log end] reads nothing yet.
- A waiting fetch completes exactly once: when min_bytes are readable after a high watermark
  advance, at its deadline, or failed when the replica stops leading.
The caller (ReplicaState) checks role and epoch first. Pure; owned by one actor.
"""

from __future__ import annotations

from typing import NamedTuple

from kbroker.actors.purgatory import Purgatory
from kbroker.actors.replica_log import ReplicaLog
from kbroker.actors.replica_outbox import FetchResult, ListOffsetsResult
from kbroker.errors import KBrokerError
from kbroker.storage.log import ReadResult
from kbroker.transport.messages_client import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP

__all__ = ["ConsumerReads", "PendingFetch"]


class PendingFetch(NamedTuple):
    request_id: object
    offset: int
    max_bytes: int
    min_bytes: int
    deadline_ms: int


class ConsumerReads:
    def __init__(self, rlog: ReplicaLog) -> None:
        self.rlog = rlog
        self._waiting: Purgatory[PendingFetch] = Purgatory()

    def __len__(self) -> int:
        return len(self._waiting)

    def read(self, offset: int, max_bytes: int) -> ReadResult:
        """Whole batches from ``offset``, none reaching the high watermark."""
        return self.rlog.read(offset, max_bytes, max_offset=self.rlog.high_watermark)

    def fetch(
        self, request_id: object, offset: int, max_bytes: int, min_bytes: int, max_wait_ms: int, now_ms: int
    ) -> FetchResult | None:
        """The answer now, or None when the fetch waits (fewer than ``min_bytes`` readable)."""
        try:
            chunk = self.read(offset, max_bytes)
        except KBrokerError as exc:
            return self._error(request_id, exc)
        if len(chunk.data) >= min_bytes or max_wait_ms <= 0:
            return self._result(request_id, chunk)
        waiting = PendingFetch(request_id, offset, max_bytes, min_bytes, now_ms + max_wait_ms)
        self._waiting.watch(self.rlog.high_watermark, waiting.deadline_ms, waiting)
        return None

    def on_high_watermark(self) -> list[FetchResult]:
        """The high watermark moved up: the waiting fetches that now have their bytes."""
        return self._recheck(self._waiting.ready(self.rlog.high_watermark), expired=False)

    def expire(self, now_ms: int) -> list[FetchResult]:
        """Fetches whose wait is over, answered with what there is."""
        return self._recheck(self._waiting.expired(now_ms), expired=True)

    def fail_all(self, error: KBrokerError) -> list[FetchResult]:
        return [FetchResult(w.request_id, error=error) for w in self._waiting.drain()]

    def next_deadline(self) -> int | None:
        return self._waiting.next_deadline()

    def _recheck(self, fetches: list[PendingFetch], *, expired: bool) -> list[FetchResult]:
        done: list[FetchResult] = []
        for w in fetches:
            try:
                chunk = self.read(w.offset, w.max_bytes)
            except KBrokerError as exc:  # the log moved under it (retention, truncation)
                done.append(self._error(w.request_id, exc))
                continue
            if expired or len(chunk.data) >= w.min_bytes:
                done.append(self._result(w.request_id, chunk))
            else:
                self._waiting.watch(self.rlog.high_watermark, w.deadline_ms, w)
        return done

    def _result(self, request_id: object, chunk: ReadResult) -> FetchResult:
        rlog = self.rlog
        return FetchResult(request_id, chunk.data, chunk.next_offset, rlog.high_watermark, rlog.log_start_offset)

    def _error(self, request_id: object, exc: KBrokerError) -> FetchResult:
        rlog = self.rlog
        return FetchResult(
            request_id, error=exc, high_watermark=rlog.high_watermark, log_start_offset=rlog.log_start_offset
        )

    def list_offsets(self, timestamp: int, leader_epoch: int) -> ListOffsetsResult:
        """Earliest (-2: log start), latest (-1: high watermark), or the first offset whose record
        timestamp is >= ``timestamp`` below the high watermark (offset -1 when there is none)."""
        rlog = self.rlog
        if timestamp == EARLIEST_TIMESTAMP:
            return ListOffsetsResult(rlog.log_start_offset, -1, leader_epoch)
        if timestamp == LATEST_TIMESTAMP:
            return ListOffsetsResult(rlog.high_watermark, -1, leader_epoch)
        found = rlog.log.offset_for_timestamp(timestamp)
        if found is None or found[0] >= rlog.high_watermark:
            return ListOffsetsResult(-1, -1, leader_epoch)
        return ListOffsetsResult(found[0], found[1], leader_epoch)
