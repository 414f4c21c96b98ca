"""One partition's share of the producer: its queued batches, its batches in flight, its sequences.

    batches:   [RETRY, RETRY, ... (drain order)] [OPEN, OPEN, ..., OPEN <- appends go to ``open``]
    in_flight: [IN_FLIGHT, ... (drain order)]

Invariants (the accumulator calls every method under its lock):
- RETRY batches sit at the front of ``batches`` in drain order, before every OPEN batch; only
  the last OPEN batch (``open``) takes records.
- ``order`` numbers batches in the order they were first drained; it never changes, so it keeps
  the send order when sequences are renumbered.
- With idempotence, the batches in flight or waiting to be retried carry consecutive sequences
  in ``order`` order, and ``next_sequence`` follows the last of them (mod 2^31).
- A retried batch is sent only when nothing else of the partition is in flight, so the leader
  sees a partition's sequences in order even across a change of leader.
"""

from __future__ import annotations

from collections import deque

from kbroker.transport.client.producer_batch import BatchState, ProducerBatch
from kbroker.transport.client.types import TopicPartition

__all__ = ["PartitionQueue", "SEQ_MASK"]

OPEN, IN_FLIGHT, RETRY = BatchState.OPEN, BatchState.IN_FLIGHT, BatchState.RETRY
SEQ_MASK = 0x7FFFFFFF  # sequences wrap from 2^31-1 to 0


class PartitionQueue:
    __slots__ = ("tp", "batches", "open", "in_flight", "next_sequence", "next_order", "confirmed")

    def __init__(self, tp: TopicPartition) -> None:
        self.tp = tp
        self.batches: deque[ProducerBatch] = deque()
        self.open: ProducerBatch | None = None
        self.in_flight: list[ProducerBatch] = []
        self.next_sequence = 0
        self.next_order = 0
        # the leader acknowledged a batch of the current numbering (producer id and epoch); until
        # then one batch at a time: a leader that does not know the producer takes any first
        # sequence, so a later batch overtaking a refused first one would be written before it
        self.confirmed = False

    def wait_before_send(
        self, now: float, *, force: bool, linger_s: float, full_at: int, max_in_flight: int
    ) -> float | None:
        """0.0 if the first batch may go now; seconds to wait for linger/backoff; None: blocked on in-flight."""
        first = self.batches[0]
        if first.state is RETRY:
            if first.retry_at > now:
                return first.retry_at - now
            return None if self.in_flight else 0.0
        if not (force or len(self.batches) > 1 or first.size > full_at):
            due = first.created + linger_s
            if due > now:
                return due - now
        return None if len(self.in_flight) >= max_in_flight else 0.0

    def start_send(self, producer_id: int, producer_epoch: int, idempotent: bool) -> tuple[ProducerBatch, tuple[int, int, int]]:
        """Move the first batch in flight (numbering it on its first send); returns it and its stamp."""
        batch = self.batches.popleft()
        if self.open is batch:
            self.open = None
        if batch.state is OPEN:
            batch.order = self.next_order
            self.next_order += 1
            if idempotent:
                batch.producer_id = producer_id
                batch.producer_epoch = producer_epoch
                batch.base_sequence = self.next_sequence
                self.next_sequence = (self.next_sequence + batch.record_count) & SEQ_MASK
        batch.move(IN_FLIGHT)
        batch.attempts += 1
        batch.resequenced = False
        self.in_flight.append(batch)
        return batch, (batch.producer_id, batch.producer_epoch, batch.base_sequence)

    def expire(self, now: float, limit_s: float) -> list[ProducerBatch]:
        """Take the queued batches (from the front) opened at least ``limit_s`` ago."""
        expired = []
        batches = self.batches
        while batches and now - batches[0].created >= limit_s:
            batch = batches.popleft()
            if self.open is batch:
                self.open = None
            expired.append(batch)
        return expired

    def gap_explained(self, batch: ProducerBatch) -> bool:
        """Whether an OutOfOrderSequence answer for ``batch`` is expected: an earlier batch of the
        partition is in flight or waiting to be retried, or ``batch``'s sequence was rewound after
        it was sent."""
        if batch.resequenced:
            return True
        order = batch.order
        return any(b.order < order for b in self.in_flight) or any(
            b.state is RETRY and b.order < order for b in self.batches
        )

    def requeue(self, batch: ProducerBatch, retry_at: float) -> None:
        """Put ``batch`` (just back from flight) among the RETRY batches at the front, in drain order."""
        batch.move(RETRY)
        batch.retry_at = retry_at
        index = 0
        for other in self.batches:
            if other.state is not RETRY or other.order > batch.order:
                break
            index += 1
        self.batches.insert(index, batch)

    def rewind_after(self, failed: ProducerBatch) -> None:
        """``failed`` was never written: the batches sent after it move down into its sequences."""
        n = failed.record_count
        for later in (*self.in_flight, *self.batches):
            if later.order > failed.order and later.base_sequence >= 0:
                later.base_sequence = (later.base_sequence - n) & SEQ_MASK
                if later.state is IN_FLIGHT:
                    later.resequenced = True  # the leader will refuse its old numbers: retry it
        self.next_sequence = (self.next_sequence - n) & SEQ_MASK

    def renumber(self, producer_id: int, producer_epoch: int) -> None:
        """A new producer id or epoch: number the unfinished sent batches from 0 again, in order."""
        sequence = 0
        self.confirmed = False
        numbered = sorted((b for b in (*self.in_flight, *self.batches) if b.state is not OPEN), key=lambda b: b.order)
        for batch in numbered:
            batch.producer_id, batch.producer_epoch = producer_id, producer_epoch
            batch.base_sequence = sequence
            sequence = (sequence + batch.record_count) & SEQ_MASK
            if batch.state is IN_FLIGHT:
                batch.resequenced = True
        self.next_sequence = sequence

    def take_all(self) -> list[ProducerBatch]:
        """Every unfinished batch, in flight or queued; the queue is left empty."""
        taken = [*self.in_flight, *self.batches]
        self.in_flight.clear()
        self.batches.clear()
        self.open = None
        return taken
