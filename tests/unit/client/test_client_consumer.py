"""Consumer against a fake broker (real sockets and codec): positions, resets, seek, iteration,
close from another thread, the no-group subscribe, and groups refused clearly."""

from __future__ import annotations

import threading
from typing import Iterator

import pytest

from _client_fake_broker import FakeBroker
from kbroker.errors import InvalidConfigError, KBrokerError, OffsetOutOfRangeError
from kbroker.transport.client.consumer import Consumer
from kbroker.transport.client.producer import Producer
from kbroker.transport.client.types import Record, TopicPartition

T0, T1 = TopicPartition("t", 0), TopicPartition("t", 1)


@pytest.fixture
def broker() -> Iterator[FakeBroker]:
    fake = FakeBroker({"t": 2})
    with Producer(fake.endpoint) as producer:
        for i in range(10):
            producer.send("t", b"a%d" % i, partition=0)
        for i in range(3):
            producer.send("t", b"b%d" % i, partition=1)
    yield fake
    fake.stop()


def _poll_until(consumer: Consumer, count: int, timeout_ms: float = 5000) -> list[Record]:
    out: list[Record] = []
    for _ in range(50):
        out.extend(consumer.poll(timeout_ms / 50))
        if len(out) >= count:
            break
    return out


def test_assign_and_poll_from_earliest(broker: FakeBroker) -> None:
    with Consumer(broker.endpoint, fetch_max_wait_ms=10) as consumer:
        consumer.assign([T0, T1])
        assert consumer.assignment() == {T0, T1}
        records = _poll_until(consumer, 13)
        assert sorted((r.partition, r.offset) for r in records) == [(0, i) for i in range(10)] + [(1, i) for i in range(3)]
        assert [r.value for r in records if r.partition == 0] == [b"a%d" % i for i in range(10)]
        assert consumer.position(T0) == 10 and consumer.position(T1) == 3
        assert consumer.caught_up()
        assert consumer.highwater(T0) == 10


def test_max_poll_records_splits_without_skipping_or_repeating(broker: FakeBroker) -> None:
    with Consumer(broker.endpoint, fetch_max_wait_ms=10, max_poll_records=4) as consumer:
        consumer.assign([T0])
        seen: list[int] = []
        for _ in range(50):
            batch = consumer.poll(100)
            assert len(batch) <= 4
            seen.extend(r.offset for r in batch)
            if len(seen) >= 10:
                break
            if batch:
                assert consumer.position(T0) == seen[-1] + 1
        assert seen == list(range(10))


def test_seek_replays_and_latest_starts_at_the_end(broker: FakeBroker) -> None:
    with Consumer(broker.endpoint, fetch_max_wait_ms=10) as consumer:
        consumer.assign([T0])
        consumer.seek(T0, 7)
        assert consumer.position(T0) == 7
        assert [r.offset for r in _poll_until(consumer, 3)] == [7, 8, 9]
        consumer.seek(T0, 0)
        assert [r.offset for r in _poll_until(consumer, 10)] == list(range(10))
    with Consumer(broker.endpoint, auto_offset_reset="latest", fetch_max_wait_ms=10) as consumer:
        consumer.assign([T0])
        assert consumer.position(T0) == 10
        assert consumer.poll(50) == []


def test_auto_offset_reset_none_needs_a_seek(broker: FakeBroker) -> None:
    with Consumer(broker.endpoint, auto_offset_reset="none") as consumer:
        consumer.assign([T0])
        with pytest.raises(OffsetOutOfRangeError):
            consumer.poll(100)


def test_subscribe_without_a_group_assigns_every_partition(broker: FakeBroker) -> None:
    with Consumer(broker.endpoint, fetch_max_wait_ms=10) as consumer:
        consumer.subscribe(["t"])
        assert consumer.assignment() == {T0, T1}
        assert len(_poll_until(consumer, 13)) == 13
        consumer.unsubscribe()
        assert consumer.assignment() == set()


def test_iteration_stops_when_closed_from_another_thread(broker: FakeBroker) -> None:
    consumer = Consumer(broker.endpoint, fetch_max_wait_ms=10)
    consumer.assign([T0])
    seen: list[Record] = []
    got_all = threading.Event()

    def read() -> None:
        for record in consumer:
            seen.append(record)
            if len(seen) == 10:
                got_all.set()

    reader = threading.Thread(target=read)
    reader.start()
    assert got_all.wait(10)
    consumer.close()
    reader.join(10)
    assert not reader.is_alive()
    assert [r.offset for r in seen] == list(range(10))
    with pytest.raises(RuntimeError):
        consumer.poll(10)


def test_commits_without_a_group_are_refused_clearly() -> None:
    with Consumer("127.0.0.1:1") as consumer:
        for call in (consumer.commit, lambda: consumer.committed(T0)):
            with pytest.raises(InvalidConfigError, match="group_id") as info:
                call()
            assert isinstance(info.value, KBrokerError)
        with pytest.raises(InvalidConfigError, match="pattern=.*needs a group_id"):
            consumer.subscribe(pattern="t.*")


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"group_id": ""}, "group_id"),
        ({"group_id": "g", "session_timeout_ms": 1000, "heartbeat_interval_ms": 1000}, "heartbeat_interval_ms"),
        ({"group_id": "g", "auto_commit_interval_ms": 0}, "auto_commit_interval_ms"),
        ({"group_instance_id": "i"}, "group_instance_id"),
        ({"group_id": "g", "group_instance_id": ""}, "group_instance_id"),
    ],
)
def test_bad_group_settings_name_the_setting(kwargs: dict, named: str) -> None:
    with pytest.raises(InvalidConfigError, match=named):
        Consumer("127.0.0.1:1", **kwargs)


def test_bad_subscription_pattern_is_refused() -> None:
    with Consumer("127.0.0.1:1", group_id="g") as consumer:
        with pytest.raises(InvalidConfigError, match="not a valid regular expression"):
            consumer.subscribe(pattern="(unclosed")


def test_unreachable_broker_poll_returns_empty_within_its_timeout() -> None:
    with Consumer("127.0.0.1:1", request_timeout_ms=100) as consumer:
        consumer.assign([T0])
        assert consumer.poll(200) == []


@pytest.mark.parametrize(
    "kwargs",
    [{"auto_offset_reset": "smallest"}, {"curve_server_key": "s.key"}, {"max_poll_records": 0}, {"fetch_max_wait_ms": -1}],
)
def test_bad_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(InvalidConfigError):
        Consumer("127.0.0.1:1", **kwargs)


def test_position_of_an_unassigned_partition_is_an_error() -> None:
    with Consumer("127.0.0.1:1") as consumer:
        with pytest.raises(InvalidConfigError, match="not assigned"):
            consumer.position(T0)


def test_poll_zero_never_blocks_and_still_makes_progress(broker: FakeBroker) -> None:
    import time

    with Consumer(broker.endpoint, fetch_max_wait_ms=10) as consumer:
        consumer.assign([T1])
        got: list[Record] = []
        deadline = time.monotonic() + 10
        while len(got) < 3 and time.monotonic() < deadline:
            started = time.monotonic()
            got.extend(consumer.poll(0))
            assert time.monotonic() - started < 1.0
        assert [r.value for r in got] == [b"b0", b"b1", b"b2"]
