"""CURVE in the transport: key files, the ZAP handler on the I/O thread, client errors, identities."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import pytest

from kbroker.errors import AuthenticationError, AuthorizationError, InvalidConfigError
from kbroker.transport.client.common import curve_setup
from kbroker.transport.connection import Connection
from kbroker.transport.curve import (
    CurveKeyError,
    CurveServerConfig,
    client_curve,
    generate_keys,
    load_key_pair,
    load_public_key,
    mode_of,
)
from kbroker.transport.envelope import Envelope
from kbroker.transport.io_thread import IOThread
from kbroker.transport.messages_admin import DescribeCluster, DescribeClusterResponse
from kbroker.transport.schema import Message

REPLY = DescribeClusterResponse("cluster", "tcp://127.0.0.1:1", ())


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    directory = tmp_path / "keys"
    for name in ("broker", "alice", "mallory"):
        generate_keys(name, directory)
    allow = tmp_path / "allow"
    allow.mkdir()
    (allow / "alice.key").write_bytes((directory / "alice.key").read_bytes())
    return directory


def serve(make_io: Callable[..., IOThread], keys: Path, seen: list[str | None], guard: object = None) -> IOThread:
    curve = CurveServerConfig(str(keys / "broker.key_secret"), str(keys.parent / "allow")).load()

    def handler(envelope: Envelope) -> None:
        seen.append(envelope.identity)
        envelope.reply(REPLY)

    io = make_io(curve=curve, guard=guard)
    io.register("controller", handler, default=True)
    return io


def client(io: IOThread, keys: Path, name: str | None, server: str = "broker", timeout: float = 5.0) -> Connection:
    setup = None if name is None else client_curve(keys / f"{name}.key_secret", keys / f"{server}.key")
    return Connection(io.endpoint, timeout=timeout, socket_setup=setup)


def test_generated_key_files_are_private_and_in_zeromq_format(tmp_path: Path) -> None:
    public, secret = generate_keys("alice", tmp_path / "k")
    assert mode_of(tmp_path / "k") == 0o700
    assert mode_of(public) == 0o600 and mode_of(secret) == 0o600
    pub, sec = load_key_pair(secret)
    assert load_public_key(public) == pub and len(sec) == 40
    assert b"public-key" in public.read_bytes() and b"secret-key" not in public.read_bytes()
    with pytest.raises(CurveKeyError, match="already exist"):
        generate_keys("alice", tmp_path / "k")


def test_key_errors_name_the_file_and_never_show_a_secret(keys: Path) -> None:
    with pytest.raises(CurveKeyError, match="holds no secret key") as info:
        load_key_pair(keys / "alice.key")
    assert "alice.key" in str(info.value)
    with pytest.raises(InvalidConfigError, match="does not exist"):
        curve_setup(keys / "nope.key_secret", keys / "broker.key")
    with pytest.raises(InvalidConfigError, match="curve_server_key is missing"):
        curve_setup(keys / "alice.key_secret", None)
    setup = client_curve(keys / "alice.key_secret", keys / "broker.key")
    _, secret = load_key_pair(keys / "alice.key_secret")
    assert secret.decode() not in repr(setup)
    server = CurveServerConfig(str(keys / "broker.key_secret"), str(keys.parent / "allow")).load()
    assert load_key_pair(keys / "broker.key_secret")[1].decode() not in repr(server)


def test_allowed_client_is_served_and_identified_by_its_public_key(make_io: Callable[..., IOThread], keys: Path) -> None:
    seen: list[str | None] = []
    io = serve(make_io, keys, seen)
    with client(io, keys, "alice") as conn:
        assert conn.request(DescribeCluster()) == REPLY
    assert seen == [load_public_key(keys / "alice.key").decode()]


def test_internal_links_use_the_broker_key(make_io: Callable[..., IOThread], keys: Path) -> None:
    seen: list[str | None] = []
    server = serve(make_io, keys, seen)
    curve = CurveServerConfig(str(keys / "broker.key_secret"), str(keys.parent / "allow")).load()
    peer = make_io(curve=curve)
    assert peer.ask((server.endpoint, "controller"), DescribeCluster(), 5.0).result(5) == REPLY
    assert seen == [load_public_key(keys / "broker.key").decode()]


@pytest.mark.parametrize(
    ("name", "server", "match"),
    [
        ("mallory", "broker", "refused this client's CURVE public key"),  # unknown key: not in the allow dir
        ("alice", "mallory", "check that curve_server_key is the broker's public key"),  # wrong server key
        (None, "broker", "requires CURVE encryption and this client has no keys"),  # plaintext client
    ],
)
def test_refused_clients_get_a_clear_error_at_once(
    make_io: Callable[..., IOThread], keys: Path, name: str | None, server: str, match: str
) -> None:
    seen: list[str | None] = []
    io = serve(make_io, keys, seen)
    started = time.monotonic()
    with client(io, keys, name, server, timeout=30.0) as conn, pytest.raises(AuthenticationError, match=match) as info:
        conn.request(DescribeCluster())
    assert time.monotonic() - started < 10, "the handshake failure must not wait out the request timeout"
    assert io.endpoint in info.value.message
    assert seen == []


def test_revoked_key_is_refused_for_new_connections(make_io: Callable[..., IOThread], keys: Path) -> None:
    seen: list[str | None] = []
    io = serve(make_io, keys, seen)
    with client(io, keys, "alice") as conn:
        conn.request(DescribeCluster())
    (keys.parent / "allow" / "alice.key").unlink()
    with client(io, keys, "alice") as conn, pytest.raises(AuthenticationError, match="--curve-allow"):
        conn.request(DescribeCluster())
    assert len(seen) == 1


class _DenyAll:
    def __init__(self) -> None:
        self.asked: list[tuple[str | None, str]] = []

    def authorize(self, identity: str | None, message: Message) -> Message:
        self.asked.append((identity, type(message).__name__))
        raise AuthorizationError(f"{identity} may not {type(message).__name__}")

    def filter_reply(self, identity: str, message: Message) -> Message:
        return message


def test_guard_is_asked_once_per_request_and_its_refusal_reaches_the_client(make_io: Callable[..., IOThread], keys: Path) -> None:
    seen: list[str | None] = []
    guard = _DenyAll()
    io = serve(make_io, keys, seen, guard)
    with client(io, keys, "alice") as conn, pytest.raises(AuthorizationError, match="may not DescribeCluster"):
        conn.request(DescribeCluster())
    alice = load_public_key(keys / "alice.key").decode()
    assert guard.asked == [(alice, "DescribeCluster")] and seen == []


def test_plaintext_io_thread_has_no_identities(make_io: Callable[..., IOThread]) -> None:
    seen: list[str | None] = []
    io = make_io(guard=_DenyAll())  # a guard without CURVE is ignored: nobody to authorize

    def handler(envelope: Envelope) -> None:
        seen.append(envelope.identity)
        envelope.reply(REPLY)

    io.register("controller", handler, default=True)
    with Connection(io.endpoint, timeout=5.0) as conn:
        assert conn.request(DescribeCluster()) == REPLY
    assert seen == [None]


def test_one_ambiguous_handshake_failure_is_not_an_authentication_error() -> None:
    """A peer that dies mid-handshake gives HANDSHAKE_FAILED_NO_DETAIL once: that is failover, not keys."""
    import struct

    import zmq

    context = zmq.Context.instance()
    conn = Connection("tcp://127.0.0.1:9", timeout=1.0)
    feed, fake = context.socket(zmq.PAIR), context.socket(zmq.PAIR)
    feed.bind("inproc://kbroker-test-fake-monitor")
    fake.connect("inproc://kbroker-test-fake-monitor")
    real, conn._monitor = conn._monitor, fake

    def event(kind: int, value: int = 0) -> None:
        feed.send_multipart([struct.pack("=hi", kind, value), b"tcp://127.0.0.1:9"])

    try:
        event(zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, 104)
        event(zmq.EVENT_DISCONNECTED)
        event(zmq.EVENT_CONNECT_RETRIED)
        deadline = time.monotonic() + 5
        while (conn._handshake_failures < 1 or conn._after_failed_handshake) and time.monotonic() < deadline:
            fake.poll(100)
            conn.update_link()
        assert conn._handshake_failures == 1 and conn._after_failed_handshake == 0
        conn._check_auth()  # no AuthenticationError, and the broker is not declared down either
        assert conn.link == "connecting"
        event(zmq.EVENT_CONNECT_RETRIED)  # then refused: the broker is gone (failover)
        event(zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, 104)
        event(zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, 104)  # the third in a row: keys, not luck
        deadline = time.monotonic() + 5
        while conn._handshake_failures < 3 and time.monotonic() < deadline:
            fake.poll(100)
            conn.update_link()
        assert conn.link == "down"
        with pytest.raises(AuthenticationError, match="requires CURVE"):
            conn._check_auth()
    finally:
        conn._monitor = real
        conn.close()
        feed.close(linger=0)
        fake.close(linger=0)
