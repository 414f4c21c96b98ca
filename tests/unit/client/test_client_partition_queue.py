"""PartitionQueue on its own: readiness, numbering, retry order, rewinds and renumbering."""

from __future__ import annotations

from kbroker.storage.compression import Codec
from kbroker.transport.client.partition_queue import SEQ_MASK, PartitionQueue
from kbroker.transport.client.producer_batch import BatchState, ProducerBatch
from kbroker.transport.client.record_input import BATCH_OVERHEAD
from kbroker.transport.client.types import TopicPartition

TP = TopicPartition("t", 0)


def queue_with(*counts: int, created: float = 0.0) -> PartitionQueue:
    queue = PartitionQueue(TP)
    for count in counts:
        batch = ProducerBatch(TP, Codec.NONE, created, BATCH_OVERHEAD, 0)
        for i in range(count):
            batch.records.append([i, 0, None, b"v", ()])  # type: ignore[union-attr]
        batch.size += 17 * count
        queue.batches.append(batch)
        queue.open = batch
    return queue


def ready(queue: PartitionQueue, now: float = 0.0, **kw: object) -> float | None:
    args = dict(force=False, linger_s=0.005, full_at=10_000, max_in_flight=5)
    args.update(kw)
    return queue.wait_before_send(now, **args)  # type: ignore[arg-type]


def test_readiness_linger_full_force_and_in_flight_limit() -> None:
    q = queue_with(2)
    assert ready(q) == 0.005 and ready(q, 0.005) == 0.0
    assert ready(q, force=True) == 0.0 and ready(q, full_at=10) == 0.0
    q2 = queue_with(1, 1)
    assert ready(q2) == 0.0  # not the last batch: full
    q2.in_flight = [object()] * 5  # type: ignore[list-item]
    assert ready(q2) is None


def test_numbering_on_first_send_and_wrap() -> None:
    q = queue_with(3, 2)
    q.next_sequence = SEQ_MASK - 1
    a, stamp_a = q.start_send(9, 1, True)
    b, stamp_b = q.start_send(9, 1, True)
    assert stamp_a == (9, 1, SEQ_MASK - 1) and stamp_b == (9, 1, 1) and q.next_sequence == 3
    assert (a.order, b.order) == (0, 1) and q.open is None and q.in_flight == [a, b]
    plain = queue_with(1)
    _, stamp = plain.start_send(9, 1, False)
    assert stamp == (-1, -1, -1)


def test_retries_line_up_in_drain_order_and_wait_for_the_in_flight_ones() -> None:
    q = queue_with(1, 1, 1)
    a, _ = q.start_send(1, 0, True)
    b, _ = q.start_send(1, 0, True)
    q.in_flight.remove(b)
    q.requeue(b, retry_at=1.0)
    q.in_flight.remove(a)
    q.requeue(a, retry_at=1.0)
    assert [x.order for x in q.batches if x.state is BatchState.RETRY] == [0, 1]
    assert q.batches[2].state is BatchState.OPEN
    assert ready(q, 0.5) == 0.5 and ready(q, 1.0) == 0.0
    assert q.gap_explained(b) and not q.gap_explained(a)
    q.in_flight.append(q.batches[2])
    assert ready(q, 1.0) is None  # a retry goes alone


def test_rewind_after_a_failed_batch_and_renumber_for_a_new_epoch() -> None:
    q = queue_with(2, 3, 4)
    a, _ = q.start_send(1, 0, True)
    b, _ = q.start_send(1, 0, True)
    c, _ = q.start_send(1, 0, True)
    assert [x.base_sequence for x in (a, b, c)] == [0, 2, 5] and q.next_sequence == 9
    q.in_flight.remove(a)
    a.move(BatchState.FAILED)
    q.rewind_after(a)
    assert [x.base_sequence for x in (b, c)] == [0, 3] and q.next_sequence == 7
    assert b.resequenced and c.resequenced and q.gap_explained(c)
    q.renumber(1, 1)
    assert [(x.producer_epoch, x.base_sequence) for x in (b, c)] == [(1, 0), (1, 3)] and q.next_sequence == 7
    assert q.take_all() == [b, c] and not q.in_flight and not q.batches


def test_expire_takes_old_batches_from_the_front() -> None:
    q = queue_with(1, 1, created=0.0)
    q.batches.append(ProducerBatch(TP, Codec.NONE, 50.0, BATCH_OVERHEAD, 0))
    assert len(q.expire(now=10.0, limit_s=10.0)) == 2 and len(q.batches) == 1
