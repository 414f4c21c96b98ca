"""The Gateway: the default actor of a worker's endpoint, where clients send data requests.

It runs on the worker's I/O thread (``Gateway.start(io=...)`` gives a ``LoopRef``): a client
request is routed in the same loop pass that read it, and its reply leaves from the same thread,
with no thread hand-off in between (actors/loop_ref.py). Its work is routing and aggregation
only, never I/O.

    client ──Produce / Fetch / ListOffsets / Metadata──▶ Gateway
                                                          │ split per partition (tell, correlation = PartKey)
                                                          ▼
                                  PartitionReplica actors of this worker (ReplicaDirectory)
                                                          │ PartAppended (bytes in the log), PartAnswer
                                                          ▼
                                      Gateway aggregates, replies once every part answered

- Produce: each partition goes to its local replica; the request's envelope is released
  (``done``) once every part is appended (or refused), and answered when every part completed
  (acks=1: at once; acks=all: when the ISR has it). acks=0 gets ``done`` and never a reply.
- Fetch: a first pass reads every partition without waiting; if that brings fewer than
  ``min_bytes`` and ``max_wait_ms`` > 0, each partition is asked again to wait (the replica's
  purgatory, up to what remains of ``max_wait_ms``) until it alone brings the bytes still missing,
  and the response goes out when ``min_bytes`` are there in total or every partition has answered
  (an approximation of Kafka's overall ``min_bytes``: a partition counts only its own new bytes).
  A partition error answers the whole fetch at once. ``max_bytes`` bounds the response:
  partitions past it (after the first with data) come back empty, to be fetched again.
- ListOffsets per partition from its leader; Metadata from this worker's ``MetadataCache``.
- DescribeWorkerStats: the gateway counts client traffic (``GatewayCounters``: produce and fetch
  requests, record batch bytes in and out) and hands the envelope with a snapshot of its
  counters to the ReplicaManager, which adds the replicas and answers (``worker_stats.py``).
- Quotas (``producer_byte_rate`` / ``consumer_byte_rate`` per client id, actors/quotas.py): a
  produce's bytes are counted when it arrives, a fetch's when its answer is built; a client over
  its rate gets the answer later (``throttle_time_ms`` says how much), never an error.
- A partition with no local replica: NotLeader with the leader and epoch the cache knows, or
  UnknownTopicOrPartition when the cache does not know it (auto-creation is the controller's:
  clients ask the bootstrap endpoint for metadata first). A local follower answers NotLeader itself.

Invariants: every envelope is released exactly when its payload is no longer needed, and replied
to at most once; a request whose parts never all answer cannot leak past its own deadlines (each
replica completes or expires what it holds). Not thread-safe: state belongs to the I/O thread.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import pykka

from kbroker.actors.loop_ref import LoopRef
from kbroker.actors.metadata_cache import MetadataCache
from kbroker.actors.names import GATEWAY
from kbroker.actors.replica_requests import FetchPart, ListOffsetsPart, PartAnswer, PartAppended, PartKey, ProducePart
from kbroker.actors.replica_manager import ReplicaDirectory
from kbroker.actors.worker_stats import GatewayCounters, StatsAsk
from kbroker.errors import InvalidRequestError, KafkaStorageError, KBrokerError, NotLeaderError, UnknownError, UnknownTopicOrPartitionError
from kbroker.actors.quotas import ByteRateQuota, DelayedReplies
from kbroker.transport.envelope import Envelope
from kbroker.transport.io_thread import IOThread
from kbroker.transport.messages_client import (
    Fetch,
    FetchPartitionResponse,
    FetchResponse,
    FetchTopicResponse,
    ListOffsets,
    ListOffsetsPartitionResponse,
    ListOffsetsResponse,
    ListOffsetsTopicResponse,
    Metadata,
    Produce,
    ProducePartitionResponse,
    ProduceResponse,
    ProduceTopicResponse,
)
from kbroker.transport.messages_admin import DescribeWorkerStats
from kbroker.transport.schema import Message

__all__ = ["GATEWAY_ACTOR", "Gateway"]

INT32_MAX = 2**31 - 1

log = logging.getLogger(__name__)

GATEWAY_ACTOR = GATEWAY


@dataclass(frozen=True, slots=True)
class _Throttled:
    envelope: Envelope
    response: Message


@dataclass(slots=True)
class _Pending:
    envelope: Envelope
    kind: type
    slots: list[tuple[str, int]]  # (topic, partition) per slot, in request order
    results: list[Any]  # per slot: the partition response (None until answered)
    unanswered: set[int]
    unappended: int = 0  # produce: parts not yet in the log
    acks: int = 1
    phase: int = 1  # fetch: 1 = first read, 2 = waiting
    fetch: Fetch | None = None
    deadline_ms: int = 0
    local: set[int] = field(default_factory=set)  # slots served by a local replica
    throttle_ms: int = 0  # produce: the client's quota delay, decided on arrival


class Gateway:
    """Lives on the worker's I/O thread (``LoopRef``): start it with ``Gateway.start(io=...)``."""

    _HANDLERS: ClassVar[dict[type[Message], str]] = {
        Produce: "_on_produce",
        Fetch: "_on_fetch",
        ListOffsets: "_on_list_offsets",
        Metadata: "_on_metadata",
        DescribeWorkerStats: "_on_describe_worker_stats",
    }
    ACCEPTS: ClassVar[frozenset[type[Message]]] = frozenset(_HANDLERS)

    def __init__(
        self,
        *,
        worker_id: int,
        cache: MetadataCache | None = None,
        directory: ReplicaDirectory | None = None,
        clock: Callable[[], int] = lambda: time.monotonic_ns() // 1_000_000,
        manager: pykka.ActorRef | None = None,
        producer_byte_rate: int = 0,
        consumer_byte_rate: int = 0,
        call_soon: Callable[..., bool] | None = None,
    ) -> None:
        self.actor_ref = LoopRef(self, call_soon) if call_soon is not None else LoopRef(self)
        self._produce_quota = ByteRateQuota(producer_byte_rate) if producer_byte_rate > 0 else None
        self._fetch_quota = ByteRateQuota(consumer_byte_rate) if consumer_byte_rate > 0 else None
        self._delayed = DelayedReplies(name=f"kbroker-throttle-{worker_id}") if producer_byte_rate > 0 or consumer_byte_rate > 0 else None
        self._manager = manager  # the worker's ReplicaManager: answers DescribeWorkerStats
        self.counters = GatewayCounters()
        self._started_ms = clock()
        self.worker_id = worker_id
        self._cache = cache or MetadataCache()
        self._directory = directory or ReplicaDirectory()
        self._clock = clock
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}

    @classmethod
    def start(cls, *, io: IOThread | None = None, **kwargs: Any) -> LoopRef:
        """A gateway run by ``io``'s thread (without ``io``: inline in the sender's thread, for tests)."""
        return cls(call_soon=io.call_soon if io is not None else None, **kwargs).actor_ref

    def on_stop(self) -> None:
        if self._delayed is not None:
            self._delayed.stop()

    def _reply(self, envelope: Envelope, response: Message, throttle_ms: int) -> None:
        """Answer now, or after ``throttle_ms`` when the client is over its quota."""
        if throttle_ms <= 0 or self._delayed is None:
            envelope.reply(response)
            return
        ref = self.actor_ref
        self._delayed.call_later(throttle_ms / 1000, lambda: ref.tell(_Throttled(envelope, response)))

    def on_receive(self, message: object) -> None:
        if isinstance(message, _Throttled):
            message.envelope.reply(message.response)
            return
        if isinstance(message, PartAppended):
            self._on_part_appended(message)
            return
        if isinstance(message, PartAnswer):
            self._on_part_answer(message)
            return
        if not isinstance(message, Envelope):
            log.warning("gateway ignored an unexpected message %r", message)
            return
        handler = self._HANDLERS.get(type(message.message))
        try:
            if handler is None:
                raise InvalidRequestError(f"worker {self.worker_id} does not serve {type(message.message).__name__}")
            getattr(self, handler)(message)
        except Exception as exc:
            error = exc if isinstance(exc, InvalidRequestError) else UnknownError(f"the gateway failed: {type(exc).__name__}: {exc}")
            if not isinstance(exc, InvalidRequestError):
                log.exception("gateway failed on %r", message)
            if not message.replied:
                message.reply_error(error)
            message.done()

    # --- routing ----------------------------------------------------------------------------

    def _not_here(self, topic: str, partition: int) -> tuple[KBrokerError, int, int]:
        """The error for a partition with no local replica, with the leader (id, epoch) if known."""
        snapshot = self._cache.snapshot
        state = snapshot.partition(topic, partition)
        reason = self._directory.offline.get((topic, partition))
        if reason is not None and state is not None and state.leader_id in (self.worker_id, -1):
            return (
                KafkaStorageError(f"the replica of {topic}-{partition} on worker {self.worker_id} is offline: its storage "
                                  f"failed ({reason}); leadership moves to another replica: refresh metadata and retry"),
                state.leader_id, state.leader_epoch,
            )  # fmt: skip
        if state is None:
            what = f"topic {topic!r}" if topic not in snapshot.topics else f"partition {partition} of {topic!r}"
            return UnknownTopicOrPartitionError(f"{what} is unknown to worker {self.worker_id}; refresh metadata from the bootstrap endpoint"), -1, -1
        return (
            NotLeaderError(f"worker {self.worker_id} does not lead {topic}-{partition} (leader: {state.leader_id}); send to the leader"),
            state.leader_id,
            state.leader_epoch,
        )

    def _start(self, envelope: Envelope, slots: list[tuple[str, int]], **kw: Any) -> tuple[int, _Pending]:
        rid = next(self._ids)
        pending = _Pending(envelope, type(envelope.message), slots, [None] * len(slots), set(range(len(slots))), **kw)
        self._pending[rid] = pending
        return rid, pending

    def _key(self, rid: int, slot: int, topic: str, partition: int) -> PartKey:
        return PartKey(self.actor_ref, (rid, slot), topic, partition)

    # --- Produce ----------------------------------------------------------------------------

    def _on_produce(self, envelope: Envelope) -> None:
        request: Produce = envelope.message
        slots = [(t.name, p.partition) for t in request.topics for p in t.partitions]
        records = [p.records for t in request.topics for p in t.partitions]
        size = sum(len(r) for r in records)
        self.counters = self.counters.add(produce_requests=1, bytes_in=size)
        throttle = 0
        if self._produce_quota is not None:
            throttle = round(1000 * self._produce_quota.record(request.client_id or "", size, self._clock() / 1000))
        rid, pending = self._start(envelope, slots, acks=request.acks, throttle_ms=throttle)
        sends = []
        for slot, ((topic, partition), data) in enumerate(zip(slots, records)):
            ref = self._directory.get(topic, partition)
            if ref is None:
                error, leader, epoch = self._not_here(topic, partition)
                pending.results[slot] = ProducePartitionResponse(partition, error.code, error.message, -1, -1, -1, leader, epoch)
                pending.unanswered.discard(slot)
            else:
                pending.unappended += 1
                if request.acks == 0:
                    pending.unanswered.discard(slot)
                sends.append((ref, ProducePart(self._key(rid, slot, topic, partition), data, request.acks, request.timeout_ms)))
        for ref, part in sends:
            self._tell(ref, part)
        self._maybe_finish(rid)

    def _on_part_appended(self, msg: PartAppended) -> None:
        rid, _ = msg.key.request
        pending = self._pending.get(rid)
        if pending is not None:
            pending.unappended -= 1
            self._maybe_finish(rid)

    # --- Fetch ------------------------------------------------------------------------------

    def _on_fetch(self, envelope: Envelope) -> None:
        request: Fetch = envelope.message
        slots = [(t.name, p.partition) for t in request.topics for p in t.partitions]
        rid, pending = self._start(envelope, slots, fetch=request, deadline_ms=self._clock() + request.max_wait_ms)
        self._fetch_pass(rid, pending, wait_ms=0)

    def _fetch_pass(self, rid: int, pending: _Pending, wait_ms: int) -> None:
        request = pending.fetch
        assert request is not None
        parts = [p for t in request.topics for p in t.partitions]
        missing_from = sum(len(r.records or b"") for r in pending.results if r is not None)  # what pass 1 got
        sends = []
        for slot, ((topic, partition), part) in enumerate(zip(pending.slots, parts)):
            if pending.phase == 2 and slot not in pending.local:
                continue
            ref = self._directory.get(topic, partition)
            if ref is None:
                error, leader, epoch = self._not_here(topic, partition)
                pending.results[slot] = FetchPartitionResponse(partition, error.code, error.message, -1, -1, -1, leader, epoch, None)
                pending.unanswered.discard(slot)
                continue
            pending.local.add(slot)
            pending.unanswered.add(slot)
            max_bytes = max(1, min(part.partition_max_bytes, request.max_bytes))
            min_bytes = max(1, request.min_bytes - missing_from) if wait_ms else 0
            sends.append(
                (ref, FetchPart(self._key(rid, slot, topic, partition), part.fetch_offset, max_bytes,
                                min_bytes, wait_ms, part.current_leader_epoch))
            )
        for ref, part in sends:
            self._tell(ref, part)
        self._maybe_finish(rid)

    def _fetch_done(self, rid: int, pending: _Pending) -> bool:
        """Whether the fetch can be answered now (else, after the first pass, start waiting)."""
        request = pending.fetch
        assert request is not None
        if pending.phase == 1 and pending.unanswered:
            return False
        got = sum(len(r.records or b"") for r in pending.results if r is not None)
        errors = any(r is not None and r.error_code != 0 for r in pending.results)
        if got >= request.min_bytes and (got > 0 or not pending.unanswered):
            return True
        if pending.unanswered:
            return False
        wait = pending.deadline_ms - self._clock()
        if pending.phase == 2 or wait <= 0 or errors or not pending.local:
            return True
        pending.phase = 2
        self._fetch_pass(rid, pending, wait_ms=wait)
        return False

    # --- ListOffsets ------------------------------------------------------------------------

    def _on_list_offsets(self, envelope: Envelope) -> None:
        request: ListOffsets = envelope.message
        parts = [(t.name, p) for t in request.topics for p in t.partitions]
        rid, pending = self._start(envelope, [(name, p.partition) for name, p in parts])
        sends = []
        for slot, (topic, part) in enumerate(parts):
            ref = self._directory.get(topic, part.partition)
            if ref is None:
                error, _, epoch = self._not_here(topic, part.partition)
                pending.results[slot] = ListOffsetsPartitionResponse(part.partition, error.code, error.message, -1, -1, epoch)
                pending.unanswered.discard(slot)
            else:
                sends.append((ref, ListOffsetsPart(self._key(rid, slot, topic, part.partition), part.timestamp, part.current_leader_epoch)))
        for ref, part in sends:
            self._tell(ref, part)
        self._maybe_finish(rid)

    # --- Metadata ---------------------------------------------------------------------------

    def _on_metadata(self, envelope: Envelope) -> None:
        request: Metadata = envelope.message
        envelope.reply(self._cache.snapshot.metadata_response(request.topics))

    # --- DescribeWorkerStats: counters here, replicas from the replica manager --------------

    def _on_describe_worker_stats(self, envelope: Envelope) -> None:
        if self._manager is None:
            raise InvalidRequestError(f"worker {self.worker_id} does not report stats")
        try:
            self._manager.tell(StatsAsk(envelope, self.counters, self._clock() - self._started_ms))
        except pykka.ActorDeadError:
            raise InvalidRequestError(f"worker {self.worker_id} is stopping") from None

    # --- aggregation ------------------------------------------------------------------------

    def _tell(self, ref: pykka.ActorRef, part: Any) -> None:
        try:
            ref.tell(part)
        except pykka.ActorDeadError:
            key: PartKey = part.key
            error = NotLeaderError(f"the replica of {key.topic}-{key.partition} on worker {self.worker_id} stopped; refresh metadata")
            if isinstance(part, ProducePart):
                self._on_part_appended(PartAppended(key))
                response: Any = ProducePartitionResponse(key.partition, error.code, error.message, -1, -1, -1, -1, -1)
            elif isinstance(part, FetchPart):
                response = FetchPartitionResponse(key.partition, error.code, error.message, -1, -1, -1, -1, -1, None)
            else:
                response = ListOffsetsPartitionResponse(key.partition, error.code, error.message, -1, -1, -1)
            self._on_part_answer(PartAnswer(key, response))

    def _on_part_answer(self, msg: PartAnswer) -> None:
        rid, slot = msg.key.request
        pending = self._pending.get(rid)
        if pending is None or slot not in pending.unanswered:
            return  # a late answer (a fetch already answered), or acks=0
        pending.unanswered.discard(slot)
        pending.results[slot] = msg.response
        self._maybe_finish(rid)

    def _maybe_finish(self, rid: int) -> None:
        pending = self._pending.get(rid)
        if pending is None:
            return
        envelope = pending.envelope
        if pending.kind is Produce:
            if pending.unappended <= 0:
                envelope.done()
            if pending.unappended > 0 or pending.unanswered:
                return
            del self._pending[rid]
            if pending.acks != 0:
                throttle = min(pending.throttle_ms, INT32_MAX)
                self._reply(envelope, ProduceResponse(_group(pending, ProduceTopicResponse), throttle), throttle)
            return
        if pending.kind is Fetch:
            if not self._fetch_done(rid, pending):
                return
            del self._pending[rid]
            _trim(pending)
            sent = sum(len(r.records or b"") for r in pending.results if r is not None)
            self.counters = self.counters.add(fetch_requests=1, bytes_out=sent)
            throttle = 0
            if self._fetch_quota is not None and pending.fetch is not None:
                throttle = min(INT32_MAX, round(1000 * self._fetch_quota.record(pending.fetch.client_id or "", sent, self._clock() / 1000)))
            self._reply(envelope, FetchResponse(0, throttle, _group(pending, FetchTopicResponse)), throttle)
            return
        if pending.unanswered:
            return
        del self._pending[rid]
        envelope.reply(ListOffsetsResponse(_group(pending, ListOffsetsTopicResponse)))


def _group(pending: _Pending, topic_type: Any) -> tuple[Any, ...]:
    """Per-slot responses grouped by topic, in request order (a topic named twice is merged)."""
    order: dict[str, list[Any]] = {}
    for (topic, _), result in zip(pending.slots, pending.results):
        order.setdefault(topic, []).append(result)
    return tuple(topic_type(name, tuple(parts)) for name, parts in order.items())


def _trim(pending: _Pending) -> None:
    """Keep the fetch response within max_bytes: past it (after the first data), partitions come back empty."""
    request = pending.fetch
    assert request is not None
    total = 0
    for i, r in enumerate(pending.results):
        if r is None or not r.records:
            continue
        size = len(r.records)
        if total > 0 and total + size > request.max_bytes:
            pending.results[i] = FetchPartitionResponse(
                r.partition, r.error_code, r.error_message, r.high_watermark, r.last_stable_offset,
                r.log_start_offset, r.leader_id, r.leader_epoch, b"",
            )
        else:
            total += size
