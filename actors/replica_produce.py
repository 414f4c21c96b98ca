"""Produce completions of a partition leader: answers for acks 0 and 1 at once, acks=all (-1) once
the high watermark passes the batch's last offset.

    ProduceWaits
        rlog                           for the high watermark, log start and min.insync.replicas
        waiting: Purgatory[PendingProduce]
            key = last offset of the appended batches (ready once the high watermark is past it)
            deadline = arrival + the request's timeout_ms (then RequestTimedOut)

Invariants:
- An acks=all produce succeeds only when the high watermark is past its last offset and the ISR has
  at least min.insync.replicas members; with a smaller ISR it fails with
  NotEnoughReplicasAfterAppend (the batch is written; an idempotent retry is answered as a duplicate).
- Every waiting produce completes exactly once: success, NotEnoughReplicasAfterAppend, timeout, or
  the error its leader failed it with (NotLeader when leadership is lost).
The caller (ReplicaState) checks role, epoch and min.insync.replicas before appending. Pure.
"""

from __future__ import annotations

from typing import NamedTuple

from kbroker.actors.purgatory import Purgatory
from kbroker.actors.replica_log import ReplicaLog
from kbroker.actors.replica_outbox import ProduceResult
from kbroker.errors import KBrokerError, NotEnoughReplicasAfterAppendError, RequestTimedOutError

__all__ = ["ProduceWaits", "PendingProduce"]


class PendingProduce(NamedTuple):
    request_id: object
    acks: int
    base_offset: int
    last_offset: int
    log_append_time: int
    duplicate: bool


class ProduceWaits:
    def __init__(self, rlog: ReplicaLog) -> None:
        self.rlog = rlog
        self._waiting: Purgatory[PendingProduce] = Purgatory()

    def __len__(self) -> int:
        return len(self._waiting)

    def accept(self, p: PendingProduce, isr: tuple[int, ...], now_ms: int, timeout_ms: int) -> ProduceResult | None:
        """The answer for an appended (or duplicate) produce now, or None while it waits (acks=all)."""
        if p.acks != -1 or self.rlog.high_watermark > p.last_offset:
            return self.result(p, isr)
        self._waiting.watch(p.last_offset, now_ms + timeout_ms, p)
        return None

    def on_high_watermark(self, isr: tuple[int, ...]) -> list[ProduceResult]:
        return [self.result(p, isr) for p in self._waiting.ready(self.rlog.high_watermark)]

    def on_isr_change(self, isr: tuple[int, ...]) -> list[ProduceResult]:
        """The ISR changed: below min.insync.replicas, every waiting produce fails now."""
        if len(isr) >= self.rlog.log.config.min_insync_replicas:
            return []
        return [self.result(p, isr) for p in self._waiting.drain()]

    def expire(self, now_ms: int, isr: tuple[int, ...]) -> list[ProduceResult]:
        results = []
        for p in self._waiting.expired(now_ms):
            error = RequestTimedOutError(
                f"offsets {p.base_offset}..{p.last_offset} were written by the leader but not replicated to "
                f"every in-sync replica {list(isr)} in time"
            )
            results.append(self.error(p.request_id, p.acks, error))
        return results

    def fail_all(self, error: KBrokerError) -> list[ProduceResult]:
        return [self.error(p.request_id, p.acks, error) for p in self._waiting.drain()]

    def next_deadline(self) -> int | None:
        return self._waiting.next_deadline()

    def result(self, p: PendingProduce, isr: tuple[int, ...]) -> ProduceResult:
        if p.acks == -1 and len(isr) < self.rlog.log.config.min_insync_replicas:
            error = NotEnoughReplicasAfterAppendError(
                f"written at offsets {p.base_offset}..{p.last_offset}, but the ISR shrank to {list(isr)}, below "
                f"min.insync.replicas={self.rlog.log.config.min_insync_replicas}, before it was replicated"
            )
            return self.error(p.request_id, p.acks, error)
        return ProduceResult(
            p.request_id, p.acks, p.base_offset, p.last_offset, p.log_append_time, self.rlog.log_start_offset,
            duplicate=p.duplicate,
        )

    def error(self, request_id: object, acks: int, error: KBrokerError) -> ProduceResult:
        return ProduceResult(request_id, acks, log_start_offset=self.rlog.log_start_offset, error=error)
