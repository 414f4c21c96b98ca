"""The producer's I/O thread: drains the accumulator into Produce requests, owns every socket.

    user threads ── Accumulator.send ── wakeup ──▶ WakeSignal ──▶ Sender loop (one thread)
                                                                   │ drain(cache.leader_endpoint)
          Metadata, InitProducerId ──▶ bootstrap Connection        │ Produce ──▶ leader Connection(s)
          replies ──▶ cache.update / acc.set_producer_id           ◀── ProduceResponse ──▶ acc.handle_response

One loop iteration: ask for metadata when the cache wants it (one request in flight at a time),
ask for a producer id when the accumulator needs one, drain and send whatever is ready, then
wait on every socket and the wake signal at most until the next thing is due (linger or backoff
from ``Drained.next_check_s``, the metadata schedule, the earliest request deadline).

- A reply is matched to its request by (endpoint, correlation id).
- A request unanswered by its deadline fails (``RequestTimedOutError``, retriable) together with
  every other request on that connection, whose socket is replaced (replies to abandoned requests
  must not be mistaken for later ones); the accumulator retries them in order and idempotence
  keeps a batch that did arrive from being written twice.
- A connection whose link goes down (the broker process died) fails its requests at once with
  ``BrokerUnavailableError`` the same way, without waiting for their deadline; so does a send to
  an endpoint that refuses connections.
- A produce unanswered for a second triggers a metadata refresh; requests in flight to a worker
  that the new metadata no longer lists (fenced while hung: its connection stays open) are given
  up the same way, so a frozen worker costs its session timeout, not ``request_timeout_ms``.
- Errors in answers go to the metadata cache (``observe_error``): NotLeader & co. refresh it.

The metadata cache is written only under ``meta_lock`` (shared with ``Producer.send``, which
waits on it for a topic's metadata); the thread notifies that condition after every update.
Stops when told (``stop``) once nothing is left to send, or at once with ``abort``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from kbroker.errors import (
    AuthenticationError,
    AuthorizationError,
    BrokerUnavailableError,
    KBrokerError,
    RequestTimedOutError,
    UnknownError,
    error_for_code,
)
from kbroker.transport.client.accumulator import Accumulator, produce_request
from kbroker.transport.client.common import ConnectionPool, WakeSignal
from kbroker.transport.client.metadata_cache import MetadataCache
from kbroker.transport.client.producer_batch import ProducerBatch
from kbroker.transport.connection import Connection
from kbroker.transport.messages_client import (
    ErrorResponse,
    InitProducerId,
    InitProducerIdResponse,
    MetadataResponse,
    ProduceResponse,
)
from kbroker.transport.schema import Message

__all__ = ["Sender"]

log = logging.getLogger(__name__)

_REPLY_GRACE_S = 1.0  # beyond the broker's own timeout_ms, for the reply to travel
_STALL_S = 1.0  # a produce unanswered this long: ask whether its worker is still in the cluster
_PID_BACKOFF_S = 0.1


@dataclass(slots=True)
class _InFlight:
    kind: str  # "produce" | "metadata" | "pid"
    deadline: float
    batches: list[ProducerBatch] | None = None
    sent_at: float = 0.0


class Sender:
    """The I/O thread of one ``Producer``."""

    def __init__(
        self,
        *,
        bootstrap: str,
        accumulator: Accumulator,
        cache: MetadataCache,
        meta_lock: threading.Condition,
        wake: WakeSignal,
        client_id: str,
        acks: int,
        request_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
        socket_setup: Callable[..., None] | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self._acc = accumulator
        self._cache = cache
        self._meta = meta_lock
        self._wake = wake
        self._client_id = client_id
        self._acks = acks
        self._timeout_s = request_timeout_s
        self._clock = clock
        self._pool = ConnectionPool(timeout=request_timeout_s, socket_setup=socket_setup)
        self._in_flight: dict[tuple[str, int], _InFlight] = {}
        self._metadata_in_flight = False
        self._pid_in_flight = False
        self._pid_retry_at = 0.0
        self._next_stall_check = 0.0
        self._stopping = False
        self._aborting = False
        self.fatal: KBrokerError | None = None  # set when the thread died: sends fail with it
        self._thread = threading.Thread(target=self._run, name=f"kbroker-producer-{client_id}", daemon=True)

    # --- control (any thread) -----------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Finish sending what is queued, then exit."""
        self._stopping = True
        self._wake.set()

    def abort(self) -> None:
        """Exit at the next loop iteration, whatever is left."""
        self._stopping = self._aborting = True
        self._wake.set()

    @property
    def on_this_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def join(self, timeout: float | None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # --- the loop ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._aborting:
                if self._stopping and self._acc.incomplete_count() == 0:
                    break
                self._run_once()
        except BaseException as exc:  # a bug: fail every future instead of hanging them
            log.exception("the producer's sender thread failed")
            self.fatal = UnknownError(f"the producer's I/O thread failed: {exc!r}; create a new Producer")
            self._acc.abort(self.fatal)
        finally:
            self._pool.close()
            with self._meta:
                self._meta.notify_all()

    def _run_once(self) -> None:
        now = self._clock()
        self._maybe_request_metadata(now)
        drained = self._acc.drain(self._cache.leader_endpoint, now)
        if drained.producer_id_needed:
            self._maybe_init_producer_id(now)
        if drained.unknown_leader_topics:
            with self._meta:
                self._cache.want(drained.unknown_leader_topics)
                self._cache.request_update()
            self._maybe_request_metadata(now)
        for endpoint, batches in drained.requests.items():
            self._send_produce(endpoint, batches, now)
        ready = self._pool.poll(self._wait_s(drained.next_check_s, drained.producer_id_needed), self._wake)
        for endpoint, conn in ready:
            self._read_replies(endpoint, conn)
        for endpoint in self._pool.take_lost():
            if any(key[0] == endpoint for key in self._in_flight):
                conn = self._pool.get(endpoint)
                self._connection_lost(endpoint, conn, BrokerUnavailableError(f"the connection to {endpoint} went down: its requests are lost"))
        self._expire(self._clock())
        self._check_stalled(self._clock())

    def _wait_s(self, next_check: float | None, pid_needed: bool) -> float:
        now = self._clock()
        waits = [60.0]
        if next_check is not None:
            waits.append(next_check)
        if not self._metadata_in_flight:
            waits.append(self._cache.time_to_next_update(now))
        if pid_needed and not self._pid_in_flight:
            waits.append(self._pid_retry_at - now)
        if self._in_flight:
            waits.append(min(f.deadline for f in self._in_flight.values()) - now)
            produce_sent = [f.sent_at for f in self._in_flight.values() if f.kind == "produce"]
            if produce_sent:
                waits.append(max(min(produce_sent) + _STALL_S, self._next_stall_check) - now)
        return max(0.0, min(waits))

    # --- requests out --------------------------------------------------------------------

    def _send(self, endpoint: str, message: Message, flight: _InFlight) -> bool:
        conn = self._pool.get(endpoint)
        try:
            cid = conn.send(message, timeout=self._timeout_s)
        except AuthenticationError as exc:  # CURVE refused: no retry can help
            self._give_up(exc)
            return False
        except (RequestTimedOutError, BrokerUnavailableError) as exc:
            self._fail(flight, exc, self._clock())
            self._connection_lost(endpoint, conn, exc)
            return False
        self._in_flight[(endpoint, cid)] = flight
        return True

    def _maybe_request_metadata(self, now: float) -> None:
        if self._metadata_in_flight or not self._cache.needs_update(now):
            return
        with self._meta:
            request = self._cache.metadata_request(now, allow_auto_topic_creation=True)
        self._metadata_in_flight = True
        self._send(self._bootstrap, request, _InFlight("metadata", now + self._timeout_s))

    def _maybe_init_producer_id(self, now: float) -> None:
        if self._pid_in_flight or now < self._pid_retry_at:
            return
        producer_id, epoch = self._acc.producer_id
        self._pid_in_flight = True
        request = InitProducerId(None, -1, producer_id, epoch)
        self._send(self._bootstrap, request, _InFlight("pid", now + self._timeout_s))

    def _send_produce(self, endpoint: str, batches: list[ProducerBatch], now: float) -> None:
        request = produce_request(self._client_id, self._acks, int(self._timeout_s * 1000), batches)
        if self._acks == 0:
            conn = self._pool.get(endpoint)
            try:
                conn.send(request, timeout=self._timeout_s)
            except AuthenticationError as exc:
                self._give_up(exc)
                return
            except (RequestTimedOutError, BrokerUnavailableError) as exc:
                self._acc.fail_request(batches, exc, now)
                self._connection_lost(endpoint, conn, exc)
                return
            for batch in batches:
                self._acc.complete(batch, now=now)  # no reply will come (as in Kafka)
            return
        self._send(endpoint, request, _InFlight("produce", now + self._timeout_s + _REPLY_GRACE_S, batches, now))

    # --- replies in ----------------------------------------------------------------------

    def _read_replies(self, endpoint: str, conn: Connection) -> None:
        while not conn.closed and self._pool.readable(conn):
            try:
                cid, reply = conn.receive(0)
            except KBrokerError as exc:  # a malformed reply: give up on this connection's requests
                self._connection_lost(endpoint, conn, exc)
                return
            flight = self._in_flight.pop((endpoint, cid), None)
            if flight is None:
                continue  # a reply to a request already given up on
            self._on_reply(endpoint, flight, reply)

    def _on_reply(self, endpoint: str, flight: _InFlight, reply: Message) -> None:
        now = self._clock()
        if isinstance(reply, ErrorResponse):
            error = error_for_code(reply.code, reply.message)
            if flight.kind != "produce" and isinstance(error, AuthorizationError):
                self._give_up(error)  # denied metadata / producer id: every send would wait for nothing
                return
            self._fail(flight, error, now)
            return
        if flight.kind == "produce" and isinstance(reply, ProduceResponse):
            assert flight.batches is not None
            outcomes = self._acc.handle_response(flight.batches, reply, now)
            errors = [o for o in outcomes if o.error is not None]
            if errors:
                with self._meta:
                    for o in errors:
                        tp = o.batch.tp
                        self._cache.observe_error(tp.topic, tp.partition, o.error.code, o.leader_id, o.leader_epoch)  # type: ignore[union-attr]
        elif flight.kind == "metadata" and isinstance(reply, MetadataResponse):
            self._metadata_in_flight = False
            with self._meta:
                self._cache.update(reply, now)
                self._meta.notify_all()
            self._drop_departed()
        elif flight.kind == "pid" and isinstance(reply, InitProducerIdResponse):
            self._pid_in_flight = False
            if reply.error_code == 0:
                self._acc.set_producer_id(reply.producer_id, reply.producer_epoch)
                return
            error = error_for_code(reply.error_code, reply.error_message)
            if not error.retriable:
                self._acc.abort(error)
                self.fatal = error
                return
            self._pid_retry_at = now + _PID_BACKOFF_S
        else:
            self._fail(flight, UnknownError(f"unexpected {type(reply).__name__} from {endpoint}"), now)

    def _give_up(self, error: KBrokerError) -> None:
        """A failure no retry can fix (CURVE refused, access denied): fail every record with it."""
        if self.fatal is None:
            log.error("the producer cannot continue: %s", error.message)
        self.fatal = error
        self._acc.abort(error)
        self._aborting = True  # the thread ends: send() raises ``fatal`` from now on
        with self._meta:
            self._meta.notify_all()

    def _fail(self, flight: _InFlight, error: KBrokerError, now: float) -> None:
        """A whole request failed (timeout, ErrorResponse, lost connection)."""
        if flight.kind == "produce":
            assert flight.batches is not None
            self._acc.fail_request(flight.batches, error, now)
        elif flight.kind == "metadata":
            self._metadata_in_flight = False
            with self._meta:
                self._cache.failed_update(now)
                self._meta.notify_all()
        else:
            self._pid_in_flight = False
            self._pid_retry_at = now + _PID_BACKOFF_S

    def _expire(self, now: float) -> None:
        late = {endpoint for (endpoint, _), f in self._in_flight.items() if f.deadline <= now}
        for endpoint in late:
            conn = self._pool.get(endpoint)
            self._connection_lost(
                endpoint, conn, RequestTimedOutError(f"no reply from {endpoint} within {self._timeout_s:g}s (request_timeout_ms)")
            )

    def _check_stalled(self, now: float) -> None:
        """A produce unanswered for ``_STALL_S``: refresh metadata to learn whether its worker was fenced
        (a hung process keeps its connection open, so only the controller can tell)."""
        if now < self._next_stall_check:
            return
        if any(f.kind == "produce" and now - f.sent_at >= _STALL_S for f in self._in_flight.values()):
            self._next_stall_check = now + _STALL_S
            with self._meta:
                self._cache.request_update()

    def _drop_departed(self) -> None:
        """Give up on requests in flight to a worker the controller no longer lists (dead or fenced)."""
        for endpoint in self._cache.departed({e for (e, _), f in self._in_flight.items() if f.kind == "produce"}):
            error = BrokerUnavailableError(f"{endpoint} is no longer a live worker (dead or fenced by the controller)")
            self._connection_lost(endpoint, self._pool.get(endpoint), error)

    def _connection_lost(self, endpoint: str, conn: Connection, error: KBrokerError) -> None:
        """Give up on everything in flight to ``endpoint`` and replace its socket."""
        now = self._clock()
        lost = [key for key in self._in_flight if key[0] == endpoint]
        for key in lost:
            self._fail(self._in_flight.pop(key), error, now)
        conn.reconnect()
        with self._meta:
            self._cache.observe_timeout(endpoint)
