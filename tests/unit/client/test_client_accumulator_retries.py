"""Accumulator: idempotent sequences, retries in order, sequence repair, epoch bumps, responses."""

from __future__ import annotations

import pytest

from _client_helpers import FakeClock, leader_everywhere
from kbroker.errors import (
    DuplicateSequenceError,
    InvalidRecordError,
    NotLeaderError,
    OutOfOrderSequenceError,
    RecordTooLargeError,
    RequestTimedOutError,
    UnknownError,
)
from kbroker.storage.batch import read_header
from kbroker.transport.client.accumulator import Accumulator, Action, produce_request
from kbroker.transport.codec import decode, encode
from kbroker.transport.client.producer_batch import BatchState
from kbroker.transport.messages_client import ProducePartitionResponse, ProduceResponse, ProduceTopicResponse

LEADER = leader_everywhere()


def make(clock: FakeClock, **kwargs: object) -> Accumulator:
    kwargs.setdefault("linger_ms", 0)
    kwargs.setdefault("batch_bytes", 100)  # one 60-byte record per batch
    acc = Accumulator(clock=clock, **kwargs)  # type: ignore[arg-type]
    acc.set_producer_id(42, 0)
    return acc


def sent(acc: Accumulator) -> list:
    return [b for batches in acc.drain(LEADER).requests.values() for b in batches]


def send_all(acc: Accumulator, partition: int, count: int, size: int = 44, known: bool = True) -> list:
    """``count`` one-record batches; ``known``: the leader has acked this producer on the partition
    before (else only one batch goes until the first is acked)."""
    futures = [acc.append("t", partition, b"%0*d" % (size, i)) for i in range(count)]
    acc._topics["t"][partition].confirmed = known
    return futures


def seq(batch: object) -> int:
    return read_header(batch.payload).base_sequence  # type: ignore[attr-defined]


def test_nothing_is_sent_before_the_producer_id_is_known() -> None:
    acc = Accumulator(clock=FakeClock(), linger_ms=0)
    acc.append("t", 0, b"v")
    drained = acc.drain(LEADER)
    assert drained.requests == {} and drained.producer_id_needed
    acc.set_producer_id(7, 3)
    (batch,) = sent(acc)
    header = read_header(batch.payload)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (7, 3, 0)


def test_sequences_are_given_at_drain_contiguous_per_partition() -> None:
    acc = make(FakeClock(), batch_bytes=300)
    for i in range(7):
        acc.append("t", i % 2, b"x" * 44)  # 3 records (60 bytes each + 66) per batch
    acc._topics["t"][0].confirmed = True  # pipelined: the leader knows the producer
    acc.close()  # all ready
    batches = sent(acc) + sent(acc) + sent(acc)
    by_partition: dict[int, list[tuple[int, int]]] = {}
    for b in batches:
        by_partition.setdefault(b.tp.partition, []).append((seq(b), b.record_count))
    assert by_partition == {0: [(0, 3), (3, 1)], 1: [(0, 3)]}


def test_non_idempotent_batches_carry_no_producer_fields() -> None:
    acc = Accumulator(clock=FakeClock(), linger_ms=0, idempotent=False)
    acc.append("t", 0, b"v")
    (batch,) = sent(acc)
    header = read_header(batch.payload)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (-1, -1, -1)


def test_sequence_wraps_at_two_to_the_31() -> None:
    acc = make(FakeClock(), batch_bytes=300)
    acc._topics.setdefault("t", {})
    acc.append("t", 0, b"a")
    acc._topics["t"][0].next_sequence = 2**31 - 1
    acc.append("t", 0, b"b")
    (batch,) = sent(acc)
    assert seq(batch) == 2**31 - 1
    assert acc._topics["t"][0].next_sequence == 1


def test_retriable_error_retries_the_same_bytes_after_the_backoff_in_order() -> None:
    clock = FakeClock()
    acc = make(clock, retry_backoff_ms=100)
    futures = send_all(acc, 0, 3)
    a, b, c = sent(acc) + sent(acc) + sent(acc)
    payload_a = a.payload
    assert acc.complete(a, NotLeaderError.code) is Action.RETRY
    assert a.state is BatchState.RETRY and not futures[0].done()
    # the later batches were rejected for the gap, and wait behind it
    assert acc.complete(c, OutOfOrderSequenceError.code) is Action.RETRY
    assert acc.complete(b, OutOfOrderSequenceError.code) is Action.RETRY
    assert [x.order for x in acc._topics["t"][0].batches] == [0, 1, 2]
    drained = acc.drain(LEADER)
    assert drained.requests == {} and drained.next_check_s == pytest.approx(0.1)
    clock.advance(0.1)
    (again,) = sent(acc)
    assert again is a and a.payload is payload_a and seq(a) == 0 and a.attempts == 2
    assert sent(acc) == []  # retries go one at a time
    acc.complete(a, base_offset=10)
    (again,) = sent(acc)
    assert again is b and seq(b) == 1
    acc.complete(b, base_offset=11)
    (again,) = sent(acc)
    acc.complete(again, base_offset=12)
    assert [f.result(0).offset for f in futures] == [10, 11, 12]


def test_a_partition_gets_one_batch_at_a_time_until_the_leader_acked_one_of_this_epoch() -> None:
    clock = FakeClock()
    acc = make(clock, retry_backoff_ms=0)
    futures = send_all(acc, 0, 3, known=False)
    (a,) = sent(acc)
    assert sent(acc) == []  # b waits: a leader that does not know the producer takes any first sequence
    assert acc.complete(a, NotLeaderError.code) is Action.RETRY  # e.g. a replica not ready yet
    (again,) = sent(acc)
    assert again is a and sent(acc) == []  # nothing overtakes the first batch
    acc.complete(a, base_offset=0)
    b, c = sent(acc) + sent(acc)  # now pipelined
    assert (seq(b), seq(c)) == (1, 2)
    acc.complete(b, base_offset=1)
    acc.complete(c, base_offset=2)
    assert [f.result(0).offset for f in futures] == [0, 1, 2]
    acc.set_producer_id(42, 1)  # a new epoch numbers from 0 again: one at a time again
    send_all(acc, 0, 2, known=acc._topics["t"][0].confirmed)
    (d,) = sent(acc)
    assert seq(d) == 0 and sent(acc) == []


def test_retried_batch_waits_for_the_partitions_in_flight_batches() -> None:
    clock = FakeClock()
    acc = make(clock, retry_backoff_ms=0)
    send_all(acc, 0, 2)
    a, b = sent(acc) + sent(acc)
    acc.complete(a, RequestTimedOutError.code)  # written or not, nobody knows
    assert sent(acc) == []  # b is still in flight
    acc.complete(b, base_offset=11)  # it was written: a was too, before it
    (again,) = sent(acc)
    assert again is a
    assert acc.complete(a, DuplicateSequenceError.code, base_offset=10) is Action.DONE


def test_duplicate_sequence_counts_as_written() -> None:
    acc = make(FakeClock())
    (f,) = send_all(acc, 0, 1)
    (a,) = sent(acc)
    assert acc.complete(a, DuplicateSequenceError.code) is Action.DONE
    assert f.result(0).offset == -1  # the broker did not say where


def test_fatal_error_fails_the_batch_and_moves_later_sequences_down() -> None:
    acc = make(FakeClock(), retry_backoff_ms=0)
    futures = send_all(acc, 0, 3)
    a, b, c = sent(acc) + sent(acc) + sent(acc)
    assert [seq(x) for x in (a, b, c)] == [0, 1, 2]
    assert acc.complete(a, RecordTooLargeError.code, error_message="too big") is Action.FAILED
    with pytest.raises(RecordTooLargeError, match="too big"):
        futures[0].result(0)
    # b and c were sent with sequences 1 and 2; the broker rejects them for the gap: retried as 0 and 1
    assert acc.complete(b, OutOfOrderSequenceError.code) is Action.RETRY
    assert acc.complete(c, OutOfOrderSequenceError.code) is Action.RETRY
    (again,) = sent(acc)
    assert again is b and seq(b) == 0
    acc.complete(b, base_offset=0)
    (again,) = sent(acc)
    assert again is c and seq(c) == 1
    acc.append("t", 0, b"d")
    acc.complete(c, base_offset=1)
    (d,) = sent(acc)
    assert seq(d) == 2


def test_unexplained_sequence_gap_fails_and_asks_for_an_epoch_bump() -> None:
    acc = make(FakeClock(), retry_backoff_ms=0)
    f0, f1 = send_all(acc, 0, 2)
    (a,) = sent(acc)
    (b,) = sent(acc)
    assert acc.complete(a, OutOfOrderSequenceError.code) is Action.FAILED
    with pytest.raises(OutOfOrderSequenceError):
        f0.result(0)
    assert not acc.drain(LEADER).producer_id_needed  # b still in flight
    acc.append("t", 1, b"new")
    assert acc.complete(b, OutOfOrderSequenceError.code) is Action.RETRY  # the epoch restarts: retry it there
    drained = acc.drain(LEADER)
    assert drained.requests == {} and drained.producer_id_needed
    acc.set_producer_id(42, 1)
    batches = sent(acc)
    stamps = sorted((x.tp.partition, read_header(x.payload).producer_epoch, seq(x)) for x in batches)
    assert stamps == [(0, 1, 0), (1, 1, 0)]  # new epoch, sequences from 0 everywhere


def test_retries_and_delivery_timeout_bound_the_attempts() -> None:
    clock = FakeClock()
    acc = make(clock, retries=1, retry_backoff_ms=0)
    (f,) = send_all(acc, 0, 1)
    (a,) = sent(acc)
    assert acc.complete(a, NotLeaderError.code) is Action.RETRY
    (a,) = sent(acc)
    assert acc.complete(a, NotLeaderError.code) is Action.FAILED
    with pytest.raises(NotLeaderError):
        f.result(0)
    assert acc.drain(LEADER).producer_id_needed  # the outcome of a retried batch is unknown

    acc2 = make(clock, delivery_timeout_ms=1_000, retry_backoff_ms=0)
    (g,) = send_all(acc2, 0, 1)
    (b,) = sent(acc2)
    clock.advance(1.0)
    assert acc2.complete(b, NotLeaderError.code) is Action.FAILED
    assert isinstance(g.exception(0), NotLeaderError)


def test_handle_response_maps_partitions_and_reports_leader_hints() -> None:
    acc = make(FakeClock(), batch_bytes=1000)
    f0 = acc.append("t", 0, b"a", timestamp_ms=5)
    f1 = acc.append("t", 1, b"b")
    f2 = acc.append("u", 0, b"c")
    batches = sent(acc)
    response = ProduceResponse(
        topics=(
            ProduceTopicResponse(
                name="t",
                partitions=(
                    ProducePartitionResponse(0, 0, None, 70, 1_234, 0, -1, -1),
                    ProducePartitionResponse(1, NotLeaderError.code, "moved", -1, -1, 0, 3, 9),
                ),
            ),
        ),
        throttle_time_ms=0,
    )
    outcomes = {o.batch.tp: o for o in acc.handle_response(batches, response)}
    assert [o.action for o in sorted(outcomes.values(), key=lambda o: (o.batch.tp.topic, o.batch.tp.partition))] == [
        Action.DONE, Action.RETRY, Action.FAILED,
    ]
    assert f0.result(0).offset == 70 and f0.result(0).timestamp_ms == 1_234  # LogAppendTime
    t1 = next(o for o in outcomes.values() if o.batch.tp.partition == 1 and o.batch.tp.topic == "t")
    assert (t1.leader_id, t1.leader_epoch, type(t1.error)) == (3, 9, NotLeaderError)
    assert not f1.done()
    assert isinstance(f2.exception(0), UnknownError)  # no answer for u-0


def test_fail_request_retries_every_batch_of_a_timed_out_request() -> None:
    acc = make(FakeClock(), batch_bytes=1000)
    acc.append("t", 0, b"a")
    acc.append("t", 1, b"b")
    batches = sent(acc)
    outcomes = acc.fail_request(batches, RequestTimedOutError("no reply"))
    assert {o.action for o in outcomes} == {Action.RETRY}
    outcomes = acc.fail_request(batches, InvalidRecordError("bad"))
    assert {o.action for o in outcomes} == {Action.IGNORED}  # not in flight any more


def test_acks_zero_completes_without_an_answer() -> None:
    acc = make(FakeClock())
    (f,) = send_all(acc, 0, 1)
    (a,) = sent(acc)
    assert acc.complete(a) is Action.DONE
    assert f.result(0).offset == -1


def test_produce_request_carries_each_batch_as_a_payload_frame() -> None:
    acc = make(FakeClock(), batch_bytes=1000)
    acc.append("t", 0, b"a")
    acc.append("t", 1, b"b")
    acc.append("u", 0, b"c")
    batches = sent(acc)
    message = produce_request("app", -1, 30_000, batches)
    assert message.acks == -1 and message.timeout_ms == 30_000
    assert sorted((t.name, p.partition) for t in message.topics for p in t.partitions) == [("t", 0), ("t", 1), ("u", 0)]
    frames = encode(message, 1, None)
    assert len(frames) == 4  # header + one raw frame per batch
    back = decode([bytes(f) for f in frames]).message
    payloads = {(t.name, p.partition): bytes(p.records) for t in back.topics for p in t.partitions}
    assert payloads == {(b.tp.topic, b.tp.partition): b.payload for b in batches}
