"""Tests for kbroker.transport.connection: the synchronous client side against a real I/O thread."""

from __future__ import annotations

import threading
import time
from typing import Callable

import pytest
import zmq

from _transport_helpers import Inbox
from kbroker.errors import BrokerUnavailableError, NotLeaderError, RequestTimedOutError, UnknownError
from kbroker.transport.client.common import ConnectionPool
from kbroker.transport.connection import Connection, normalize_endpoint
from kbroker.transport.envelope import Envelope
from kbroker.transport.io_thread import IOThread
from kbroker.transport.messages import (
    DescribeCluster,
    DescribeClusterResponse,
    ErrorResponse,
    Produce,
    ProducePartition,
    ProducePartitionResponse,
    ProduceResponse,
    ProduceTopic,
    ProduceTopicResponse,
    WorkerDescription,
)

MakeIO = Callable[..., IOThread]
CLUSTER = DescribeClusterResponse("kb-1", "tcp://127.0.0.1:7092", (WorkerDescription(0, "tcp://127.0.0.1:7093", 42, True),))


def gateway(envelope: Envelope) -> None:
    message = envelope.message
    if isinstance(message, DescribeCluster):
        envelope.reply(CLUSTER)
    elif isinstance(message, Produce):
        part = message.topics[0].partitions[0]
        if message.topics[0].name == "elsewhere":
            envelope.reply_error(NotLeaderError("worker 1 leads elsewhere-0"))
            return
        envelope.reply(
            ProduceResponse(
                (ProduceTopicResponse(message.topics[0].name, (ProducePartitionResponse(part.partition, 0, None, len(part.records), -1, 0, -1, -1),)),),
                0,
            )
        )


def produce(topic: str, records: bytes) -> Produce:
    return Produce("c", 1, 1000, (ProduceTopic(topic, (ProducePartition(0, records),)),))


@pytest.fixture
def server(make_io: MakeIO) -> IOThread:
    io = make_io()
    io.register("gateway", gateway, default=True)
    return io


def test_request_reaches_the_default_actor(server: IOThread) -> None:
    with Connection(server.endpoint, timeout=5) as conn:
        assert conn.request(DescribeCluster()) == CLUSTER
        reply = conn.request(produce("orders", b"x" * 1000))
        assert reply.topics[0].partitions[0].base_offset == 1000
    assert conn.closed


def test_request_to_a_named_actor(server: IOThread) -> None:
    with Connection(server.endpoint, timeout=5) as conn:
        assert conn.request(DescribeCluster(), to="gateway") == CLUSTER


def test_error_response_is_raised_as_its_class(server: IOThread) -> None:
    with Connection(server.endpoint, timeout=5) as conn:
        with pytest.raises(NotLeaderError, match="worker 1 leads"):
            conn.request(produce("elsewhere", b"x"))
        with pytest.raises(Exception, match="no actor named 'ghost'") as info:
            conn.request(DescribeCluster(), to="ghost")
        assert info.value.code == 42  # a name the process never had: a bad address


def test_pipelined_send_and_receive(server: IOThread) -> None:
    with Connection(server.endpoint, timeout=5) as conn:
        ids = [conn.send(produce("orders", b"y" * n)) for n in range(1, 21)]
        replies = dict(conn.receive() for _ in ids)
        assert sorted(replies) == ids
        assert [replies[i].topics[0].partitions[0].base_offset for i in ids] == list(range(1, 21))
        conn.send(DescribeCluster(), to="ghost")
        _, error = conn.receive()
        assert isinstance(error, ErrorResponse)


def test_timeout_reconnects_and_late_replies_are_not_confused(make_io: MakeIO) -> None:
    io = make_io()
    held = Inbox()
    io.register("slow", held)
    with Connection(io.endpoint, timeout=5) as conn:
        started = time.monotonic()
        with pytest.raises(RequestTimedOutError, match="no reply to DescribeCluster"):
            conn.request(DescribeCluster(), to="slow", timeout=0.2)
        assert time.monotonic() - started < 3
        [late] = held.wait_for(1)
        late.reply(DescribeClusterResponse("stale", "", ()))  # goes to the old, closed socket
        io.register("slow", gateway)
        assert conn.request(DescribeCluster(), to="slow") == CLUSTER


def test_broker_down_is_unavailable_at_once() -> None:
    """A refused connection fails the request at once (retriable), long before its timeout."""
    probe = zmq.Context.instance().socket(zmq.ROUTER)
    port = probe.bind_to_random_port("tcp://127.0.0.1")
    probe.close(linger=0)
    with Connection(f"127.0.0.1:{port}", timeout=20) as conn:
        started = time.monotonic()
        with pytest.raises(BrokerUnavailableError, match=f"127.0.0.1:{port}.*is down") as raised:
            conn.request(DescribeCluster())
        assert time.monotonic() - started < 10 and raised.value.retriable
        # "down" when send saw the refusal; "connecting" when the request had been queued and its
        # wait saw the link drop: request() then replaces the socket (a fresh connect) before raising
        assert conn.link in ("down", "connecting")


def test_silent_broker_is_a_timeout() -> None:
    """A broker that accepts the connection but never answers (hung) shows as a timeout."""
    silent = zmq.Context.instance().socket(zmq.ROUTER)
    silent.setsockopt(zmq.LINGER, 0)
    port = silent.bind_to_random_port("tcp://127.0.0.1")
    try:
        with Connection(f"127.0.0.1:{port}", timeout=0.3) as conn:
            with pytest.raises(RequestTimedOutError, match=f"127.0.0.1:{port}"):
                conn.request(DescribeCluster())
            assert conn.link != "down"  # replaced after the timeout: connecting again, not refused
    finally:
        silent.close(linger=0)


def test_a_link_lost_while_waiting_fails_the_request_at_once() -> None:
    """The broker process dies with the request in flight: no reply can come, so none is waited for."""
    ctx = zmq.Context.instance()
    doomed = ctx.socket(zmq.ROUTER)
    doomed.setsockopt(zmq.LINGER, 0)
    port = doomed.bind_to_random_port("tcp://127.0.0.1")
    received = threading.Event()

    def take_request_then_die() -> None:
        if doomed.poll(5000):
            doomed.recv_multipart()
            received.set()
        doomed.close(linger=0)  # what a SIGKILLed process's kernel does to its sockets

    killer = threading.Thread(target=take_request_then_die)
    killer.start()
    try:
        with Connection(f"tcp://127.0.0.1:{port}", timeout=20) as conn:
            started = time.monotonic()
            with pytest.raises(BrokerUnavailableError, match="DescribeCluster lost"):
                conn.request(DescribeCluster())
            assert received.is_set() and time.monotonic() - started < 10
            with pytest.raises(BrokerUnavailableError):  # and a new request fails at once too
                conn.request(DescribeCluster())
    finally:
        killer.join(10)


def test_the_pool_names_connections_whose_link_went_down() -> None:
    ctx = zmq.Context.instance()
    peer = ctx.socket(zmq.ROUTER)
    peer.setsockopt(zmq.LINGER, 0)
    port = peer.bind_to_random_port("tcp://127.0.0.1")
    endpoint = f"tcp://127.0.0.1:{port}"
    pool = ConnectionPool(timeout=5)
    try:
        conn = pool.get(endpoint)
        conn.send(DescribeCluster())
        assert peer.poll(5000)  # delivered: the link is up
        deadline = time.monotonic() + 10
        while conn.link != "up" and time.monotonic() < deadline:
            pool.poll(0.05)
        assert conn.link == "up" and pool.take_lost() == set()
        peer.close(linger=0)
        while endpoint not in (lost := pool.take_lost()) and time.monotonic() < deadline:
            pool.poll(0.05)
        assert lost == {endpoint} and conn.link == "down"
        assert pool.take_lost() == set()  # reported once
    finally:
        pool.close()
        peer.close(linger=0)


def test_malformed_reply_is_reported() -> None:
    ctx = zmq.Context.instance()
    rogue = ctx.socket(zmq.ROUTER)
    rogue.setsockopt(zmq.LINGER, 0)
    port = rogue.bind_to_random_port("tcp://127.0.0.1")

    def answer_garbage() -> None:
        if rogue.poll(5000):
            identity, *_ = rogue.recv_multipart()
            rogue.send_multipart([identity, b"\xc1"])

    responder = threading.Thread(target=answer_garbage)
    responder.start()
    try:
        with Connection(f"tcp://127.0.0.1:{port}", timeout=5) as conn:
            with pytest.raises(UnknownError, match="malformed reply"):
                conn.request(DescribeCluster())
    finally:
        responder.join(10)
        rogue.close(linger=0)


def test_closed_connection_refuses_use(server: IOThread) -> None:
    conn = Connection(server.endpoint)
    conn.close()
    conn.close()
    with pytest.raises(RuntimeError, match="closed"):
        conn.send(DescribeCluster())


def test_normalize_endpoint() -> None:
    assert normalize_endpoint("127.0.0.1:7092") == "tcp://127.0.0.1:7092"
    assert normalize_endpoint(" tcp://h:1 ") == "tcp://h:1"
    with pytest.raises(ValueError, match="host:port"):
        normalize_endpoint("localhost")
