"""A synchronous client connection to one broker endpoint (for Producer, Consumer, Admin, CLI).

One DEALER socket, correlation ids, deadlines on every wait. ZeroMQ reconnects the TCP link by
itself; when a request times out the socket is replaced as well, so replies that were still on
their way for the abandoned request cannot be mistaken for later ones and nothing queued for a
dead broker is sent to its successor.

Two ways to use it:
- ``request(message)`` sends and waits for the matching reply; an ``ErrorResponse`` is raised as
  its ``KBrokerError`` (``error_for_code``), no reply in time as ``RequestTimedOutError``.
- ``send`` / ``receive`` to keep several requests in flight (the producer's pipelining);
  ``receive`` returns ``(correlation_id, message)`` in arrival order, ``ErrorResponse`` included.
  Do not mix the two styles on one connection: ``request`` discards replies it was not waiting for.
- ``Produce`` with ``acks=0`` gets no reply at all: use ``send`` for it, never ``request``.

Not thread-safe: a connection belongs to one thread. A down or unreachable broker (or one that
rejects this client's CURVE keys, which ZeroMQ does silently) shows as ``RequestTimedOutError``.
"""

from __future__ import annotations

import itertools
import math
import time
from typing import Callable

import zmq

from kbroker.errors import InvalidRequestError, RequestTimedOutError, UnknownError, error_for_code
from kbroker.transport.codec import decode, encode
from kbroker.transport.messages_client import ErrorResponse
from kbroker.transport.schema import Message

__all__ = ["Connection", "normalize_endpoint"]

SocketSetup = Callable[[zmq.Socket, str], None]


def normalize_endpoint(address: str) -> str:
    """``host:port`` or ``tcp://host:port`` -> ``tcp://host:port``."""
    address = address.strip()
    if "://" in address:
        return address
    if ":" not in address:
        raise ValueError(f"expected tcp://host:port or host:port, got {address!r}")
    return f"tcp://{address}"


class Connection:
    """Request/response over one DEALER socket to ``endpoint``."""

    def __init__(
        self,
        endpoint: str,
        *,
        timeout: float = 30.0,
        context: zmq.Context | None = None,
        socket_setup: SocketSetup | None = None,
        hwm: int = 64,
        max_header_bytes: int = 64 << 20,
    ) -> None:
        self.endpoint = normalize_endpoint(endpoint)
        self.timeout = timeout
        self._context = context if context is not None else zmq.Context.instance()
        self._socket_setup = socket_setup
        self._hwm = hwm
        self._max_header_bytes = max_header_bytes
        self._ids = itertools.count(1)
        self._socket: zmq.Socket | None = None
        self._connect()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Connection({self.endpoint!r}{', closed' if self._socket is None else ''})"

    @property
    def closed(self) -> bool:
        return self._socket is None

    def _connect(self) -> None:
        sock = self._context.socket(zmq.DEALER)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, self._hwm)
            sock.setsockopt(zmq.RCVHWM, self._hwm)
            sock.setsockopt(zmq.IMMEDIATE, 1)  # a send waits for a live connection, then times out
            if self._socket_setup is not None:
                self._socket_setup(sock, "dealer")
            sock.connect(self.endpoint)
        except BaseException:
            sock.close(linger=0)
            raise
        self._socket = sock

    def _live_socket(self) -> zmq.Socket:
        if self._socket is None:
            raise RuntimeError(f"{self!r} is closed")
        return self._socket

    def reconnect(self) -> None:
        """Replace the socket: drops whatever was queued or in flight on the old one."""
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
        self._connect()

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def send(self, message: Message, *, to: str | None = None, timeout: float | None = None) -> int:
        """Queue ``message`` for sending; returns its correlation id. Waits at most ``timeout``."""
        sock = self._live_socket()
        correlation_id = next(self._ids)
        frames = encode(message, correlation_id, to)
        wait = self.timeout if timeout is None else timeout
        try:
            sock.send_multipart(frames, zmq.NOBLOCK, copy=False)
        except zmq.Again:
            if not sock.poll(_ms(wait), zmq.POLLOUT):
                raise RequestTimedOutError(
                    f"could not send {type(message).__name__} to {self.endpoint} within {wait:g}s; "
                    "is the broker running and reachable?"
                ) from None
            sock.send_multipart(frames, zmq.NOBLOCK, copy=False)
        return correlation_id

    def receive(self, timeout: float | None = None) -> tuple[int, Message]:
        """The next reply as ``(correlation_id, message)``; ``RequestTimedOutError`` if none comes."""
        sock = self._live_socket()
        wait = self.timeout if timeout is None else timeout
        if not sock.poll(_ms(wait), zmq.POLLIN):
            raise RequestTimedOutError(f"no reply from {self.endpoint} within {wait:g}s")
        frames = sock.recv_multipart(copy=False)
        try:
            decoded = decode(frames, max_header_bytes=self._max_header_bytes)
        except InvalidRequestError as exc:
            raise UnknownError(f"malformed reply from {self.endpoint}: {exc.message}") from None
        return decoded.correlation_id, decoded.message

    def request(self, message: Message, *, to: str | None = None, timeout: float | None = None) -> Message:
        """Send ``message`` and wait for its reply; raise the reply's error if it is an ErrorResponse."""
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        correlation_id = self.send(message, to=to, timeout=wait)
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise RequestTimedOutError()
                got, reply = self.receive(remaining)
            except RequestTimedOutError:
                self.reconnect()
                raise RequestTimedOutError(
                    f"no reply to {type(message).__name__} from {self.endpoint} within {wait:g}s; "
                    "the broker may be down, overloaded or rejecting this client's keys"
                ) from None
            if got != correlation_id:
                continue  # a late reply to an earlier, abandoned request
            if isinstance(reply, ErrorResponse):
                raise error_for_code(reply.code, reply.message)
            return reply


def _ms(seconds: float) -> int:
    return max(0, math.ceil(seconds * 1000))
