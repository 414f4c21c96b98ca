"""The PartitionReplica actor: a thin pykka shell around ``ReplicaState`` (one replica of one partition).

    IOThread ──Envelope(ReplicaAppend/Ack/Fetch/OffsetForLeaderEpoch[/Response])──▶ PartitionReplica
    Gateway ───ProducePart / FetchPart / ListOffsetsPart───────────────────────────▶   │ ReplicaState
    ReplicaManager ──ApplyState / Describe / Delete (asks)─────────────────────────▶   │ (pure core)
    Ticker ──_Tick every tick_interval──────────────────────────────────────────────▶  │
                 ◀── PartAnswer (to the requester's ActorRef) ─ results ◀──────────────┘
    Outbox.to_replicas ──▶ io.tell / io.ask to (endpoint of that worker, "replica:<topic>:<partition>")
    Outbox.to_controller ──▶ io.ask to the controller; the answer goes to on_alter_isr_response

Threads: the worker reaches a replica through its ``LaneRef`` (``start_lane``): a message from the
I/O thread that ``quick`` accepts (the hot path: produce, pushes, acks, fetches, answers to asks;
the ReplicaManager's ticks; no fsync or maintenance due) runs there at once when nothing is queued
for the replica; everything else (controller commands, log opening, truncation, maintenance,
appends that roll or flush) runs on the actor's own thread, in order (actors/lane_ref.py). Either
way one thread at a time holds the lane.

Routing the core's sends (actors/replica_routing.py):
- ReplicaFetch and OffsetForLeaderEpoch (follower -> leader) go as ``ask``; the answer comes back
  as ``Answer(request, future)`` and is handed to the core *with the request it answers*, so a
  late answer to an older question (a previous leader's) is recognised as stale.
- On the leader, a ReplicaFetch / OffsetForLeaderEpoch envelope is kept per follower until the core
  emits the matching response for that follower (now, or later for a parked long-poll fetch); it is
  then ``reply``-ed. A response with no envelope waiting (a newer fetch replaced it) goes as ``tell``.
- ReplicaAppend and ReplicaAppendAck go as ``tell``. Unknown endpoints drop the send: the core
  re-sends on its own timers.

Time: ``clock()`` is wall time in ms (the log stamps LogAppendTime with it). ``tick`` runs on every
``TICK`` (~50 ms: from the ReplicaManager's one ticker thread, or the replica's own Ticker when
``tick_interval`` is given); ``maintenance`` every ``retention_check_interval_ms``.

Invariants: every envelope received is released (``done``/``reply``) by the time its payload is in
the log or the message is handled; the log is closed on stop (or deleted with its topic).
Not thread-safe: the state belongs to whoever holds the actor's lane.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import pykka

from kbroker.actors.lane_ref import Lane, LaneRef, Queued
from kbroker.actors.lease import Lease
from kbroker.actors.metadata_cache import MetadataCache
from kbroker.actors.names import replica_actor_name
from kbroker.actors.replica_requests import (
    ApplyState, Delete, Describe, FetchPart, ListOffsetsPart, PartAnswer, PartAppended, ProducePart,
    UpdateConfig,
)
from kbroker.actors.replica_outbox import FetchResult, Outbox, ProduceResult
from kbroker.actors.replica_routing import Answer, OutboxRouting, error_answer, tell_requester
from kbroker.actors.replica_state import ReplicaState
from kbroker.actors.ticker import Ticker
from kbroker.errors import KafkaStorageError, KBrokerError, NotLeaderError, RequestTimedOutError, UnknownError
from kbroker.transport.envelope import Address, Envelope
from kbroker.transport.io_thread import IOThread
from kbroker.transport.messages_client import ListOffsetsPartitionResponse
from kbroker.transport.messages_internal import (
    AlterIsrResponse,
    OffsetForLeaderEpoch,
    OffsetForLeaderEpochResponse,
    PartitionState,
    ReplicaAppend,
    ReplicaAppendAck,
    ReplicaDescription,
    ReplicaFetch,
    ReplicaFetchResponse,
)
from kbroker.transport.schema import Message

__all__ = ["PartitionReplica", "REPLICA_ACCEPTS", "TICK", "wall_clock_ms", "INLINE_REPLICAS"]

log = logging.getLogger(__name__)

INLINE_REPLICAS = os.environ.get("KBROKER_INLINE_REPLICAS", "1") != "0"
"""Whether replicas run their quick messages on the I/O thread (actors/lane_ref.py); 0 turns it
off, for comparisons: every message then goes through the actor's own thread."""

REPLICA_ACCEPTS: frozenset[type[Message]] = frozenset(
    {ReplicaAppend, ReplicaAppendAck, ReplicaFetch, ReplicaFetchResponse, OffsetForLeaderEpoch, OffsetForLeaderEpochResponse}
)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class _Tick:
    __slots__ = ()


TICK = _Tick()
"""Drives ``tick`` (timeouts, re-sends, ISR checks) and maintenance; sent every ~50 ms."""


@dataclass(frozen=True, slots=True)
class _Crash:
    """A message that failed on the I/O thread: raised again on the actor's thread, so the actor
    fails as it would have there (logged, ``on_failure``, stopped; the manager restarts it)."""

    error: BaseException


# --- the actor --------------------------------------------------------------------------------


class PartitionReplica(OutboxRouting, pykka.ThreadingActor):
    _ENVELOPE_HANDLERS: ClassVar[dict[type, str]] = {
        ReplicaAppend: "_on_append",
        ReplicaAppendAck: "_on_append_ack",
        ReplicaFetch: "_on_fetch",
        OffsetForLeaderEpoch: "_on_epoch_question",
        ReplicaFetchResponse: "_on_fetch_response_tell",
        OffsetForLeaderEpochResponse: "_on_epoch_answer_tell",
    }

    def __init__(
        self,
        *,
        core: ReplicaState,
        io: IOThread,
        cache: MetadataCache,
        controller: Address | None,
        tick_interval: float | None = 0.05,
        retention_check_interval_ms: int = 300_000,
        ask_timeout_s: float = 5.0,
        clock: Callable[[], int] = wall_clock_ms,
        lease: Lease | None = None,
        on_storage_failure: Callable[[str], None] | None = None,
        inline: bool = False,
        publish: Callable[[LaneRef], None] | None = None,
    ) -> None:
        """``inline``: quick messages from the I/O thread run there (``start_lane``); ``publish`` gets
        the ``LaneRef`` through which this replica is to be reached."""
        super().__init__()
        self.lane = Lane()
        self.lane_ref = LaneRef(self, self.actor_ref, io.in_thread, inline=inline)
        if publish is not None:
            publish(self.lane_ref)
        self._on_storage_failure = on_storage_failure  # the manager's: takes this replica offline
        self._failed: str | None = None  # why the storage failed (the replica answers KafkaStorageError)
        self._lease = lease  # the worker's: no produce accepted while it has lapsed (actors/lease.py)
        self.core = core
        self._io = io
        self._cache = cache
        self._controller = controller
        self._tick_interval = tick_interval
        self._retention_interval = retention_check_interval_ms
        self._ask_timeout = ask_timeout_s
        self._clock = clock
        self._name = replica_actor_name(core.ident.topic, core.ident.partition)
        self._waiting_envelopes: dict[tuple[type, int], Envelope] = {}  # (request type, follower) -> envelope
        self._next_maintenance = clock() + retention_check_interval_ms
        self._ticker: Ticker | None = None
        self._closed = False

    @classmethod
    def start_lane(cls, *, inline: bool = INLINE_REPLICAS, **kwargs: Any) -> LaneRef:
        """Start the actor and return its ``LaneRef`` (the worker's way: see actors/lane_ref.py)."""
        box: list[LaneRef] = []
        cls.start(inline=inline, publish=box.append, **kwargs)
        return box[0]

    # --- lifecycle --------------------------------------------------------------------------

    def on_start(self) -> None:
        if self._tick_interval is not None:  # else the owner sends TICK (one thread for every replica)
            self._ticker = Ticker(self.actor_ref, TICK, self._tick_interval, name=f"kbroker-tick-{self._name}").start()

    def on_stop(self) -> None:
        self.lane.enter()  # not while the I/O thread runs a message of ours
        try:
            self._stop_here()
        finally:
            self.lane.leave(counted=False)

    def _stop_here(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
        self._release_waiting()
        if not self._closed:
            self._closed = True
            try:
                self._route(self.core.close())
            except Exception:
                log.exception("%s: closing the log failed", self._name)

    def on_failure(self, *exc: object) -> None:
        self.on_stop()

    # --- dispatch ---------------------------------------------------------------------------

    def on_receive(self, message: object) -> Any:
        """On the actor's thread: a message from the inbox (``Queued`` ones are counted by the lane)."""
        counted = type(message) is Queued
        if counted:
            message = message.message  # type: ignore[attr-defined]
        self.lane.enter()
        try:
            if isinstance(message, _Crash):
                raise message.error
            return self._handle(message)
        finally:
            self.lane.leave(counted)

    def receive_inline(self, message: object) -> None:
        """On the I/O thread, holding the lane (``LaneRef.tell``): a message ``quick`` said yes to."""
        try:
            self._handle(message)
        except Exception as exc:
            crash = Queued(_Crash(exc))
            try:  # counted: nothing more runs inline, everything after it waits behind it and dies with the actor
                self.lane.queue(lambda: self.actor_ref.tell(crash))
            except pykka.ActorDeadError:
                pass

    def quick(self, message: object) -> bool:
        """Whether ``message`` may run on the I/O thread: the hot path (produce, pushes, acks,
        fetches, answers to them) and ticks, and only when an append needs no fsync (no segment
        roll, no flush policy on the topic) and no log maintenance is due. Slow or rare work (log
        opening, truncation, maintenance, controller commands) stays on this actor's thread."""
        if self._closed:
            return type(message) in _QUICK_TYPES
        kind = type(message)
        if kind is Envelope:
            inner = message.message  # type: ignore[attr-defined]
            kind = type(inner)
            if kind is ReplicaAppend:
                return self._quick_append(sum(len(b) for b in inner.batches))
            if kind is ReplicaFetchResponse:
                return self._quick_append(len(inner.records or b""))
            return kind in _QUICK_ENVELOPES
        if kind is ProducePart:
            return self._quick_append(len(message.records))  # type: ignore[attr-defined]
        if kind is _Tick:
            return self._clock() < self._next_maintenance  # retention, compaction, flush.ms: on this thread
        if kind is Answer:
            future = message.future  # type: ignore[attr-defined]
            if future.exception() is not None:
                return True
            reply = future.result()
            if isinstance(reply, ReplicaFetchResponse):
                return self._quick_append(len(reply.records or b""))
            return isinstance(reply, AlterIsrResponse)
        return kind in _QUICK_TYPES

    def _quick_append(self, size: int) -> bool:
        return self.core.log.append_is_quick(size, self._clock())

    def _handle(self, message: object) -> Any:
        try:
            return self._receive(message)
        except OSError as exc:  # the disk failed under the log: this replica goes offline here
            return self._storage_failed(message, exc)

    def _receive(self, message: object) -> Any:
        if isinstance(message, Envelope):
            return self._on_envelope(message)
        now = self._clock()
        if isinstance(message, _Tick):
            self._on_tick(now)
        elif isinstance(message, Answer):
            self._on_answer(message, now)
        elif isinstance(message, ProducePart):
            self._on_produce(message, now)
        elif isinstance(message, FetchPart):
            self._on_consumer_fetch(message, now)
        elif isinstance(message, ListOffsetsPart):
            self._on_list_offsets(message)
        elif isinstance(message, ApplyState):
            if message.isr_only and not self._isr_update(message.state):
                return None
            return self._on_apply(message.state, now)
        elif isinstance(message, UpdateConfig):
            if not self._closed:
                self.core.log.update_config(message.config)
        elif isinstance(message, Describe):
            return self.describe()
        elif isinstance(message, Delete):
            return self._on_delete()
        else:
            log.warning("%s ignored an unexpected message %r", self._name, message)
        return None

    def _on_envelope(self, envelope: Envelope) -> None:
        handler = self._ENVELOPE_HANDLERS.get(type(envelope.message))
        try:
            if handler is None or self._closed:
                return
            getattr(self, handler)(envelope, self._clock())
        finally:
            if not self._is_waiting(envelope):
                envelope.done()

    def _is_waiting(self, envelope: Envelope) -> bool:
        return any(e is envelope for e in self._waiting_envelopes.values())

    # --- storage failure --------------------------------------------------------------------

    def _unavailable(self) -> KBrokerError:
        if self._failed is not None:
            return KafkaStorageError(
                f"{self._name}: the storage of this replica failed on this worker ({self._failed}); "
                "leadership moves to another replica: refresh metadata and retry"
            )
        return _gone(self._name)

    def _storage_failed(self, message: object, exc: OSError) -> Any:
        """Fail what waits, drop the log's file handles unflushed (the next open recovers), answer the
        request that hit the failure, and ask the manager to take this replica offline (it tells the
        controller, which moves leadership and the ISR away, and reopens the log later)."""
        first = self._failed is None
        self._failed = f"{exc.strerror or type(exc).__name__}" + (f" (errno {exc.errno})" if exc.errno else "")
        if first:
            log.error("%s: storage failed: %s; taking this replica offline on this worker", self._name, exc)
        self._release_waiting()
        if not self._closed:
            self._closed = True
            out = self.core.storage_failed()
            self._route(out)
        error = self._unavailable()
        if isinstance(message, ProducePart):
            self._route(Outbox(produce_results=[ProduceResult(message.key, message.acks, error=error)]))
            tell_requester(message.key, PartAppended(message.key))
        elif isinstance(message, FetchPart):
            self._route(Outbox(fetch_results=[FetchResult(message.key, error=error)]))
        elif isinstance(message, ListOffsetsPart):
            self._on_list_offsets(message)
        if first and self._on_storage_failure is not None:
            self._on_storage_failure(self._failed)
        return error if isinstance(message, ApplyState) else None

    # --- controller commands ----------------------------------------------------------------

    def _on_apply(self, state: PartitionState, now: int) -> KBrokerError | None:
        try:
            out = self.core.apply_partition_state(state, now)
        except KBrokerError as exc:
            return exc
        except OSError:
            raise  # a storage failure: see on_receive
        except Exception as exc:
            log.exception("%s: applying %r failed", self._name, state)
            return UnknownError(f"{self._name}: {type(exc).__name__}: {exc}")
        self._route(out)
        if state.leader_id != self.core.ident.local_id:
            self._release_waiting()  # followers' parked requests die with the leadership (their asks time out)
        return None

    def _isr_update(self, state: PartitionState) -> bool:
        core = self.core
        return (
            not self._closed and state.leader_id == core.leader_id and state.leader_epoch == core.leader_epoch
            and state.partition_epoch > core.partition_epoch
        )

    def _on_delete(self) -> None:
        self._release_waiting()
        if not self._closed:
            self._closed = True
            self._route(self.core.delete())

    def describe(self) -> ReplicaDescription:
        core = self.core
        from kbroker.actors.replica_role import Role

        size = getattr(core.log, "size_bytes", 0)
        return ReplicaDescription(
            core.ident.topic, core.ident.partition, 0, core.role is Role.LEADER, core.leader_epoch,
            core.log_start_offset, core.high_watermark, core.log_end_offset, int(size() if callable(size) else size),
        )

    # --- replication: inbound ---------------------------------------------------------------

    def _on_append(self, envelope: Envelope, now: int) -> None:
        self._route(self.core.on_replica_append(envelope.message, now))

    def _on_append_ack(self, envelope: Envelope, now: int) -> None:
        self._route(self.core.on_replica_append_ack(envelope.message, now))

    def _on_fetch(self, envelope: Envelope, now: int) -> None:
        req: ReplicaFetch = envelope.message
        self._park(ReplicaFetchResponse, req.follower_id, envelope)
        self._route(self.core.on_replica_fetch(req, now))

    def _on_epoch_question(self, envelope: Envelope, now: int) -> None:
        req: OffsetForLeaderEpoch = envelope.message
        self._park(OffsetForLeaderEpochResponse, req.follower_id, envelope)
        self._route(self.core.on_offset_for_leader_epoch(req, now))

    def _on_fetch_response_tell(self, envelope: Envelope, now: int) -> None:
        self._route(self.core.on_replica_fetch_response(envelope.message, now))

    def _on_epoch_answer_tell(self, envelope: Envelope, now: int) -> None:
        self._route(self.core.on_offset_for_leader_epoch_response(envelope.message, now))

    def _park(self, response_type: type, follower: int, envelope: Envelope) -> None:
        old = self._waiting_envelopes.pop((response_type, follower), None)
        if old is not None:
            old.done()  # replaced by a newer request: the follower's ask times out and is ignored
        self._waiting_envelopes[(response_type, follower)] = envelope

    def _release_waiting(self) -> None:
        for envelope in self._waiting_envelopes.values():
            envelope.done()
        self._waiting_envelopes.clear()

    def _on_answer(self, answer: Answer, now: int) -> None:
        if self._closed:
            return
        try:
            reply = answer.future.result()
        except KBrokerError as exc:
            log.debug("%s: no answer to %s: %s", self._name, type(answer.request).__name__, exc.message)
            if isinstance(exc, RequestTimedOutError):
                return  # the core re-sends on its own timer
            reply = error_answer(answer.request, exc)  # refused (e.g. no such replica there yet): back off, retry
            if reply is None:
                return
        if isinstance(reply, ReplicaFetchResponse):
            self._route(self.core.on_replica_fetch_response(reply, now, answer.request))
        elif isinstance(reply, OffsetForLeaderEpochResponse):
            self._route(self.core.on_offset_for_leader_epoch_response(reply, now, answer.request))
        elif isinstance(reply, AlterIsrResponse):
            if reply.error_code != 0:
                log.info("%s: the controller refused %r: (%d) %s", self._name, answer.request, reply.error_code, reply.error_message)
            self._route(self.core.on_alter_isr_response(reply, now))

    # --- client requests (from the gateway) -------------------------------------------------

    def _on_produce(self, part: ProducePart, now: int) -> None:
        if self._closed:
            out = Outbox(produce_results=[ProduceResult(part.key, part.acks, error=self._unavailable())])
        elif self._lease is not None and not self._lease.valid():
            out = Outbox(produce_results=[ProduceResult(part.key, part.acks, error=_lapsed(self._name))])
        else:
            out = self.core.append_produce(part.records, part.acks, now, part.key, part.timeout_ms)
        tell_requester(part.key, PartAppended(part.key))
        self._route(out)

    def _on_consumer_fetch(self, part: FetchPart, now: int) -> None:
        if self._closed:
            self._route(Outbox(fetch_results=[FetchResult(part.key, error=self._unavailable())]))
            return
        self._route(
            self.core.fetch(
                part.key, part.offset, part.max_bytes, now, min_bytes=part.min_bytes,
                max_wait_ms=part.max_wait_ms, current_leader_epoch=part.current_leader_epoch,
            )
        )

    def _on_list_offsets(self, part: ListOffsetsPart) -> None:
        core = self.core
        if self._closed:
            error = self._unavailable()
            error_code, text, ts, offset, epoch = error.code, error.message, -1, -1, -1
        else:
            r = core.list_offsets(part.timestamp, current_leader_epoch=part.current_leader_epoch)
            error_code, text = r.error_code, (r.error.message if r.error else None)
            ts, offset, epoch = r.timestamp, r.offset, r.leader_epoch
        response = ListOffsetsPartitionResponse(part.key.partition, error_code, text, ts, offset, epoch)
        tell_requester(part.key, PartAnswer(part.key, response))

    # --- time -------------------------------------------------------------------------------

    def _on_tick(self, now: int) -> None:
        if self._closed:
            return
        self._route(self.core.tick(now))
        if now >= self._next_maintenance:
            self._next_maintenance = now + self._retention_interval
            try:
                self.core.maintenance(now)
            except OSError:
                raise  # a storage failure: see on_receive
            except Exception:
                log.exception("%s: log maintenance failed", self._name)


_QUICK_ENVELOPES: frozenset[type] = frozenset({ReplicaAppendAck, ReplicaFetch, OffsetForLeaderEpoch})
_QUICK_TYPES: frozenset[type] = frozenset({Envelope, ProducePart, FetchPart, ListOffsetsPart, Answer})


def _gone(name: str) -> KBrokerError:
    return NotLeaderError(f"{name} is stopping on this worker; refresh metadata and retry")


def _lapsed(name: str) -> KBrokerError:
    return NotLeaderError(
        f"{name}: this worker has not heard from the controller within its session timeout and may "
        "have been fenced; refresh metadata and retry"
    )
