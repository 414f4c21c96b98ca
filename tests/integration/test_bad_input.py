"""Bad input against a real ``kbroker start``: each gets a clear error and the broker keeps serving.

Client mistakes go through ``Admin`` and ``Producer``; garbage frames go through a raw ZeroMQ DEALER
to the bootstrap endpoint and to a worker endpoint, and must come back as an ``ErrorResponse``
(InvalidRequest, 42) with no process crashing: afterwards DescribeCluster shows the same live
worker pids and a record still makes the round trip.
"""

from __future__ import annotations

import random
import time
from typing import Any, Callable

import msgpack
import pytest
import zmq

from _cluster import Cluster, wait_until
from kbroker import Admin, Consumer, Producer, TopicPartition
from kbroker.errors import (
    InvalidConfigError,
    InvalidReplicationFactorError,
    InvalidRequestError,
    RecordTooLargeError,
    UnknownTopicOrPartitionError,
)
from kbroker.transport import codec
from kbroker.transport.messages_client import ErrorResponse

REPLY_TIMEOUT_MS = 5000


def _assert_still_serving(cluster: Cluster, pids: dict[int, int], topic: str = "still-serving") -> None:
    """Same live workers, same pids, and a record produced with acks=all reads back."""
    assert cluster.alive_pids() == pids, f"workers changed: {pids} -> {cluster.alive_pids()}"
    assert cluster.process.poll() is None
    value = b"alive at %d" % time.monotonic_ns()
    with Producer(cluster.bootstrap, acks="all") as producer:
        meta = producer.send(topic, value, key=b"k").result(30)
    tp = TopicPartition(topic, meta.partition)
    with Consumer(cluster.bootstrap) as consumer:
        consumer.assign([tp])
        consumer.seek(tp, meta.offset)

        def read() -> list | None:
            return [r for r in consumer.poll(200) if r.offset == meta.offset] or None

        (record,) = wait_until(read, 20, f"record {meta.offset} of {tp}")
    assert record.value == value
    assert cluster.alive_pids() == pids


def test_unknown_topic_without_auto_create_fails_within_max_block_ms(start_cluster: Callable[..., Cluster]) -> None:
    cluster = start_cluster(workers=1, args=["--no-auto-create-topics"])
    pids = cluster.wait_all_alive()
    with Producer(cluster.bootstrap, max_block_ms=1500) as producer:
        started = time.monotonic()
        with pytest.raises(UnknownTopicOrPartitionError) as caught:
            producer.send("ghost", b"boo")
        took = time.monotonic() - started
    assert took < 1.5 + 3.0, f"send blocked {took:.1f} s, past max_block_ms"
    assert "ghost" in str(caught.value) and "kbroker topics create" in str(caught.value)
    with Admin(cluster.bootstrap, timeout=10) as admin:
        assert admin.list_topics() == []
        admin.create_topic("still-serving", partitions=1, replication_factor=1)
    _assert_still_serving(cluster, pids)


def test_record_larger_than_max_message_bytes_fails_its_future(cluster: Cluster) -> None:
    pids = cluster.wait_all_alive()
    with Admin(cluster.bootstrap, timeout=10) as admin:
        admin.create_topic("small", partitions=1, replication_factor=3, config={"max.message.bytes": 1000})
    with Producer(cluster.bootstrap, acks="all", linger_ms=0) as producer:
        fine = producer.send("small", b"x" * 100, key=b"a").result(20)
        too_big = producer.send("small", b"x" * 2000, key=b"b")
        error = too_big.exception(20)
        after = producer.send("small", b"y" * 100, key=b"c").result(20)
    assert isinstance(error, RecordTooLargeError), error
    assert "max.message.bytes" in str(error)
    assert after.offset == fine.offset + 1  # nothing of the rejected batch was written
    _assert_still_serving(cluster, pids, "small")


def test_invalid_config_and_replication_factor_are_rejected_naming_the_problem(cluster: Cluster) -> None:
    pids = cluster.wait_all_alive()
    with Admin(cluster.bootstrap, timeout=10) as admin:
        cases: list[tuple[Callable[[], Any], type[Exception], str]] = [
            (lambda: admin.create_topic("c1", config={"retention.ms": "soon"}), InvalidConfigError, "retention.ms"),
            (lambda: admin.create_topic("c2", config={"segment.bytes": 1}), InvalidConfigError, "segment.bytes"),
            (lambda: admin.create_topic("c3", config={"no.such.key": 1}), InvalidConfigError, "no.such.key"),
            (lambda: admin.create_topic("rf", replication_factor=4), InvalidReplicationFactorError, "4"),
        ]
        for call, error, text in cases:
            with pytest.raises(error) as caught:
                call()
            assert text in str(caught.value), (error, str(caught.value))
        assert admin.list_topics() == []
    _assert_still_serving(cluster, pids)


def _header(**fields: Any) -> bytes:
    return msgpack.packb(fields, use_bin_type=True)


def _garbage() -> list[tuple[str, list[bytes], int]]:
    """(what, frames, the correlation id the ErrorResponse must carry)."""
    rng = random.Random(20240601)  # fixed seed: the same bytes every run
    produce_body = {
        "client_id": "x", "acks": 1, "timeout_ms": 1000,
        "topics": [{"name": "t", "partitions": [{"partition": 0, "records": 2**40}]}],
    }  # fmt: skip
    every_topic = {"topics": None, "allow_auto_topic_creation": False}
    huge_metadata = {"topics": ["t" * 100] * 12_000, "allow_auto_topic_creation": False}  # ~1.2 MB of header
    return [
        ("random bytes", [rng.randbytes(64)], 0),
        ("several random frames", [rng.randbytes(200) for _ in range(3)], 0),
        ("empty frame", [b""], 0),
        ("malformed msgpack", [b"\x85\xa1v\x01\xa4ty"], 0),
        ("not a map", [msgpack.packb([1, 2, 3])], 0),
        ("unknown message type", [_header(v=1, type="LaunchMissiles", id=11, body={})], 11),
        ("wrong protocol version", [_header(v=99, type="Metadata", id=12, body={})], 12),
        (
            "wrong field types",
            [_header(v=1, type="Metadata", id=13, body={"topics": "all", "allow_auto_topic_creation": 1})],
            13,
        ),
        ("missing fields", [_header(v=1, type="Produce", id=14, body={"acks": 1})], 14),
        ("huge frame index", [_header(v=1, type="Produce", id=15, body=produce_body), b"\x00" * 61], 15),
        ("unreferenced payload frame", [_header(v=1, type="Metadata", id=16, body=every_topic), b"junk"], 16),
        ("unknown actor", [_header(v=1, type="Metadata", id=17, to="nobody", body=every_topic)], 17),
        ("header over 1 MiB", [_header(v=1, type="Metadata", id=18, body=huge_metadata)], 0),
    ]


def _exchange(context: zmq.Context, endpoint: str, frames: list[bytes]) -> codec.Decoded:
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        sock.send_multipart(frames)
        assert sock.poll(REPLY_TIMEOUT_MS), f"no reply from {endpoint} within {REPLY_TIMEOUT_MS} ms"
        reply = sock.recv_multipart()
        if len(reply) > 1 and reply[0] == b"":  # a lone empty frame reads as a REQ delimiter: echoed back
            reply = reply[1:]
        return codec.decode(reply, max_header_bytes=64 << 20)
    finally:
        sock.close()


def test_garbage_frames_get_an_error_response_and_crash_nothing(cluster: Cluster) -> None:
    pids = cluster.wait_all_alive()
    with Admin(cluster.bootstrap, timeout=10) as admin:
        workers = admin.describe_cluster()
    endpoints = {"bootstrap": cluster.bootstrap, **{f"worker {w.id}": w.endpoint for w in workers[:2]}}
    context = zmq.Context()
    try:
        for where, endpoint in endpoints.items():
            for what, frames, expected_id in _garbage():
                reply = _exchange(context, endpoint, frames)
                assert isinstance(reply.message, ErrorResponse), (where, what, reply)
                assert reply.message.code == InvalidRequestError.code, (where, what, reply.message)
                assert reply.message.message, (where, what)
                assert reply.correlation_id == expected_id, (where, what, reply.correlation_id)
    finally:
        context.destroy(linger=0)
    _assert_still_serving(cluster, pids)


def test_a_request_over_the_brokers_size_limit_fails_clearly_and_smaller_ones_go_on(start_cluster: Callable[..., Cluster]) -> None:
    cluster = start_cluster(workers=1, args=["--max-request-bytes", "200000"])
    with Producer(cluster.bootstrap, acks=1) as producer:
        assert producer.send("sized", b"small first").result(30).offset == 0
        too_big = producer.send("sized", b"x" * 300_000)
        with pytest.raises(RecordTooLargeError, match="200000 bytes.*--max-request-bytes"):
            too_big.result(30)
        assert producer.send("sized", b"small after").result(30).offset == 1
