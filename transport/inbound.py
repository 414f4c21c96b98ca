"""The receiving side of the I/O thread: the bound ROUTER, routing to local actors, replies.

Every message that arrives on the ROUTER is decoded (``codec.decode``), routed by its ``to``
(or to the default actor) and handed over as an ``Envelope``; malformed messages and unknown
actors are answered with an ``ErrorResponse`` right here and never reach an actor.

Invariants:
- Payload bytes of delivered envelopes are charged to the ``InflightBudget`` until released;
  ``read`` takes no message while the budget is exhausted, and the owner stops polling the
  ROUTER (``wants_input``), so the peers' TCP connections push back.
- Replies to one client keep their order: once one waits in that client's ``SendQueue`` (the
  client is not reading), every later one queues behind it. A client that has gone away
  (EHOSTUNREACH) gets nothing more; a queue that stays full past its deadline is dropped.
Owned by the I/O thread; not thread-safe.
"""

from __future__ import annotations

import errno
import logging
import time
from typing import Any, Callable

import pykka
import zmq

from kbroker.errors import BrokerUnavailableError, InvalidRequestError, KBrokerError, PolicyViolationError, RecordTooLargeError, UnknownError
from kbroker.transport.codec import decode, encode, peek_correlation_id
from kbroker.transport.envelope import Envelope, ReplySink
from kbroker.transport.flow import InflightBudget
from kbroker.transport.messages_client import ErrorResponse
from kbroker.transport.messages import CLIENT_MESSAGE_TYPES
from kbroker.transport.schema import MESSAGE_TYPES
from kbroker.transport.send_queue import QueuedMessage, SendQueue, always, frames_size, nonblocking_sender

__all__ = ["Inbound"]

log = logging.getLogger(__name__)

READ_BATCH = 256
_CLIENT_REQUESTS = frozenset(MESSAGE_TYPES[name] for name in CLIENT_MESSAGE_TYPES)  # messages taken from the ROUTER before the loop looks at anything else


class Inbound:
    def __init__(
        self,
        router: zmq.Socket,
        *,
        endpoint: str,
        handler_for: Callable[[str | None], tuple[str | None, Any, frozenset[type] | None]],
        expected: Callable[[str | None], bool] = lambda name: name is None,
        sink: ReplySink,
        max_inflight_bytes: int,
        max_header_bytes: int,
        send_queue_bytes: int,
        max_request_bytes: int = 100 << 20,
        max_in_flight_per_connection: int = 1000,
        send_ttl: float,
        clock: Callable[[], float] = time.monotonic,
        identify: bool = False,
        authorize: Callable[[str | None, Any], Any] | None = None,
    ) -> None:
        self.router = router
        self._identify = identify  # CURVE on: read each message's User-Id (the ZAP-reported public key)
        self._authorize = authorize  # returns the message to deliver, or raises AuthorizationError
        self.endpoint = endpoint
        self.budget = InflightBudget(max_inflight_bytes)
        self._handler_for = handler_for
        self._expected = expected  # an actor this process has or will have: missing means starting or stopping
        self._sink = sink
        self._max_header_bytes = max_header_bytes
        self._max_request_bytes = max_request_bytes
        self._max_in_flight = max_in_flight_per_connection
        self.in_flight: dict[bytes, int] = {}  # per client connection (routing id): delivered, not yet released
        self._counted: dict[int, bytes] = {}  # id(envelope) -> routing id, for the client requests counted
        self._send_queue_bytes = send_queue_bytes
        self._send_ttl = send_ttl
        self._clock = clock
        self.reply_queues: dict[tuple[bytes, ...], SendQueue] = {}  # per client route
        self.delivered = 0
        self.rejected = 0
        self.dropped = 0

    @property
    def wants_input(self) -> bool:
        return self.budget.has_room

    def read(self) -> None:
        """Take up to ``READ_BATCH`` messages while the budget has room; deliver or answer each."""
        router, budget = self.router, self.budget
        for _ in range(READ_BATCH):
            if not budget.has_room:
                return
            try:
                frames = router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self._on_message(frames)

    def release(self, envelope: Envelope) -> None:
        self.budget.release(envelope.payload_bytes)
        self.finished(envelope)

    def finished(self, envelope: Envelope) -> None:
        """A client request was answered or released (whichever first): no longer in flight."""
        peer = self._counted.pop(id(envelope), None)
        if peer is not None:
            left = self.in_flight.get(peer, 0) - 1
            if left > 0:
                self.in_flight[peer] = left
            else:
                self.in_flight.pop(peer, None)

    def _on_message(self, frames: list[zmq.Frame]) -> None:
        if len(frames) >= 2 and len(frames[1]) == 0:  # REQ-style empty delimiter: echo it back
            route: tuple[bytes, ...] = (frames[0].bytes, b"")
            body = frames[2:]
        else:
            route = (frames[0].bytes,)
            body = frames[1:]
        size = sum(len(f) for f in body)
        if size > self._max_request_bytes:
            self._answer_error(route, peek_correlation_id(body), RecordTooLargeError(
                f"a request of {size} bytes is over this broker's maximum request size of {self._max_request_bytes} "
                "bytes (kbroker start --max-request-bytes); send smaller batches"
            ))  # fmt: skip
            return
        try:
            decoded = decode(body, max_header_bytes=self._max_header_bytes)
        except InvalidRequestError as exc:
            log.debug("rejected a malformed message: %s", exc.message)
            self._answer_error(route, peek_correlation_id(body), exc)
            return
        counted = type(decoded.message) in _CLIENT_REQUESTS  # replication and control traffic is not limited
        if counted and self.in_flight.get(route[0], 0) >= self._max_in_flight:
            self._answer_error(route, decoded.correlation_id, PolicyViolationError(
                f"this connection already has {self._max_in_flight} requests in flight at {self.endpoint} "
                "(kbroker start --max-in-flight-requests); wait for their replies before sending more"
            ))  # fmt: skip
            return
        name, handler, accepts = self._handler_for(decoded.to)
        if handler is None:
            self._answer_error(route, decoded.correlation_id, self._unknown_actor_error(decoded.to))
            return
        if accepts is not None and type(decoded.message) not in accepts:
            refusal = InvalidRequestError(f"actor {name!r} at {self.endpoint} does not serve {type(decoded.message).__name__}")
            self._answer_error(route, decoded.correlation_id, refusal)
            return
        message, identity = decoded.message, None
        if self._identify:
            identity = _user_id(body[0])
            if self._authorize is not None:
                try:
                    message = self._authorize(identity, message)
                except KBrokerError as exc:
                    log.warning("denied %s from %s: %s", type(message).__name__, identity, exc.message)
                    self._answer_error(route, decoded.correlation_id, exc)
                    return
        envelope = Envelope(
            message, decoded.correlation_id, decoded.to, tuple(body[1:]), decoded.payload_bytes, self._sink, route, identity
        )
        self.budget.charge(decoded.payload_bytes)
        if counted:
            self.in_flight[route[0]] = self.in_flight.get(route[0], 0) + 1
            self._counted[id(envelope)] = route[0]
        self.delivered += 1
        try:
            tell = getattr(handler, "tell", None)
            if tell is not None:
                tell(envelope)
            else:
                handler(envelope)
        except pykka.ActorDeadError:
            self._refuse(envelope, BrokerUnavailableError(f"actor {name!r} at {self.endpoint} has stopped; retry shortly"))
        except Exception as exc:
            log.exception("handler for %r failed on %r", name, envelope)
            self._refuse(envelope, UnknownError(f"actor {name!r} failed: {type(exc).__name__}: {exc}"))

    def _answer_error(self, route: tuple[bytes, ...], correlation_id: int, error: KBrokerError) -> None:
        self.rejected += 1
        self.send_reply(route, encode(ErrorResponse(error.code, error.message), correlation_id))

    def _unknown_actor_error(self, name: str | None) -> KBrokerError:
        # an actor this process has had or announced is missing only while it starts (not
        # registered yet) or stops (unregistered first): retriable; any other name is a bad address
        if not self._expected(name):
            return InvalidRequestError(f"no actor named {name!r} at {self.endpoint}; check the address")
        if name is None:
            return BrokerUnavailableError(f"{self.endpoint} has no default actor (starting or stopping?); retry shortly")
        return BrokerUnavailableError(f"actor {name!r} at {self.endpoint} is not running (starting or stopping?); retry shortly")

    @staticmethod
    def _refuse(envelope: Envelope, error: KBrokerError) -> None:
        if not envelope.replied:
            envelope.reply_error(error)
        envelope.done()

    # --- replies ----------------------------------------------------------------------------

    def send_reply(self, route: tuple[bytes, ...], frames: list[Any]) -> None:
        queue = self.reply_queues.get(route)
        if queue is None:
            try:
                if nonblocking_sender(self.router, route)(frames):
                    return
            except zmq.ZMQError as exc:
                self._reply_failed(exc, 1)
                return
            queue = self.reply_queues[route] = SendQueue(self._send_queue_bytes)
        if not queue.push(QueuedMessage(frames, self._clock() + self._send_ttl, frames_size(frames))):
            self.dropped += 1  # this client reads nothing: do not buffer without bound

    def flush_replies(self) -> None:
        now = self._clock()
        for route, queue in list(self.reply_queues.items()):
            try:
                self.dropped += queue.flush(nonblocking_sender(self.router, route), now, always)
            except zmq.ZMQError as exc:
                self._reply_failed(exc, len(queue.clear()))
            if not queue:
                del self.reply_queues[route]

    def _reply_failed(self, exc: zmq.ZMQError, count: int) -> None:
        if exc.errno != errno.EHOSTUNREACH:  # EHOSTUNREACH: the client went away; nothing to say
            log.warning("reply could not be sent: %s", exc)
        self.dropped += count

    def queued(self) -> int:
        return sum(len(queue) for queue in list(self.reply_queues.values()))

    def close(self) -> None:
        self.reply_queues.clear()
        self.router.close(linger=0)


def _user_id(frame: Any) -> str | None:
    """The ZAP User-Id of a received frame (our ZAP handler sets the client's Z85 public key)."""
    try:
        value = frame.get("User-Id")
    except (zmq.ZMQError, AttributeError):
        return None
    return value or None
