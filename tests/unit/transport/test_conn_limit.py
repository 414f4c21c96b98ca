"""transport/conn_limit.py: the connection count and its ZAP decision; an I/O thread at its limit."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import pytest
import zmq

from kbroker.errors import AuthenticationError, BrokerUnavailableError, ConnectionLimitError
from kbroker.transport.connection import Connection
from kbroker.transport.conn_limit import ConnectionCount
from kbroker.transport.curve import ClientCurve, CurveServerConfig, generate_keys, load_key_pair, load_public_key
from kbroker.transport.envelope import Envelope
from kbroker.transport.io_thread import IOThread
from kbroker.transport.messages_admin import DescribeCluster, DescribeClusterResponse

pytestmark = pytest.mark.timeout(60)

REPLY = DescribeClusterResponse("cluster", "tcp://127.0.0.1:1", ())
LIMIT_ERROR = r"refused the connection: it has reached its connection limit \(kbroker start --max-connections\)"


# --- the pure count ------------------------------------------------------------------------------


def test_count_follows_accepts_and_disconnects_and_admits_up_to_the_limit() -> None:
    count = ConnectionCount(2)
    count.on_event(zmq.EVENT_ACCEPTED, 10)
    assert count.open == 1 and count.admits()
    count.on_event(zmq.EVENT_ACCEPTED, 11)
    assert count.open == 2 and count.admits()  # the one deciding counts itself: 2 <= 2
    count.on_event(zmq.EVENT_ACCEPTED, 12)
    assert not count.admits() and count.refused == 1
    assert count.admits(exempt=True)  # the broker's own links always get in
    count.on_event(zmq.EVENT_DISCONNECTED, 12)  # the refused one goes away
    count.on_event(zmq.EVENT_DISCONNECTED, 10)
    count.on_event(zmq.EVENT_ACCEPTED, 13)
    assert count.open == 2 and count.admits()


def test_count_cannot_leak_or_go_negative() -> None:
    count = ConnectionCount(1)
    count.on_event(zmq.EVENT_DISCONNECTED, 7)  # never seen accepted
    assert count.open == 0
    count.on_event(zmq.EVENT_ACCEPTED, 7)
    count.on_event(zmq.EVENT_ACCEPTED, 7)  # its DISCONNECTED was missed, the fd reused
    assert count.open == 1 and count.admits()
    count.on_event(zmq.EVENT_HANDSHAKE_SUCCEEDED, 0)  # other events change nothing
    assert count.open == 1


def test_zero_is_unlimited_and_negative_is_refused() -> None:
    count = ConnectionCount(0)
    for fd in range(100):
        count.on_event(zmq.EVENT_ACCEPTED, fd)
    assert count.admits() and count.refused == 0
    with pytest.raises(ValueError, match="max_connections must be an integer >= 0"):
        ConnectionCount(-1)
    with pytest.raises(ValueError, match="max_connections"):
        IOThread(max_connections=-1)


# --- an I/O thread at its limit --------------------------------------------------------------------


def serve(make_io: Callable[..., IOThread], **kwargs: object) -> IOThread:
    io = make_io(**kwargs)
    io.register("controller", lambda envelope: envelope.reply(REPLY), default=True)
    return io


def request_until_admitted(conn: Connection, timeout: float = 10.0) -> None:
    """Retry while the broker still counts a closed connection (its disconnect is asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            assert conn.request(DescribeCluster()) == REPLY
            return
        except ConnectionLimitError:
            if time.monotonic() >= deadline:
                raise


def test_plaintext_refusal_is_a_clear_retriable_error_and_a_freed_slot_is_reused(make_io: Callable[..., IOThread]) -> None:
    io = serve(make_io, max_connections=2)
    conns: list[Connection] = []

    def connect() -> Connection:  # one at a time: connections in their handshake count too
        conns.append(Connection(io.endpoint, timeout=5.0))
        return conns[-1]

    try:
        first = connect()
        assert first.request(DescribeCluster()) == REPLY
        second = connect()
        assert second.request(DescribeCluster()) == REPLY
        third = connect()
        with pytest.raises(ConnectionLimitError, match=LIMIT_ERROR) as refused:
            third.request(DescribeCluster())
        assert isinstance(refused.value, BrokerUnavailableError) and refused.value.retriable
        assert io.endpoint in refused.value.message
        with pytest.raises(ConnectionLimitError):  # each request tries again, and is refused again
            third.request(DescribeCluster())
        assert first.request(DescribeCluster()) == REPLY  # the admitted ones are served as before
        first.close()
        request_until_admitted(third)
        assert second.request(DescribeCluster()) == REPLY
    finally:
        for conn in conns:
            conn.close()


def test_a_failed_bind_closes_the_monitor_and_the_zap_handler(make_io: Callable[..., IOThread]) -> None:
    io = serve(make_io, max_connections=1)
    taken = IOThread(bind=io.endpoint, max_connections=1, name="kbroker-test-io-taken")
    with pytest.raises(zmq.ZMQError):
        taken.start(timeout=5.0)  # returns (does not hang in context.term on a socket left open)
    assert taken._zap is not None and taken._zap.socket.closed and taken._connections is not None and taken._connections.socket.closed


def test_unlimited_plaintext_io_thread_has_no_zap_handler(make_io: Callable[..., IOThread]) -> None:
    io = serve(make_io)
    conns = [Connection(io.endpoint, timeout=5.0) for _ in range(5)]
    try:
        for conn in conns:
            assert conn.request(DescribeCluster()) == REPLY
        assert io._zap is None and io._connections is None
    finally:
        for conn in conns:
            conn.close()


def test_curve_limit_exempts_the_broker_key_and_still_refuses_unknown_keys_as_authentication(
    make_io: Callable[..., IOThread], tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    for name in ("broker", "alice", "mallory"):
        generate_keys(name, keys)
    allow = tmp_path / "allow"
    allow.mkdir()
    (allow / "alice.key").write_bytes((keys / "alice.key").read_bytes())
    curve = CurveServerConfig(str(keys / "broker.key_secret"), str(allow)).load()
    seen: list[str | None] = []

    def handler(envelope: Envelope) -> None:
        seen.append(envelope.identity)
        envelope.reply(REPLY)

    io = make_io(curve=curve, max_connections=1)
    io.register("controller", handler, default=True)
    server = load_public_key(keys / "broker.key")

    conns: list[Connection] = []

    def as_user(name: str) -> Connection:  # one at a time: connections in their handshake count too
        public, secret = load_key_pair(keys / f"{name}.key_secret")
        conns.append(Connection(io.endpoint, timeout=5.0, socket_setup=ClientCurve(public, secret, server)))
        return conns[-1]

    try:
        alice = as_user("alice")
        assert alice.request(DescribeCluster()) == REPLY
        alice_too = as_user("alice")
        with pytest.raises(ConnectionLimitError, match="connection limit"):
            alice_too.request(DescribeCluster())
        broker = as_user("broker")
        assert broker.request(DescribeCluster()) == REPLY  # another broker process: never refused
        with pytest.raises(AuthenticationError, match="refused this client's CURVE public key"):
            as_user("mallory").request(DescribeCluster())  # an unknown key is an authentication failure, full or not
        assert seen == [load_public_key(keys / "alice.key").decode(), server.decode()]
        alice.close()
        broker.close()
        request_until_admitted(alice_too)
    finally:
        for conn in conns:
            conn.close()
