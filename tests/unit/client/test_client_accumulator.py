"""Accumulator: batching, readiness (full / linger / flush), drain, sticky routing, validation, memory."""

from __future__ import annotations

import random
import threading

import pytest

from _client_helpers import FakeClock, leader_everywhere
from kbroker.errors import (
    InvalidRecordError,
    InvalidTimestampError,
    KBrokerError,
    NotLeaderError,
    RecordTooLargeError,
    RequestTimedOutError,
)
from kbroker.storage.records import decode_batch
from kbroker.transport.client.accumulator import Accumulator, Action
from kbroker.transport.client.partitioner import Partitioner, partition_for_key
from kbroker.transport.client.producer_batch import BatchState
from kbroker.transport.client.types import RecordMetadata, TopicPartition

LEADER = leader_everywhere()


def make(clock: FakeClock | None = None, **kwargs: object) -> Accumulator:
    kwargs.setdefault("idempotent", False)
    return Accumulator(clock=clock or FakeClock(), **kwargs)  # type: ignore[arg-type]


def sent(acc: Accumulator, now: float | None = None) -> list:
    return [b for batches in acc.drain(LEADER, now).requests.values() for b in batches]


def test_records_wait_for_linger_then_drain_as_one_batch_and_resolve_with_offsets() -> None:
    clock = FakeClock()
    acc = make(clock, linger_ms=10)
    futures = [acc.append("t", 0, b"v%d" % i, timestamp_ms=1_000 + i) for i in range(3)]
    drained = acc.drain(LEADER)
    assert drained.requests == {} and drained.next_check_s == pytest.approx(0.010)
    clock.advance(0.010)
    (batch,) = sent(acc)
    assert batch.state is BatchState.IN_FLIGHT and batch.record_count == 3
    assert [r.value for r in decode_batch(batch.payload)] == [b"v0", b"v1", b"v2"]
    assert acc.complete(batch, base_offset=100) is Action.DONE
    assert [f.result(0) for f in futures] == [RecordMetadata("t", 0, 100 + i, 1_000 + i) for i in range(3)]
    assert acc.incomplete_count() == 0 and acc.buffered_bytes == 0
    assert acc.drain(LEADER).next_check_s is None


def test_a_full_batch_is_ready_at_once_and_the_next_record_opens_a_new_one() -> None:
    woken: list[int] = []
    acc = make(linger_ms=60_000, batch_bytes=600, wakeup=lambda: woken.append(1))
    for _ in range(4):
        acc.append("t", 0, b"x" * 100)  # 116 estimated bytes each, + 66 of batch header: 530
    assert sent(acc) == []
    woken.clear()
    acc.append("t", 0, b"x" * 100)  # does not fit: a second batch; the first is ready
    assert woken  # the sender was told
    (first,) = sent(acc)
    assert first.record_count == 4 and first.size == 530
    assert sent(acc) == []  # the second is neither full nor lingered
    acc.append("t", 0, b"x" * 400)  # fills the second exactly (66 + 116 + 416 = 598)
    (second,) = sent(acc)
    assert second.record_count == 2


def test_a_record_bigger_than_batch_bytes_gets_a_batch_of_its_own() -> None:
    acc = make(batch_bytes=200, linger_ms=60_000)
    acc.append("t", 0, b"a")
    acc.append("t", 0, b"b" * 1000)
    batches = sent(acc)
    assert [b.record_count for b in batches] == [1]  # one per partition per drain
    assert [b.record_count for b in sent(acc)] == [1]


def test_drain_takes_one_batch_per_partition_and_groups_by_leader_within_max_request_size() -> None:
    acc = make(linger_ms=0, max_request_size=2_000)
    for p in range(4):
        acc.append("t", p, b"x" * 600)
    leaders = {0: "tcp://a:1", 1: "tcp://b:1", 2: "tcp://a:1", 3: "tcp://a:1"}
    drained = acc.drain(lambda topic, p: leaders[p])
    assert sorted(len(v) for v in drained.requests.values()) == [1, 2]  # a: two of ~682 fit in 2000
    assert sum(b.size for b in drained.requests["tcp://a:1"]) <= 2_000
    rest = acc.drain(lambda topic, p: leaders[p])
    assert [b.tp.partition for b in rest.requests["tcp://a:1"]] in ([0], [2], [3])


def test_unknown_leaders_are_reported_and_the_batch_waits() -> None:
    acc = make(linger_ms=0)
    acc.append("t", 0, b"x")
    drained = acc.drain(lambda topic, p: None)
    assert drained.requests == {} and drained.unknown_leader_topics == {"t"}
    assert len(sent(acc)) == 1


def test_max_in_flight_per_partition() -> None:
    acc = make(linger_ms=0, max_in_flight=2, batch_bytes=100)
    for i in range(5):
        acc.append("t", 0, b"x" * 60)  # one record per batch
    first = sent(acc) + sent(acc)
    assert len(first) == 2 and sent(acc) == []
    acc.complete(first[0], base_offset=0)
    assert len(sent(acc)) == 1


def test_send_routes_keys_with_murmur2_and_explicit_partitions_as_given() -> None:
    acc = make()
    f = acc.send("t", b"v", key="user-1", num_partitions=6)
    assert f._batch.tp == TopicPartition("t", partition_for_key(b"user-1", 6))
    g = acc.send("t", b"v", key=b"user-1", partition=5, num_partitions=6)
    assert g._batch.tp == TopicPartition("t", 5)


def test_keyless_sends_stick_to_one_partition_until_its_batch_is_sent() -> None:
    clock = FakeClock()
    acc = make(clock, linger_ms=5, partitioner=Partitioner(random.Random(11)))
    first = {acc.send("t", b"v", num_partitions=4)._batch.tp.partition for _ in range(20)}
    assert len(first) == 1
    clock.advance(1)
    (batch,) = sent(acc)
    nxt = acc.send("t", b"v", num_partitions=4)._batch.tp.partition
    assert nxt != batch.tp.partition  # the batch went: a new sticky partition
    assert {acc.send("t", b"v", num_partitions=4)._batch.tp.partition for _ in range(10)} == {nxt}


def test_keyless_sends_move_on_when_the_sticky_batch_is_full() -> None:
    acc = make(linger_ms=60_000, batch_bytes=400, partitioner=Partitioner(random.Random(2)))
    parts = [acc.send("t", b"x" * 100, num_partitions=3, available=[0, 1, 2])._batch.tp.partition for _ in range(9)]
    runs = [parts[0]]
    for p in parts[1:]:
        if p != runs[-1]:
            runs.append(p)
    assert len(runs) >= 3 and all(a != b for a, b in zip(runs, runs[1:]))


def test_values_keys_and_headers_are_validated_and_str_is_utf8() -> None:
    clock = FakeClock()
    acc = make(clock, linger_ms=0)
    acc.append("t", 0, "héllo", key="ké", headers=[("h", "vé"), ("n", None)], timestamp_ms=5)
    acc.append("t", 0, bytearray(b"ba"), key=memoryview(b"mv"))
    (batch,) = sent(acc)
    recs = decode_batch(batch.payload)
    assert (recs[0].value, recs[0].key, recs[0].headers) == ("héllo".encode(), "ké".encode(), [("h", "vé".encode()), ("n", None)])
    assert (recs[1].value, recs[1].key) == (b"ba", b"mv")
    for bad in (
        dict(value=1),
        dict(value=b"v", key=3.5),
        dict(value=b"v", headers=[("h",)]),
        dict(value=b"v", headers=[(1, b"x")]),
        dict(value=b"v", headers={"h": b"x"}),
        dict(value=b"v", headers=[("h", 5)]),
    ):
        with pytest.raises(InvalidRecordError):
            acc.append("t", 0, **bad)  # type: ignore[arg-type]
    for ts in (-1, 1.5, True, "now"):
        with pytest.raises(InvalidTimestampError):
            acc.append("t", 0, b"v", timestamp_ms=ts)  # type: ignore[arg-type]
    assert acc.incomplete_count() == 1 and sent(acc) == []  # only the batch in flight: nothing half-added


def test_timestamps_default_to_the_wall_clock() -> None:
    acc = make(wall_clock_ns=lambda: 1_700_000_000_123_456_789)
    f = acc.append("t", 0, b"v")
    assert f._timestamp_ms == 1_700_000_000_123


def test_a_record_larger_than_max_request_size_is_refused_at_once() -> None:
    acc = make(max_request_size=1_000)
    with pytest.raises(RecordTooLargeError, match="max_request_size=1000") as info:
        acc.append("t", 0, b"x" * 1_000)
    assert isinstance(info.value, KBrokerError) and not info.value.retriable
    acc.append("t", 0, b"x" * 800)  # fits
    small_buffer = make(buffer_memory=500, max_request_size=10_000)
    with pytest.raises(RecordTooLargeError, match="buffer_memory=500"):
        small_buffer.append("t", 0, b"x" * 600)


def test_full_buffer_raises_after_max_block_ms() -> None:
    acc = make(buffer_memory=1_000, max_block_ms=0)
    acc.append("t", 0, b"x" * 700)
    with pytest.raises(RequestTimedOutError, match="buffer is full"):
        acc.append("t", 0, b"x" * 300)


def test_full_buffer_blocks_send_until_a_batch_completes() -> None:
    waiting = threading.Event()
    acc = make(buffer_memory=1_000, max_block_ms=30_000, linger_ms=60_000, wakeup=waiting.set)
    acc.append("t", 0, b"x" * 700)
    waiting.clear()
    result: list[object] = []
    t = threading.Thread(target=lambda: result.append(acc.append("t", 1, b"y" * 300)))
    t.start()
    assert waiting.wait(10)  # the blocked send woke the sender ...
    (batch,) = sent(acc)  # ... and everything is ready now, linger or not
    acc.complete(batch, base_offset=0)
    t.join(10)
    assert not t.is_alive() and result and not isinstance(result[0], Exception)


def test_flush_makes_everything_ready_and_waits_for_completion() -> None:
    acc = make(linger_ms=60_000)
    acc.append("t", 0, b"v")
    assert sent(acc) == []
    assert acc.flush(timeout=0) is False  # nobody drains: not done in time
    drained_during_flush: list = []

    def sender() -> None:
        batches = sent(acc)
        drained_during_flush.extend(batches)
        for b in batches:
            acc.complete(b, base_offset=0)

    flushing = threading.Event()
    acc._wakeup = flushing.set
    t = threading.Thread(target=lambda: (flushing.wait(10), sender()))
    t.start()
    assert acc.flush(timeout=10) is True
    t.join(10)
    assert len(drained_during_flush) == 1 and acc.incomplete_count() == 0
    assert acc.flush(timeout=0) is True  # nothing pending


def test_close_refuses_new_records_and_readies_the_rest() -> None:
    acc = make(linger_ms=60_000)
    acc.append("t", 0, b"v")
    acc.close()
    with pytest.raises(RuntimeError, match="closed"):
        acc.append("t", 0, b"w")
    assert len(sent(acc)) == 1


def test_abort_fails_queued_and_in_flight_batches_and_late_answers_are_ignored() -> None:
    acc = make(linger_ms=0)
    f1 = acc.append("t", 0, b"a")
    (batch,) = sent(acc)
    f2 = acc.append("t", 0, b"b")
    assert acc.abort(NotLeaderError("shutting down")) == 2
    for f in (f1, f2):
        with pytest.raises(NotLeaderError):
            f.result(0)
    assert acc.complete(batch, base_offset=5) is Action.IGNORED
    assert acc.buffered_bytes == 0 and acc.incomplete_count() == 0


def test_batches_expire_after_delivery_timeout_when_no_leader_is_known() -> None:
    clock = FakeClock()
    acc = make(clock, linger_ms=0, delivery_timeout_ms=1_000)
    f = acc.append("t", 0, b"v")
    assert acc.drain(lambda t, p: None).expired == ()
    clock.advance(1.0)
    drained = acc.drain(lambda t, p: None)
    assert len(drained.expired) == 1
    with pytest.raises(RequestTimedOutError, match="delivery_timeout_ms"):
        f.result(0)
    assert acc.buffered_bytes == 0


def test_bad_settings_are_refused() -> None:
    for bad in (dict(batch_bytes=0), dict(max_in_flight=0), dict(linger_ms=-1), dict(buffer_memory=1.5)):
        with pytest.raises(ValueError):
            Accumulator(**bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidRecordError, match="unknown compression"):
        Accumulator(compression="snappy2")



def test_the_keyless_fast_path_builds_the_same_batch_and_declines_what_it_does_not_handle() -> None:
    clock = FakeClock()
    fast = make(clock, linger_ms=5, partitioner=Partitioner(random.Random(5)))
    slow = make(clock, linger_ms=5, partitioner=Partitioner(random.Random(5)))
    assert fast.append_to_sticky("t", b"v", 3) is None  # no sticky partition nor open batch yet
    first = fast.send("t", b"v0", num_partitions=3, timestamp_ms=1_000)
    partition = slow.send("t", b"v0", num_partitions=3, timestamp_ms=1_000)._batch.tp.partition
    assert first._batch.tp.partition == partition
    fast._wall_ns = slow._wall_ns = lambda: 1_005_000_000  # type: ignore[method-assign]
    futures = [fast.append_to_sticky("t", b"v%d" % i, 3) for i in range(1, 4)]
    assert [f._batch if f is not None else None for f in futures] == [first._batch] * 3
    for i in range(1, 4):
        slow.append("t", partition, b"v%d" % i)
    assert fast.append_to_sticky("t", "text", 3) is None  # str values take the validating path
    assert fast.append_to_sticky("t", b"v", partition) is None  # the topic shrank below the sticky one
    clock.advance(1)
    (a,), (b,) = sent(fast), sent(slow)
    assert a.payload == b.payload and a.record_count == 4
    assert fast.buffered_bytes == slow.buffered_bytes
    custom = make(partitioner=type("P", (Partitioner,), {})())
    custom.send("t", b"v", num_partitions=3)
    assert custom.append_to_sticky("t", b"v", 3) is None  # another partitioner decides for itself


def test_the_keyless_fast_path_wakes_the_sender_on_a_full_batch_and_refuses_after_close() -> None:
    woken: list[int] = []
    acc = make(linger_ms=60_000, batch_bytes=600, max_request_size=500, wakeup=lambda: woken.append(1))
    acc.send("t", b"x" * 100, num_partitions=1)  # 66 + 116 bytes
    assert acc.append_to_sticky("t", b"x" * 500, 1) is None  # over max_request_size: send refuses it
    with pytest.raises(RecordTooLargeError):
        acc.send("t", b"x" * 500, num_partitions=1)
    woken.clear()
    assert acc.append_to_sticky("t", b"x" * 387, 1) is not None  # 585 bytes: more than full_at (584)
    assert woken
    acc.close()
    assert acc.append_to_sticky("t", b"x", 1) is None
    with pytest.raises(RuntimeError, match="closed"):
        acc.send("t", b"x", num_partitions=1)


def test_append_many_places_records_as_sends_one_by_one_would() -> None:
    clock = FakeClock()
    many = make(clock, linger_ms=5, batch_bytes=1000, partitioner=Partitioner(random.Random(9)))
    one = make(clock, linger_ms=5, batch_bytes=1000, partitioner=Partitioner(random.Random(9)))
    values: list = [b"v%03d" % i for i in range(40)] + ["text"] + [b"w%03d" % i for i in range(25)]
    wall = lambda: 1_000_000_000  # noqa: E731  (one millisecond for both: same timestamps)
    many._wall_ns = one._wall_ns = wall  # type: ignore[method-assign]
    batches = many.append_many("t", values, 3)
    for value in values:
        one.send("t", value, num_partitions=3)
    clock.advance(1)
    got, want = sent(many) + sent(many), sent(one) + sent(one)
    assert [(b.tp, b.payload) for b in got] == [(b.tp, b.payload) for b in want]  # same partitions, same bytes
    assert set(batches) == set(got) and sum(b.record_count for b in got) == len(values)
    assert many.buffered_bytes == one.buffered_bytes


def test_append_many_waits_for_room_and_refuses_what_send_refuses() -> None:
    acc = make(linger_ms=0, batch_bytes=600, max_request_size=500)
    with pytest.raises(RecordTooLargeError):
        acc.append_many("t", [b"x" * 10, b"x" * 600], 1)  # the second goes through send(), which refuses it
    with pytest.raises(InvalidRecordError):
        acc.append_many("t", [b"ok", 42], 1)  # not bytes/str: validated by send()
    acc.close()
    with pytest.raises(RuntimeError, match="closed"):
        acc.append_many("t", [b"late"], 1)
