"""The sending side of the I/O thread: a DEALER per remote endpoint, asks and their replies.

``send`` puts a request or tell on the DEALER for its endpoint (created on first use); replies
come back on the same DEALER and complete the ask's future by correlation id.

Invariants:
- Every ask's future completes exactly once: with the reply, with the error of an
  ``ErrorResponse`` reply, with ``RequestTimedOutError`` at its deadline (``expire``), with
  ``BrokerUnavailableError`` when its send queue is full or on ``close``, with
  ``ConnectionLimitError`` when its peer refuses the connection (``watch_refusals``). Late replies
  are counted as stale and dropped.
- A DEALER never holds messages for a peer that is not connected (ZMQ_IMMEDIATE): they wait in
  the endpoint's ``SendQueue`` instead, with their deadlines, so a dead peer costs at most
  ``send_queue_bytes`` and is never sent stale requests once it comes back after their deadline.
- With ``watch_refusals`` (the I/O thread has ``--max-connections``: so do the peers it talks
  to, and a plaintext peer at its limit refuses this process's handshakes like any client's) each
  DEALER has a socket monitor, polled by the same loop. libzmq never retries a refused handshake
  (ZAP status 500, transport/conn_limit.py) on that socket, so a refusal fails the asks sent or
  queued to that peer at once with ``ConnectionLimitError`` (retriable: their owners re-send on
  their own timers) and the socket is replaced (linger 0, monitor closed with it) after a backoff
  of 0.1 s doubling to 1 s while refusals repeat (reset by a handshake that succeeds). Until then
  sends to that peer wait in its ``SendQueue`` (tells are kept for the new socket; asks are
  decided by its handshake); a refused peer with nothing queued is replaced on its next send.
  Without ``watch_refusals`` there is no monitor and nothing is tracked per ask.
Owned by the I/O thread; not thread-safe. Future callbacks run here, in the I/O thread.
"""

from __future__ import annotations

import itertools
import logging
import time
from concurrent.futures import Future, InvalidStateError
from typing import Any, Callable

import zmq
from zmq.utils.monitor import parse_monitor_message

from kbroker.errors import (
    BrokerUnavailableError,
    ConnectionLimitError,
    InvalidRequestError,
    KBrokerError,
    RequestTimedOutError,
    UnknownError,
    error_for_code,
)
from kbroker.storage.faults import fault_point
from kbroker.transport.codec import decode, peek_correlation_id
from kbroker.transport.conn_limit import REFUSED_ZAP_CODE, close_monitored
from kbroker.transport.flow import PendingRequests
from kbroker.transport.messages_client import ErrorResponse
from kbroker.transport.send_queue import QueuedMessage, SendQueue, frames_size, nonblocking_sender

__all__ = ["Outbound", "resolve", "fail"]

log = logging.getLogger(__name__)

READ_BATCH = 256
REFUSED_BACKOFF_S = 0.1  # before the first new socket after a refusal (--max-connections)
MAX_REFUSED_BACKOFF_S = 1.0  # doubling up to this while refusals repeat
_WATCHED_EVENTS = zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
_monitor_ids = itertools.count(1)  # unique inproc names: a new socket may reuse a closed one's FD
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
    __slots__ = ("endpoint", "socket", "monitor", "queue", "refusals", "retry_at")

    def __init__(self, endpoint: str, socket: zmq.Socket, monitor: zmq.Socket | None, queue_limit: int) -> None:
        self.endpoint = endpoint
        self.socket = socket
        self.monitor = monitor  # handshake events, only with watch_refusals
        self.queue = SendQueue(queue_limit)
        self.refusals = 0  # refused handshakes since the last one that succeeded
        self.retry_at: float | None = None  # set while the socket is refused: replace it from then on


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
        watch_refusals: bool = False,
    ) -> None:
        """``watch_refusals``: peers may refuse this process's handshakes (--max-connections):
        monitor each DEALER and replace a refused one (see the module docstring)."""
        self._context = context
        self._poller = poller
        self._hwm = hwm
        self._max_reply_header_bytes = max_reply_header_bytes
        self._send_queue_bytes = send_queue_bytes
        self._socket_setup = socket_setup
        self._clock = clock
        self._watch_refusals = watch_refusals
        self.pending = PendingRequests()
        self.peers: dict[str, _Peer] = {}
        self._by_socket: dict[zmq.Socket, _Peer] = {}  # DEALERs and their monitors
        self._asked: dict[int, _Peer] = {}  # correlation id -> peer of each pending ask (watch_refusals only)
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
        if future is not None and self._watch_refusals:
            self._asked[correlation_id] = peer
        if not peer.queue and peer.retry_at is None and nonblocking_sender(peer.socket)(frames):
            return
        if not peer.queue.push(QueuedMessage(frames, deadline, frames_size(frames), correlation_id, future)):
            self._give_up(
                correlation_id,
                future,
                BrokerUnavailableError(f"{endpoint} is not taking messages and its send queue is full; retry later"),
            )
            return
        if peer.retry_at is None:  # a refused socket is not polled: its replacement will be
            self._poller.register(peer.socket, zmq.POLLIN | zmq.POLLOUT)

    def on_event(self, sock: zmq.Socket, event: int) -> None:
        """Handle a poller event for one of our DEALERs (replies in, queued messages out) or monitors."""
        peer = self._by_socket.get(sock)
        if peer is None:
            return
        if sock is peer.monitor:
            self._read_monitor(peer)
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
            retry = peer.retry_at if peer.queue else None
            if retry is not None and (deadline is None or retry < deadline):
                deadline = retry
        return deadline

    def expire(self, now: float) -> None:
        """Whatever is due at ``now``: asks time out, queued tells expire, refused sockets are replaced."""
        for correlation_id, future, what in self.pending.expire(now):
            self._asked.pop(correlation_id, None)
            fail(future, RequestTimedOutError(what or None))
        for peer in list(self.peers.values()):  # tells to a dead peer: nobody waits for them
            self.dropped += peer.queue.expire(now)
            if peer.queue and peer.retry_at is not None and peer.retry_at <= now:
                try:
                    self._replace(peer)
                except zmq.ZMQError as exc:
                    log.warning("cannot reconnect to %s: %s", peer.endpoint, exc)

    def forget(self, endpoint: str) -> None:
        peer = self.peers.pop(endpoint, None)
        if peer is None:
            return
        self.dropped += len(peer.queue.clear())
        self._close_sockets(peer)

    def queued(self) -> int:
        return sum(len(peer.queue) for peer in list(self.peers.values()))

    def close(self, error: KBrokerError) -> None:
        """Fail every pending ask with ``error`` and close every DEALER."""
        for future in self.pending.drain():
            fail(future, error)
        self._asked.clear()
        for peer in self.peers.values():
            self._close_sockets(peer)
        self.peers.clear()
        self._by_socket.clear()

    # --- internals --------------------------------------------------------------------------

    def _peer(self, endpoint: str) -> _Peer:
        peer = self.peers.get(endpoint)
        if peer is None:
            sock, monitor = self._open(endpoint)
            peer = _Peer(endpoint, sock, monitor, self._send_queue_bytes)
            self.peers[endpoint] = peer
            self._attach(peer)
        elif peer.retry_at is not None and peer.retry_at <= self._clock():
            self._replace(peer)
        return peer

    def _open(self, endpoint: str) -> tuple[zmq.Socket, zmq.Socket | None]:
        sock = self._context.socket(zmq.DEALER)
        monitor = None
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, self._hwm)
            sock.setsockopt(zmq.RCVHWM, self._hwm)
            sock.setsockopt(zmq.IMMEDIATE, 1)  # queue in our SendQueue, not in a dead pipe
            if self._socket_setup is not None:
                self._socket_setup(sock, "dealer")
            if self._watch_refusals:  # before connect: the first handshake is reported too
                monitor = sock.get_monitor_socket(_WATCHED_EVENTS, f"inproc://kbroker-outbound-{next(_monitor_ids)}")
            sock.connect(endpoint)
        except BaseException:
            close_monitored(sock, monitor)
            raise
        return sock, monitor

    def _attach(self, peer: _Peer) -> None:
        self._by_socket[peer.socket] = peer
        self._poller.register(peer.socket, (zmq.POLLIN | zmq.POLLOUT) if peer.queue else zmq.POLLIN)
        if peer.monitor is not None:
            self._by_socket[peer.monitor] = peer
            self._poller.register(peer.monitor, zmq.POLLIN)

    def _close_sockets(self, peer: _Peer) -> None:
        for sock in (peer.socket, peer.monitor):
            if sock is not None:
                self._by_socket.pop(sock, None)
                self._poller.register(sock, 0)
        close_monitored(peer.socket, peer.monitor)

    def _read_monitor(self, peer: _Peer) -> None:
        assert peer.monitor is not None
        while True:
            try:
                event = parse_monitor_message(peer.monitor.recv_multipart(zmq.NOBLOCK))
            except zmq.Again:
                return
            if event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                if peer.refusals:
                    log.info("%s admitted this process's connection again", peer.endpoint)
                peer.refusals = 0
            elif event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH and event["value"] == REFUSED_ZAP_CODE:
                self._on_refused(peer)
                return  # libzmq is done with this socket: nothing more will come from it

    def _on_refused(self, peer: _Peer) -> None:
        """The peer is at its connection limit: fail its asks now, replace its socket after a backoff."""
        backoff = min(MAX_REFUSED_BACKOFF_S, REFUSED_BACKOFF_S * 2**peer.refusals)
        peer.refusals += 1
        peer.retry_at = self._clock() + backoff
        self._poller.register(peer.socket, 0)  # no reply can come and no send can leave on it
        if peer.refusals == 1:
            log.warning(
                "%s refused this process's connection: it has reached its connection limit (--max-connections); "
                "retrying with a backoff of up to %g s", peer.endpoint, MAX_REFUSED_BACKOFF_S,
            )  # fmt: skip
        error = ConnectionLimitError(
            f"{peer.endpoint} refused the connection: it has reached its connection limit "
            f"(kbroker start --max-connections); trying again in {backoff:g}s"
        )
        refused = [correlation_id for correlation_id, asked in self._asked.items() if asked is peer]
        for correlation_id in refused:
            future = self._settle(correlation_id)
            if future is not None:
                fail(future, error)
        # the failed asks at the head of the queue go now (the rest when flushed): an empty queue
        # waits for the next send to replace the socket
        self.dropped += peer.queue.flush(_never, self._clock(), self._still_awaited)

    def _replace(self, peer: _Peer) -> None:
        """A new socket for a refused peer (queued messages stay for it)."""
        self._close_sockets(peer)
        try:
            peer.socket, peer.monitor = self._open(peer.endpoint)
        except zmq.ZMQError:  # it connected before, so unlikely: the peer goes, its asks time out
            del self.peers[peer.endpoint]
            self.dropped += len(peer.queue.clear())
            raise
        peer.retry_at = None
        self._attach(peer)

    def _settle(self, correlation_id: int) -> Future[Any] | None:
        """The future of a pending ask, no longer pending (None if it had ended)."""
        self._asked.pop(correlation_id, None)
        return self.pending.pop(correlation_id)

    def _give_up(self, correlation_id: int, future: Future[Any] | None, error: KBrokerError) -> None:
        self.dropped += 1
        if future is not None and self._settle(correlation_id) is not None:
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
            future = self._settle(peek_correlation_id(frames, max_header_bytes=self._max_reply_header_bytes))
            if future is not None:
                fail(future, UnknownError(f"malformed reply from {peer.endpoint}: {exc.message}"))
            return
        future = self._settle(decoded.correlation_id)
        if future is None:
            self.stale += 1
            return
        message = decoded.message
        if isinstance(message, ErrorResponse):
            fail(future, error_for_code(message.code, message.message))
        else:
            resolve(future, message)


def _never(frames: list[Any]) -> bool:
    return False
