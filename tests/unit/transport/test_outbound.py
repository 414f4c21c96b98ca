"""transport/outbound.py: a broker process's DEALER refused by a full peer (--max-connections) recovers.

Two I/O threads in one process, both with a connection limit (the broker's processes share it),
plaintext: the server's slots are taken by client ``Connection``s, so the other thread's own
DEALER is refused like a client, and libzmq never retries that socket by itself.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from typing import Callable, Iterator

import pytest

from _transport_helpers import Inbox, wait_until
from kbroker.errors import ConnectionLimitError
from kbroker.transport.connection import Connection
from kbroker.transport.envelope import Envelope
from kbroker.transport.io_thread import IOThread
from kbroker.transport.messages_admin import DescribeCluster, DescribeClusterResponse
from kbroker.transport.schema import Message

pytestmark = pytest.mark.timeout(60)

MakeIO = Callable[..., IOThread]
REPLY = DescribeClusterResponse("cluster", "tcp://127.0.0.1:1", ())
ASK_TIMEOUT = 20.0  # far longer than any wait below: a refusal must not wait it out
FAST = 5.0  # what "at once" is allowed, on a loaded 2-core machine


def answer(envelope: Envelope) -> None:
    envelope.reply(REPLY)


@pytest.fixture
def full_server(make_io: MakeIO) -> Iterator[tuple[IOThread, list[Connection]]]:
    """A plaintext I/O thread with --max-connections 2, both slots held by admitted clients."""
    server = make_io(max_connections=2)
    server.register("controller", answer, default=True)
    clients: list[Connection] = []
    try:
        for _ in range(2):  # one at a time: connections in their handshake count too
            clients.append(Connection(server.endpoint, timeout=5.0))
            assert clients[-1].request(DescribeCluster()) == REPLY
        yield server, clients
    finally:
        for client in clients:
            client.close()


def outcome(future: Future[Message], within: float = FAST) -> tuple[BaseException | None, float]:
    """The future's exception (None: it has a result) and how long it took to end."""
    start = time.monotonic()
    error = future.exception(timeout=within)
    return error, time.monotonic() - start


def ask_until_admitted(io: IOThread, server: IOThread, timeout: float = 15.0) -> Message:
    """Ask again after each refusal, like the broker's own retry timers (the backoff paces it)."""
    deadline = time.monotonic() + timeout
    while True:
        future = io.ask(server.address("controller"), DescribeCluster(), ASK_TIMEOUT)
        error, _ = outcome(future)
        if error is None:
            return future.result()
        if not isinstance(error, ConnectionLimitError) or time.monotonic() >= deadline:
            raise error


def test_a_refused_ask_fails_at_once_and_a_freed_slot_is_reused_by_a_new_socket(
    make_io: MakeIO, full_server: tuple[IOThread, list[Connection]]
) -> None:
    server, clients = full_server
    io = make_io(max_connections=2)
    first = io.ask(server.address("controller"), DescribeCluster(), ASK_TIMEOUT)
    error, took = outcome(first)
    assert isinstance(error, ConnectionLimitError) and error.retriable, error
    assert server.endpoint in error.message and "--max-connections" in error.message
    assert took < FAST

    again = io.ask(server.address("controller"), DescribeCluster(), ASK_TIMEOUT)  # waits for the next attempt
    error, _ = outcome(again)
    assert isinstance(error, ConnectionLimitError), "a new socket tries again while the peer is full, and is refused"
    assert clients[1].request(DescribeCluster()) == REPLY  # the admitted clients are served as before

    clients.pop(0).close()
    assert ask_until_admitted(io, server) == REPLY
    assert io.ask(server.address("controller"), DescribeCluster(), ASK_TIMEOUT).result(timeout=FAST) == REPLY
    stats = io.stats()
    assert stats.peers == 1 and stats.pending_asks == 0 and stats.queued_sends == 0


def test_tells_queued_while_refused_are_sent_on_the_new_socket(
    make_io: MakeIO, full_server: tuple[IOThread, list[Connection]]
) -> None:
    server, clients = full_server
    inbox = Inbox(on_message=lambda envelope: envelope.done())
    server.register("sink", inbox)
    io = make_io(max_connections=2)
    error, _ = outcome(io.ask(server.address("controller"), DescribeCluster(), ASK_TIMEOUT))
    assert isinstance(error, ConnectionLimitError)

    io.tell(server.address("sink"), DescribeCluster())  # the peer is refusing: it waits in the send queue
    wait_until(lambda: io.stats().queued_sends == 1, what="the tell to wait in the send queue")
    clients.pop(0).close()
    inbox.wait_for(1, timeout=15.0)  # sent once a new socket gets in, without another send to push it
    assert ask_until_admitted(io, server) == REPLY


def test_without_a_limit_there_is_no_monitor(make_io: MakeIO) -> None:
    server = make_io()
    server.register("controller", answer, default=True)
    io = make_io()
    assert io.ask(server.address("controller"), DescribeCluster(), ASK_TIMEOUT).result(timeout=FAST) == REPLY
    assert io._outbound is not None
    assert all(peer.monitor is None for peer in io._outbound.peers.values())
