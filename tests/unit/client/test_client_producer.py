"""Producer against a fake broker (real sockets and codec, one ROUTER thread): delivery, retries
without duplicates, acks=0, timeouts, closing."""

from __future__ import annotations

import threading
from typing import Iterator

import pytest

from _client_fake_broker import FakeBroker
from kbroker.errors import InvalidConfigError, InvalidRequiredAcksError, KBrokerError, RequestTimedOutError
from kbroker.transport.client.partitioner import partition_for_key
from kbroker.transport.client.producer import Producer
from kbroker.transport.client.types import RecordMetadata, TopicPartition


@pytest.fixture
def broker() -> Iterator[FakeBroker]:
    fake = FakeBroker({"t": 3})
    yield fake
    fake.stop()


def _sender_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("kbroker-producer")]


def test_send_resolves_to_record_metadata_and_keys_follow_murmur2(broker: FakeBroker) -> None:
    with Producer(broker.endpoint, linger_ms=0) as producer:
        futures = [producer.send("t", b"v%d" % i, key=b"key-%d" % i) for i in range(30)]
        producer.flush(10)
        metas = [f.result(5) for f in futures]
    for i, meta in enumerate(metas):
        assert isinstance(meta, RecordMetadata)
        assert meta.topic == "t" and meta.partition == partition_for_key(b"key-%d" % i, 3)
        assert meta.offset >= 0
    for p in range(3):
        expected = [b"v%d" % i for i in range(30) if partition_for_key(b"key-%d" % i, 3) == p]
        assert broker.values(TopicPartition("t", p)) == expected
    assert broker.requests["InitProducerId"] == 1


def test_str_values_headers_and_explicit_partition(broker: FakeBroker) -> None:
    with Producer(broker.endpoint) as producer:
        meta = producer.send("t", "héllo", key="k", headers=[("h", b"1")], partition=2, timestamp_ms=1234).result(10)
    assert (meta.partition, meta.offset, meta.timestamp_ms) == (2, 0, 1234)
    assert broker.values(TopicPartition("t", 2)) == ["héllo".encode()]


def test_not_leader_is_retried_after_a_metadata_refresh_without_duplicates(broker: FakeBroker) -> None:
    broker.faults = ["not_leader", "not_leader"]
    with Producer(broker.endpoint, linger_ms=0, retry_backoff_ms=10) as producer:
        futures = [producer.send("t", b"r%d" % i, partition=0) for i in range(5)]
        assert [f.result(10).offset for f in futures] == [0, 1, 2, 3, 4]
    assert broker.values(TopicPartition("t", 0)) == [b"r%d" % i for i in range(5)]
    assert broker.requests["Metadata"] >= 2  # the NotLeader answers asked for a refresh


def test_a_lost_reply_times_out_and_the_retry_is_written_once(broker: FakeBroker) -> None:
    broker.faults = ["drop"]
    with Producer(broker.endpoint, request_timeout_ms=300, retry_backoff_ms=10) as producer:
        future = producer.send("t", b"once", partition=1)
        meta = future.result(10)
    assert meta.partition == 1
    assert broker.values(TopicPartition("t", 1)) == [b"once"]  # DuplicateSequence on the retry: success
    assert broker.requests["Produce"] >= 2


def test_a_timeout_answer_is_retried_once_written(broker: FakeBroker) -> None:
    broker.faults = ["lost"]
    with Producer(broker.endpoint, retry_backoff_ms=10) as producer:
        producer.send("t", b"x", partition=0).result(10)
        producer.send("t", b"y", partition=0).result(10)
    assert broker.values(TopicPartition("t", 0)) == [b"x", b"y"]


def test_acks_0_completes_without_a_reply_and_without_idempotence(broker: FakeBroker) -> None:
    with Producer(broker.endpoint, acks=0) as producer:
        assert not producer.idempotent
        meta = producer.send("t", b"fire", partition=0).result(10)
        assert meta.offset == -1
    assert broker.requests["InitProducerId"] == 0


def test_callbacks_run_once_delivered(broker: FakeBroker) -> None:
    done = threading.Event()
    seen: list[RecordMetadata] = []
    with Producer(broker.endpoint) as producer:
        future = producer.send("t", b"cb", partition=0)
        future.add_done_callback(lambda f: (seen.append(f.result()), done.set()))
        assert done.wait(10)
    assert seen[0].offset == 0


def test_close_stops_the_sender_thread_and_later_sends_fail(broker: FakeBroker) -> None:
    producer = Producer(broker.endpoint)
    producer.send("t", b"last", partition=0)
    producer.close()
    assert not _sender_threads()
    assert broker.values(TopicPartition("t", 0)) == [b"last"]  # close sends what is queued
    with pytest.raises(RuntimeError):
        producer.send("t", b"late")
    producer.close()  # idempotent


def test_no_broker_send_gives_up_after_max_block_ms() -> None:
    with Producer("127.0.0.1:1", max_block_ms=200, request_timeout_ms=200) as producer:
        with pytest.raises(RequestTimedOutError) as info:
            producer.send("t", b"x")
    assert "max_block_ms" in info.value.message
    assert not _sender_threads()


def test_close_with_a_timeout_fails_what_is_unsent(broker: FakeBroker) -> None:
    broker.faults = ["drop"] * 100
    producer = Producer(broker.endpoint, request_timeout_ms=5000)
    future = producer.send("t", b"stuck", partition=0)
    with pytest.raises(RequestTimedOutError):
        producer.flush(0.2)
    producer.close(timeout=0.2)
    with pytest.raises(KBrokerError):
        future.result(5)
    assert not _sender_threads()


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"acks": 2}, InvalidRequiredAcksError),
        ({"curve_secret_key": "k.key_secret"}, InvalidConfigError),
        ({"linger_ms": -1}, InvalidConfigError),
        ({"batch_bytes": 0}, InvalidConfigError),
        ({"bootstrap": "udp://x:1"}, InvalidConfigError),
        ({"enable_idempotence": "yes"}, InvalidConfigError),
    ],
)
def test_bad_settings_are_refused_before_any_thread_starts(kwargs: dict, error: type) -> None:
    with pytest.raises(error):
        Producer(**kwargs)
    assert not _sender_threads()


def test_bootstrap_from_the_environment(monkeypatch: pytest.MonkeyPatch, broker: FakeBroker) -> None:
    monkeypatch.setenv("KBROKER_BOOTSTRAP", broker.endpoint)
    with Producer() as producer:
        assert producer.bootstrap == broker.endpoint
        producer.send("t", b"env", partition=0).result(10)
