"""The I/O thread's per-request limits: maximum request size, and client requests in flight per connection.

Each refusal is an ErrorResponse with a stable code and a message naming the limit and its flag;
other connections, and the same one once under the limit, are served as before.
"""

from __future__ import annotations

from typing import Callable

import zmq

from _transport_helpers import Inbox, wait_until
from kbroker.errors import PolicyViolationError, RecordTooLargeError
from kbroker.transport.codec import decode, encode
from kbroker.transport.io_thread import IOThread
from kbroker.transport.messages import ErrorResponse, Metadata, ReplicaAppend

MakeIO = Callable[..., IOThread]


def _append(size: int) -> ReplicaAppend:
    return ReplicaAppend("t", 0, 1, 5, 0, (b"x" * size,), 0, 0)


def _request() -> Metadata:
    return Metadata(("t",), False)


def _dealer(endpoint: str) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    return sock


def _reply(sock: zmq.Socket):
    assert sock.poll(5000), "no reply"
    return decode(sock.recv_multipart(copy=False))


def test_a_request_over_the_size_limit_is_refused_naming_the_limit(make_io: MakeIO) -> None:
    io = make_io(max_request_bytes=10_000)
    inbox = Inbox(lambda e: e.done())
    io.register("sink", inbox)
    sock = _dealer(io.endpoint)
    try:
        sock.send_multipart(encode(_append(20_000), 41, "sink"))
        reply = _reply(sock)
        assert reply.correlation_id == 41 and isinstance(reply.message, ErrorResponse)
        assert reply.message.code == RecordTooLargeError.code and "--max-request-bytes" in reply.message.message
        sock.send_multipart(encode(_append(5_000), 42, "sink"))
        wait_until(lambda: len(inbox.envelopes) == 1, what="the small request to arrive")
    finally:
        sock.close()


def test_requests_in_flight_per_connection_are_bounded(make_io: MakeIO) -> None:
    io = make_io(max_in_flight_per_connection=3)
    held = Inbox()  # keeps every envelope unreleased
    io.register("held", held)
    greedy, polite = _dealer(io.endpoint), _dealer(io.endpoint)
    try:
        for cid in range(1, 4):
            greedy.send_multipart(encode(_request(), cid, "held"))
        wait_until(lambda: len(held.envelopes) == 3, what="three requests in flight")
        greedy.send_multipart(encode(_request(), 4, "held"))
        reply = _reply(greedy)
        assert reply.correlation_id == 4 and reply.message.code == PolicyViolationError.code
        assert "--max-in-flight-requests" in reply.message.message

        polite.send_multipart(encode(_request(), 9, "held"))  # another connection is not affected
        wait_until(lambda: len(held.envelopes) == 4, what="the other connection's request")

        held.envelopes[0].reply_error(PolicyViolationError("answered"))  # one answered: room for one more
        cid = 5

        def accepted() -> bool:  # the answer reaches the I/O thread asynchronously: retry until it has
            nonlocal cid
            if len(held.envelopes) >= 5:
                return True
            greedy.send_multipart(encode(_request(), cid, "held"))
            cid += 1
            while greedy.poll(50):  # the answer to request 1, and refusals while it is on its way
                assert _reply(greedy).message.code == PolicyViolationError.code
            return len(held.envelopes) >= 5

        wait_until(accepted, what="the greedy connection's next request")
    finally:
        for envelope in held.envelopes:
            envelope.done()
        greedy.close()
        polite.close()


def test_replication_and_control_traffic_is_not_limited(make_io: MakeIO) -> None:
    """Between workers one connection carries every replica's pushes and fetches: never refused."""
    io = make_io(max_in_flight_per_connection=2)
    held = Inbox()
    io.register("held", held)
    peer = _dealer(io.endpoint)
    try:
        for cid in range(1, 6):
            peer.send_multipart(encode(_append(10), cid, "held"))
        wait_until(lambda: len(held.envelopes) == 5, what="five internal messages in flight")
        assert not peer.poll(50)  # no refusal came back
    finally:
        for envelope in held.envelopes:
            envelope.done()
        peer.close()


def test_answered_requests_without_payload_leave_the_count(make_io: MakeIO) -> None:
    """Metadata, Fetch and the like carry no payload: their answer, not a release, ends them."""
    io = make_io(max_in_flight_per_connection=3)
    io.register("answers", lambda envelope: envelope.reply_error(RecordTooLargeError("answered")))
    sock = _dealer(io.endpoint)
    try:
        for cid in range(1, 31):
            sock.send_multipart(encode(_request(), cid, "answers"))
            reply = _reply(sock)
            assert (reply.correlation_id, reply.message.code) == (cid, RecordTooLargeError.code)
    finally:
        sock.close()
