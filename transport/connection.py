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

Link state: a ZeroMQ socket monitor reports the TCP link (``link``: "connecting", "up",
"down"). A broker process that dies closes its sockets, so the link goes down at once: a request
waiting for its reply then fails with ``BrokerUnavailableError`` (retriable) instead of waiting
out its timeout (a ROUTER drops replies for a peer whose link went away, so none can come), and a
send to an endpoint whose link is down (refused, or lost and not back) fails the same way at once.
Pollers watch ``monitor`` beside the socket and call ``update_link()`` when it is readable.

CURVE: the monitor also reports failed handshakes (``EVENT_HANDSHAKE_FAILED_*``): a broker that
refuses this client's public key (``_AUTH``, and a mechanism mismatch, ``_PROTOCOL``: fail at
once), a wrong server key or a plaintext client against a CURVE broker (``_NO_DETAIL``, which a
peer dying mid-handshake also gives: fail after ``HANDSHAKE_RETRIES`` in a row without a
success, about 0.3 s of ZeroMQ's reconnects). The waiting send/receive then fails with
``AuthenticationError`` naming the endpoint and what to check, instead of a silent timeout.

Connection limit: a broker process at its ``--max-connections`` refuses the handshake with ZAP
status 500 (``EVENT_HANDSHAKE_FAILED_AUTH``, value 500; 400 stays an authentication failure): the
waiting send/receive fails at once with ``ConnectionLimitError`` (retriable). libzmq does not retry
a refused handshake, so the next ``send`` replaces the socket first: each request after a refusal
makes one fresh attempt, and the first one after a slot frees up gets in.

Not thread-safe: a connection belongs to one thread. An unreachable broker that neither refuses
nor closes (a hung process, a dropped network) shows as ``RequestTimedOutError``.
"""

from __future__ import annotations

import itertools
import math
import time
from typing import Callable

import zmq

from zmq.utils.monitor import parse_monitor_message

from kbroker.errors import (
    AuthenticationError,
    BrokerUnavailableError,
    ConnectionLimitError,
    InvalidRequestError,
    RequestTimedOutError,
    UnknownError,
    error_for_code,
)
from kbroker.transport.codec import decode, encode
from kbroker.transport.conn_limit import REFUSED_ZAP_CODE, close_monitored
from kbroker.transport.messages_client import ErrorResponse
from kbroker.transport.schema import Message

__all__ = ["Connection", "normalize_endpoint"]

SocketSetup = Callable[[zmq.Socket, str], None]

_UP_EVENTS = zmq.EVENT_HANDSHAKE_SUCCEEDED
_DOWN_EVENTS = zmq.EVENT_DISCONNECTED | zmq.EVENT_CONNECT_RETRIED
_MECHANISM_MISMATCH = getattr(zmq, "PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH", 0x11000002)
HANDSHAKE_RETRIES = 3  # ambiguous handshake failures in a row before they count as an authentication failure
_HANDSHAKE_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)


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
        self._auth_failure: str | None = None  # why handshakes fail (until one succeeds)
        self._handshake_failures = 0  # failures since the last success
        self._after_failed_handshake = 0
        self._refused = False  # the broker refused this socket's handshake: it is full (--max-connections)
        self._hwm = hwm
        self._max_header_bytes = max_header_bytes
        self._ids = itertools.count(1)
        self._socket: zmq.Socket | None = None
        self._monitor: zmq.Socket | None = None
        self.link = "connecting"  # "up" after a handshake, "down" after a disconnect or a refused connect
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
            monitor = sock.get_monitor_socket(_UP_EVENTS | _DOWN_EVENTS | _HANDSHAKE_FAILED)
        except BaseException:
            sock.close(linger=0)
            raise
        try:
            sock.connect(self.endpoint)
        except BaseException:
            close_monitored(sock, monitor)
            raise
        self._socket, self._monitor, self.link = sock, monitor, "connecting"
        self._auth_failure, self._handshake_failures, self._after_failed_handshake = None, 0, 0
        self._refused = False

    @property
    def monitor(self) -> zmq.Socket | None:
        """The link-event socket to poll (POLLIN) beside ``socket``; None once closed."""
        return self._monitor

    def update_link(self) -> bool:
        """Read the pending link events; True if the link went down since the last call."""
        went_down = False
        monitor = self._monitor
        while monitor is not None and monitor.poll(0, zmq.POLLIN):
            parsed = parse_monitor_message(monitor.recv_multipart())
            event = parsed["event"]
            if event & _UP_EVENTS:
                self.link = "up"
                self._auth_failure, self._handshake_failures, self._after_failed_handshake = None, 0, 0
                self._refused = False
            elif event == zmq.EVENT_HANDSHAKE_FAILED_AUTH and parsed["value"] == REFUSED_ZAP_CODE:
                self._refused = True  # not the keys: the broker process is at its connection limit
                self._after_failed_handshake = 1  # its DISCONNECTED says nothing of the broker's life
            elif event & _HANDSHAKE_FAILED:
                value = parsed["value"]
                certain = event == zmq.EVENT_HANDSHAKE_FAILED_AUTH or (
                    event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and value == _MECHANISM_MISMATCH
                )
                self._handshake_failures += 1
                self._after_failed_handshake = 2  # its DISCONNECTED and CONNECT_RETRIED say nothing of the broker's life
                if certain or self._handshake_failures >= HANDSHAKE_RETRIES:
                    self._auth_failure = self._handshake_failure(event, value)
            elif event & _DOWN_EVENTS and self._after_failed_handshake:
                self._after_failed_handshake -= 1
            elif event & _DOWN_EVENTS:  # a lost link, or a connect refused
                went_down = went_down or event == zmq.EVENT_DISCONNECTED
                self.link = "down"
        return went_down

    def _handshake_failure(self, event: int, value: int) -> str:
        curve = self._socket_setup is not None
        if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            return (
                f"the broker at {self.endpoint} refused this client's CURVE public key (ZAP status {value}); "
                "check that the client's .key file is in the broker's --curve-allow directory (and was not removed)"
            )
        if not curve:  # a plaintext client: the peer asked for a security mechanism
            return (
                f"the broker at {self.endpoint} requires CURVE encryption and this client has no keys; "
                "pass curve_secret_key=FILE and curve_server_key=FILE (CLI: --curve-secret-key/--curve-server-key)"
            )
        return (
            f"the CURVE handshake with {self.endpoint} failed; check that curve_server_key is the broker's public "
            "key (the .key of its --curve-secret-key) and that the broker runs with CURVE"
        )

    def _check_auth(self) -> None:
        if self._refused:
            raise ConnectionLimitError(
                f"the broker at {self.endpoint} refused the connection: it has reached its connection limit "
                "(kbroker start --max-connections); close idle clients or raise the limit, then retry"
            )
        if self._auth_failure is not None:
            raise AuthenticationError(self._auth_failure)

    def _unreachable(self, what: str) -> BrokerUnavailableError:
        return BrokerUnavailableError(
            f"{what}: the connection to {self.endpoint} is down (refused or lost); "
            "check that kbroker is running and the address is right"
        )

    def _live_socket(self) -> zmq.Socket:
        if self._socket is None:
            raise RuntimeError(f"{self!r} is closed")
        return self._socket

    def reconnect(self) -> None:
        """Replace the socket: drops whatever was queued or in flight on the old one."""
        self.close()
        self._connect()

    def close(self) -> None:
        if self._socket is not None:
            close_monitored(self._socket, self._monitor)
            self._socket = self._monitor = None

    def send(self, message: Message, *, to: str | None = None, timeout: float | None = None) -> int:
        """Queue ``message`` for sending; returns its correlation id. Waits at most ``timeout``."""
        sock = self._live_socket()
        correlation_id = next(self._ids)
        frames = encode(message, correlation_id, to)
        wait = self.timeout if timeout is None else timeout
        self.update_link()  # events from before this request are not about it
        if self._refused:  # libzmq gave up on the refused socket: this request tries a fresh one
            self.reconnect()
            sock = self._live_socket()
        try:
            sock.send_multipart(frames, zmq.NOBLOCK, copy=False)
            return correlation_id
        except zmq.Again:
            pass
        deadline = time.monotonic() + wait
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLOUT)
        poller.register(self._monitor, zmq.POLLIN)
        while True:
            self._check_auth()
            if self.link == "down":
                raise self._unreachable(f"could not send {type(message).__name__}")
            remaining = deadline - time.monotonic()
            events = dict(poller.poll(_ms(remaining))) if remaining > 0 else {}
            if sock in events:
                try:
                    sock.send_multipart(frames, zmq.NOBLOCK, copy=False)
                    return correlation_id
                except zmq.Again:  # the peer went away between the poll and the send: look again
                    self.update_link()
                    continue
            if self._monitor in events:
                self.update_link()
                continue
            raise RequestTimedOutError(
                f"could not send {type(message).__name__} to {self.endpoint} within {wait:g}s; "
                "is the broker running and reachable?"
            )

    def receive(self, timeout: float | None = None) -> tuple[int, Message]:
        """The next reply as ``(correlation_id, message)``; ``RequestTimedOutError`` if none comes."""
        sock = self._live_socket()
        wait = self.timeout if timeout is None else timeout
        if not sock.poll(0, zmq.POLLIN):
            deadline = time.monotonic() + wait
            poller = zmq.Poller()
            poller.register(sock, zmq.POLLIN)
            poller.register(self._monitor, zmq.POLLIN)
            while True:
                remaining = deadline - time.monotonic()
                events = dict(poller.poll(_ms(remaining))) if remaining > 0 else {}
                if sock in events:
                    break
                if self._monitor in events:
                    went_down = self.update_link()
                    self._check_auth()
                    if went_down:
                        raise self._unreachable("no reply will come")
                    continue
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
            except ConnectionLimitError:
                raise  # the next send tries a fresh socket
            except BrokerUnavailableError as exc:
                self.reconnect()
                raise BrokerUnavailableError(f"{type(message).__name__} lost: {exc.message}") from None
            except AuthenticationError:
                raise  # the socket keeps retrying the handshake: a key allowed later makes the next request work
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
