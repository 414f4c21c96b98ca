"""The sending side of the I/O thread: a DEALER per remote endpoint, asks and their replies.

``send`` puts a request or tell on the DEALER for its endpoint (created on first use); replies
come back on the same DEALER and complete the ask's future by correlation id.

Invariants:
- Every ask's future completes exactly once: with the reply, with the error of an
  ``ErrorResponse`` reply, with ``RequestTimedOutError`` at its deadline (``expire``), with
  ``BrokerUnavailableError`` when its send queue is full or on ``close``. Late replies are counted
  as stale and dropped.
- A DEALER never holds messages for a peer that is not connected (ZMQ_IMMEDIATE): they wait in
  the endpoint's ``SendQueue`` instead, with their deadlines, so a dead peer costs at most
  ``send_queue_bytes`` and is never sent stale requests once it comes back after their deadline.
Owned by the I/O thread; not thread-safe. Future callbacks run here, in the I/O thread.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, InvalidStateError
from typing import Any, Callable

import zmq

from kbroker.errors import BrokerUnavailableError, InvalidRequestError, KBrokerError, RequestTimedOutError, UnknownError, error_for_code
from kbroker.storage.faults import fault_point
from kbroker.transport.codec import decode, peek_correlation_id
from kbroker.transport.flow import PendingRequests
from kbroker.transport.messages_client import ErrorResponse
from kbroker.transport.send_queue import QueuedMessage, SendQueue, frames_size, nonblocking_sender

__all__ = ["Outbound", "resolve", "fail"]

log = logging.getLogger(__name__)

READ_BATCH = 256
SocketSetup = Callable[[zmq.Socket, str], None]


def resolve(future: Future[Any], value: Any) -> None:
    try:
        future.set_result(value)
    except InvalidStateError:  # cancelled by the asker
        pass


def fail(future: Future[Any], error: BaseException) -> None:
    try:
        future.set_exception(error)
    except InvalidStateError:
        pass


class _Peer:
    __slots__ = ("endpoint", "socket", "queue")

    def __init__(self, endpoint: str, socket: zmq.Socket, queue_limit: int) -> None:
        self.endpoint = endpoint
        self.socket = socket
        self.queue = SendQueue(queue_limit)


class Outbound:
    def __init__(
        self,
        context: zmq.Context,
        poller: zmq.Poller,
        *,
        hwm: int,
        max_reply_header_bytes: int,
        send_queue_bytes: int,
        socket_setup: SocketSetup | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._context = context
        self._poller = poller
        self._hwm = hwm
        self._max_reply_header_bytes = max_reply_header_bytes
        self._send_queue_bytes = send_queue_bytes
        self._socket_setup = socket_setup
        self._clock = clock
        self.pending = PendingRequests()
        self.peers: dict[str, _Peer] = {}
        self._by_socket: dict[zmq.Socket, _Peer] = {}
        self.dropped = 0
        self.stale = 0

    def send(
        self, endpoint: str, frames: list[Any], correlation_id: int, future: Future[Any] | None, deadline: float, what: str
    ) -> None:
        if future is not None:
            self.pending.add(correlation_id, future, deadline, what)
        try:
            fault_point("transport.send")
        except Exception as exc:  # an armed fault (tests): the message is lost on the way
            self._give_up(correlation_id, future, BrokerUnavailableError(f"sending {what} to {endpoint} failed: {exc}"))
            return
        try:
            peer = self._peer(endpoint)
        except zmq.ZMQError as exc:
            self._give_up(correlation_id, future, BrokerUnavailableError(f"cannot connect to {endpoint!r}: {exc}"))
            return
        if not peer.queue and nonblocking_sender(peer.socket)(frames):
            return
        if not peer.queue.push(QueuedMessage(frames, deadline, frames_size(frames), correlation_id, future)):
            self._give_up(
                correlation_id,
                future,
                BrokerUnavailableError(f"{endpoint} is not taking messages and its send queue is full; retry later"),
            )
            return
        self._poller.register(peer.socket, zmq.POLLIN | zmq.POLLOUT)

    def on_event(self, sock: zmq.Socket, event: int) -> None:
        """Handle a poller event for one of our DEALERs (replies in, queued messages out)."""
        peer = self._by_socket.get(sock)
        if peer is None:
            return
        if event & zmq.POLLIN:
            self._read_replies(peer)
        if event & zmq.POLLOUT:
            self._flush(peer)

    def next_deadline(self) -> float | None:
        deadline = self.pending.next_deadline()
        for peer in self.peers.values():
            head = peer.queue.head_deadline()
            if head is not None and (deadline is None or head < deadline):
                deadline = head
        return deadline

    def expire(self, now: float) -> None:
        for _, future, what in self.pending.expire(now):
            fail(future, RequestTimedOutError(what or None))
        for peer in self.peers.values():  # tells to a dead peer: nobody waits for them
            self.dropped += peer.queue.expire(now)

    def forget(self, endpoint: str) -> None:
        peer = self.peers.pop(endpoint, None)
        if peer is None:
            return
        self._by_socket.pop(peer.socket, None)
        self._poller.register(peer.socket, 0)
        self.dropped += len(peer.queue.clear())
        peer.socket.close(linger=0)

    def queued(self) -> int:
        return sum(len(peer.queue) for peer in list(self.peers.values()))

    def close(self, error: KBrokerError) -> None:
        """Fail every pending ask with ``error`` and close every DEALER."""
        for future in self.pending.drain():
            fail(future, error)
        for peer in self.peers.values():
            peer.socket.close(linger=0)
        self.peers.clear()
        self._by_socket.clear()

    # --- internals --------------------------------------------------------------------------

    def _peer(self, endpoint: str) -> _Peer:
        peer = self.peers.get(endpoint)
        if peer is None:
            sock = self._context.socket(zmq.DEALER)
            try:
                sock.setsockopt(zmq.LINGER, 0)
                sock.setsockopt(zmq.SNDHWM, self._hwm)
                sock.setsockopt(zmq.RCVHWM, self._hwm)
                sock.setsockopt(zmq.IMMEDIATE, 1)  # queue in our SendQueue, not in a dead pipe
                if self._socket_setup is not None:
                    self._socket_setup(sock, "dealer")
                sock.connect(endpoint)
            except BaseException:
                sock.close(linger=0)
                raise
            peer = _Peer(endpoint, sock, self._send_queue_bytes)
            self.peers[endpoint] = peer
            self._by_socket[sock] = peer
            self._poller.register(sock, zmq.POLLIN)
        return peer

    def _give_up(self, correlation_id: int, future: Future[Any] | None, error: KBrokerError) -> None:
        self.dropped += 1
        if future is not None and self.pending.pop(correlation_id) is not None:
            fail(future, error)

    def _still_awaited(self, item: QueuedMessage) -> bool:
        return item.future is None or item.correlation_id in self.pending

    def _flush(self, peer: _Peer) -> None:
        self.dropped += peer.queue.flush(nonblocking_sender(peer.socket), self._clock(), self._still_awaited)
        if not peer.queue:
            self._poller.register(peer.socket, zmq.POLLIN)

    def _read_replies(self, peer: _Peer) -> None:
        for _ in range(READ_BATCH):
            try:
                frames = peer.socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self._on_reply(peer, frames)

    def _on_reply(self, peer: _Peer, frames: list[zmq.Frame]) -> None:
        try:
            decoded = decode(frames, max_header_bytes=self._max_reply_header_bytes)
        except InvalidRequestError as exc:
            log.warning("malformed reply from %s: %s", peer.endpoint, exc.message)
            future = self.pending.pop(peek_correlation_id(frames, max_header_bytes=self._max_reply_header_bytes))
            if future is not None:
                fail(future, UnknownError(f"malformed reply from {peer.endpoint}: {exc.message}"))
            return
        future = self.pending.pop(decoded.correlation_id)
        if future is None:
            self.stale += 1
            return
        message = decoded.message
        if isinstance(message, ErrorResponse):
            fail(future, error_for_code(message.code, message.message))
        else:
            resolve(future, message)
