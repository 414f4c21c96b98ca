"""The producer's record accumulator: records in, per-partition batches out, futures resolved.

    send()/append()  ──>  per TopicPartition: deque[ProducerBatch]  ──drain()──>  {leader: [batches]}
    (user threads)        [RETRY..., full OPEN..., OPEN <- appends]        (sender)     │
                                                                                        v
    futures resolved  <──  complete()/handle_response()/fail_request()  <──  ProduceResponse

- A partition's records go into the OPEN batch at the tail of its queue until it reaches
  ``batch_bytes`` (estimated); a batch is *ready* when it is full (or not the last one), when
  ``linger_ms`` has passed since it was opened, or at once while a flush, a close or a blocked
  ``send`` is waiting. ``drain`` takes at most one ready batch per partition per call, up to
  ``max_request_size`` bytes per leader, and never more than ``max_in_flight`` batches of one
  partition in flight; with idempotence one, until the leader has acknowledged a batch of the
  partition numbered with the current producer id and epoch (a leader that does not know the
  producer yet takes any first sequence, so a second batch must not overtake a first one that was
  refused, e.g. by a replica not ready yet right after the topic was created).
- Idempotence: ``drain`` gives a batch the producer id, epoch and the partition's next sequence
  the first time it sends it (``base_sequence``; then + record count, wrapping at 2^31). A batch
  failing with a retriable error goes back to the front of its queue in drain order and keeps its
  bytes and sequence; a retried batch is sent only once nothing else of its partition is in flight,
  so the broker sees sequences in order. A batch failing for good with an error that proves it was
  not written rewinds the sequences of the partition's later batches; one whose outcome is unknown
  (retries or ``delivery_timeout_ms`` used up, unexplained OutOfOrderSequence) stops all sending
  until nothing is in flight, then ``Drained.producer_id_needed`` asks for an epoch bump
  (``InitProducerId``), after which every partition's sequences restart at 0 (as KIP-360).
- Memory: ``buffer_memory`` bounds the estimated bytes of incomplete batches; ``send`` blocks up
  to ``max_block_ms`` for room, then raises ``RequestTimedOutError``.

Layers: the ``Accumulator`` (locking, memory, readiness across partitions, the retry policy)
owns one ``PartitionQueue`` per partition (its batches, in-flight list and sequences), which owns
its ``ProducerBatch``es (records, bytes, futures).

Invariants: every record future resolves exactly once; per partition, sequences of the batches
the broker accepts are contiguous and in send order; a record bigger than ``max_request_size`` or
``buffer_memory`` is refused by ``send`` at once (``RecordTooLargeError``).

Thread-safe: one lock, held briefly per record. Time is injected (``clock``: monotonic seconds
for linger, backoff and timeouts; ``wall_clock_ns``: ns since the epoch for record timestamps);
the methods that decide anything take ``now``. ``wakeup`` is called (possibly under the lock)
when the sender should drain again: it must only signal, never block or call back in.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from enum import Enum
from typing import Callable, Iterable, Sequence

from kbroker.errors import (
    DuplicateSequenceError,
    KBrokerError,
    OutOfOrderSequenceError,
    RecordTooLargeError,
    RequestTimedOutError,
    UnknownError,
    error_for_code,
)
from kbroker.transport.client.lean_appends import NO_HEADERS, LeanAppends
from kbroker.transport.client.partition_queue import PartitionQueue
from kbroker.transport.client.partitioner import Partitioner, check_partition
from kbroker.transport.client.producer_batch import BatchState, ProducerBatch, RecordFuture
from kbroker.transport.client.record_input import (
    BATCH_OVERHEAD,
    RECORD_OVERHEAD,
    check_headers,
    check_timestamp,
    to_bytes,
)
from kbroker.transport.client.types import TopicPartition
from kbroker.transport.messages_client import Produce, ProducePartition, ProduceResponse, ProduceTopic

__all__ = ["Accumulator", "Action", "Drained", "PartitionOutcome", "produce_request"]

OPEN, IN_FLIGHT = BatchState.OPEN, BatchState.IN_FLIGHT
DONE, FAILED = BatchState.DONE, BatchState.FAILED
_DUPLICATE = DuplicateSequenceError.code
_OUT_OF_ORDER = OutOfOrderSequenceError.code


class Action(Enum):
    """What became of a batch when its response (or failure) was handled."""

    DONE = "done"  # acknowledged; futures resolved with offsets
    RETRY = "retry"  # back in its queue; will be sent again after retry_backoff_ms
    FAILED = "failed"  # futures failed with the error
    IGNORED = "ignored"  # the batch was no longer in flight (aborted or expired meanwhile)


@dataclass(frozen=True, slots=True)
class PartitionOutcome:
    batch: ProducerBatch
    action: Action
    error: KBrokerError | None = None
    leader_id: int = -1  # with NotLeader: the leader the broker named, for the metadata cache
    leader_epoch: int = -1


@dataclass(frozen=True, slots=True)
class Drained:
    requests: dict[str, list[ProducerBatch]]  # leader endpoint -> batches (bytes built), one per partition
    unknown_leader_topics: frozenset[str]  # ready batches wait for these topics' leaders: refresh metadata
    expired: tuple[ProducerBatch, ...]  # failed by delivery_timeout_ms during this call
    next_check_s: float | None  # when to drain again at the latest (linger, backoff); None: nothing waits
    producer_id_needed: bool  # idempotent producer without an id, or one needing an epoch bump


def _noop() -> None:
    return None


class Accumulator(LeanAppends):
    """Per-partition batching, sequencing, retries and futures of a producer (no sockets)."""

    def __init__(
        self,
        *,
        batch_bytes: int = 512 * 1024,
        linger_ms: float = 5,
        buffer_memory: int = 32 * 1024 * 1024,
        max_block_ms: float = 60_000,
        max_request_size: int = 1024 * 1024,
        max_in_flight: int = 5,
        retries: int = 2**31 - 1,
        retry_backoff_ms: float = 100,
        delivery_timeout_ms: float = 120_000,
        idempotent: bool = True,
        compression: str | None = None,
        partitioner: Partitioner | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock_ns: Callable[[], int] = time.time_ns,
        wakeup: Callable[[], object] = _noop,
    ) -> None:
        for name, value in (("batch_bytes", batch_bytes), ("buffer_memory", buffer_memory),
                            ("max_request_size", max_request_size), ("max_in_flight", max_in_flight)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if min(linger_ms, max_block_ms, retry_backoff_ms, delivery_timeout_ms, retries) < 0:
            raise ValueError("linger_ms, max_block_ms, retry_backoff_ms, delivery_timeout_ms and retries must be >= 0")
        from kbroker.storage.compression import codec_from_name

        self._compression = codec_from_name(compression)  # fails now for unknown or missing codecs
        self._batch_bytes = batch_bytes
        self._full_at = batch_bytes - RECORD_OVERHEAD  # above this not even an empty record fits: full
        self._linger_s = linger_ms / 1000
        self._buffer_memory = buffer_memory
        self._max_block_s = max_block_ms / 1000
        self._max_request_size = max_request_size
        self._max_record_size = min(max_request_size, buffer_memory) - BATCH_OVERHEAD
        self._max_in_flight = max_in_flight
        self._retries = retries
        self._retry_backoff_s = retry_backoff_ms / 1000
        self._delivery_timeout_s = delivery_timeout_ms / 1000
        self._idempotent = idempotent
        self._partitioner = partitioner if partitioner is not None else Partitioner()
        self._sticky = self._partitioner.sticky_map() if type(self._partitioner) is Partitioner else None
        self._clock = clock
        self._wall_ns = wall_clock_ns
        self._wakeup = wakeup
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)
        self._topics: dict[str, dict[int, PartitionQueue]] = {}
        self._queues: list[PartitionQueue] = []
        self._drain_start = 0
        self._buffered = 0
        self._incomplete: dict[ProducerBatch, None] = {}
        self._flushes = 0
        self._space_waiters = 0
        self._closed = False
        self._admit_limit = buffer_memory  # -1 once closed: one comparison per append checks both
        self._producer_id = -1
        self._producer_epoch = -1
        self._epoch_bump_needed = False

    # --- records in ------------------------------------------------------------------------

    def send(
        self,
        topic: str,
        value: object,
        key: object = None,
        headers: Iterable[object] | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        *,
        num_partitions: int,
        available: Sequence[int] | None = None,
    ) -> RecordFuture:
        """Partition (explicit, murmur2 of the key, or sticky) and append one record.

        ``num_partitions`` and ``available`` (partitions that have a leader) come from metadata.
        The general path: ``Producer.send`` tries ``append_to_sticky`` first and comes here only
        when that cannot place the record (as ``append_many`` does), so it is not tried twice.
        """
        if key is not None and key.__class__ is not bytes:
            key = to_bytes("key", key)
        if partition is not None:
            partition = check_partition(topic, partition, num_partitions)
        elif key is not None:
            partition = self._partitioner.key_hash(key) % num_partitions  # type: ignore[arg-type]
        else:
            partitioner = self._partitioner
            partition = partitioner.sticky_partition(topic, num_partitions, available)
            future = self.append(topic, partition, value, None, headers, timestamp_ms, True)
            if future is not None:
                return future
            partition = partitioner.on_new_batch(topic, partition, num_partitions, available)
        return self.append(topic, partition, value, key, headers, timestamp_ms)  # type: ignore[return-value]

    def append(
        self,
        topic: str,
        partition: int,
        value: object,
        key: object = None,
        headers: Iterable[object] | None = None,
        timestamp_ms: int | None = None,
        abort_on_new_batch: bool = False,
    ) -> RecordFuture | None:
        """Append to ``topic``/``partition``'s open batch (opening one if needed).

        With ``abort_on_new_batch`` returns None instead of opening a batch (sticky partitioning).
        This is the per-record hot path: keep it lean (see the figures in the tests).
        """
        if value is not None and value.__class__ is not bytes:
            value = to_bytes("value", value)
        if key is not None and key.__class__ is not bytes:
            key = to_bytes("key", key)
        size = RECORD_OVERHEAD + (len(value) if value is not None else 0) + (len(key) if key is not None else 0)
        if headers:
            headers, headers_size = check_headers(headers)
            size += headers_size
        if timestamp_ms is None:
            timestamp_ms = self._wall_ns() // 1_000_000
        else:
            timestamp_ms = check_timestamp(timestamp_ms)
        if size > self._max_record_size:
            raise self._too_large(size)
        wake = False
        lock = self._lock
        lock.acquire()
        try:
            if self._buffered + size > self._admit_limit:
                self._wait_for_space(size)  # or raise: closed, or no room within max_block_ms
            try:
                queue = self._topics[topic][partition]
            except KeyError:
                queue = self._add_queue(topic, partition)
            batch = queue.open
            if batch is not None and batch.size + size <= self._batch_bytes:
                records = batch.records
                index = len(records)  # type: ignore[arg-type]
                records.append((index, timestamp_ms - batch.first_ts, key, value, headers or NO_HEADERS))  # type: ignore[union-attr]
                if timestamp_ms > batch.max_ts:
                    batch.max_ts = timestamp_ms
            else:
                if abort_on_new_batch:
                    return None
                batch = ProducerBatch(queue.tp, self._compression, self._clock(), BATCH_OVERHEAD, timestamp_ms)
                index = 0
                batch.records.append((0, 0, key, value, headers or NO_HEADERS))  # type: ignore[union-attr]
                queue.batches.append(batch)
                queue.open = batch
                self._incomplete[batch] = None
                self._buffered += BATCH_OVERHEAD
                wake = True
            batch.size += size
            self._buffered += size
            if batch.size > self._full_at:
                wake = True
        finally:
            lock.release()
        if wake:
            self._wakeup()
        return RecordFuture(batch, index, timestamp_ms)

    def _too_large(self, size: int) -> RecordTooLargeError:
        limit = "max_request_size" if self._max_request_size <= self._buffer_memory else "buffer_memory"
        value = min(self._max_request_size, self._buffer_memory)
        return RecordTooLargeError(
            f"a record of about {size + BATCH_OVERHEAD} bytes (key, value, headers and batch header) is larger "
            f"than the producer's {limit}={value}; send a smaller record or raise {limit} (the topic's "
            "max.message.bytes must allow it too)"
        )

    def _add_queue(self, topic: str, partition: int) -> PartitionQueue:
        queue = PartitionQueue(TopicPartition(topic, partition))
        self._topics.setdefault(topic, {})[partition] = queue
        self._queues.append(queue)
        return queue

    def _wait_for_space(self, size: int) -> None:
        """Block (lock held, released while waiting) until ``size`` bytes fit in buffer_memory."""
        if self._closed:
            raise RuntimeError("cannot send: the producer is closed")
        deadline = self._clock() + self._max_block_s
        self._space_waiters += 1
        try:
            self._wakeup()  # everything is ready while someone waits: the sender frees memory
            while self._buffered + size > self._buffer_memory:
                if self._closed:
                    raise RuntimeError("cannot send: the producer was closed while this send waited for memory")
                remaining = deadline - self._clock()
                if remaining <= 0:
                    raise RequestTimedOutError(
                        f"the producer's buffer is full ({self._buffered} of buffer_memory={self._buffer_memory} "
                        f"bytes waiting to be sent) and no room freed up within max_block_ms="
                        f"{self._max_block_s * 1000:g}; the broker may be slow or unreachable: flush(), or raise "
                        "buffer_memory or max_block_ms"
                    )
                self._space.wait(remaining)
        finally:
            self._space_waiters -= 1

    # --- batches out -----------------------------------------------------------------------

    def drain(self, leader_of: Callable[[str, int], str | None], now: float | None = None) -> Drained:
        """Take the batches to send now, grouped by leader endpoint (``leader_of(topic, partition)``)."""
        if now is None:
            now = self._clock()
        finished: list[tuple[ProducerBatch, KBrokerError]] = []
        requests: dict[str, list[ProducerBatch]] = {}
        to_build: list[tuple[ProducerBatch, tuple[int, int, int]]] = []
        unknown: set[str] = set()
        next_check: float | None = None
        with self._lock:
            self._expire(now, finished)
            blocked = self._idempotent and (self._producer_id < 0 or self._epoch_bump_needed)
            if blocked:
                needed = self._producer_id < 0 or not any(q.in_flight for q in self._queues)
            else:
                needed = False
                force = self._flushes > 0 or self._closed or self._space_waiters > 0
                sizes: dict[str, int] = {}
                queues = self._queues
                count = len(queues)
                start = self._drain_start % count if count else 0
                self._drain_start += 1
                for i in range(count):
                    queue = queues[(start + i) % count]
                    if not queue.batches:
                        continue
                    wait = queue.wait_before_send(
                        now, force=force, linger_s=self._linger_s, full_at=self._full_at,
                        max_in_flight=self._max_in_flight if queue.confirmed or not self._idempotent else 1,
                    )  # fmt: skip
                    if wait != 0.0:
                        if wait is not None:
                            next_check = wait if next_check is None or wait < next_check else next_check
                        continue
                    leader = leader_of(queue.tp.topic, queue.tp.partition)
                    if leader is None:
                        unknown.add(queue.tp.topic)
                        continue
                    size = queue.batches[0].size
                    used = sizes.get(leader, 0)
                    if used and used + size > self._max_request_size:
                        continue
                    sizes[leader] = used + size
                    batch, stamp = queue.start_send(self._producer_id, self._producer_epoch, self._idempotent)
                    to_build.append((batch, stamp))
                    requests.setdefault(leader, []).append(batch)
        for batch, stamp in to_build:
            batch.build(stamp)  # outside the lock: msgpack, compression and CRC are per-batch work
        expired = self._resolve_failures(finished)
        return Drained(requests, frozenset(unknown), expired, next_check, needed)

    def _expire(self, now: float, finished: list[tuple[ProducerBatch, KBrokerError]]) -> None:
        """Fail queued batches older than delivery_timeout_ms (lock held)."""
        limit = self._delivery_timeout_s
        for queue in self._queues:
            for batch in queue.expire(now, limit):
                error = RequestTimedOutError(
                    f"{batch.record_count} record(s) for {batch.tp} expired after {limit * 1000:g} ms "
                    f"(delivery_timeout_ms) without being acknowledged"
                    + (f"; last error: {batch.last_error.message}" if batch.last_error else "")
                )
                self._fail_for_good(queue, batch, error, outcome_known=batch.state is OPEN)
                finished.append((batch, error))

    # --- responses in ----------------------------------------------------------------------

    def complete(
        self,
        batch: ProducerBatch,
        error_code: int = 0,
        *,
        base_offset: int = -1,
        log_append_time_ms: int = -1,
        error_message: str | None = None,
        now: float | None = None,
    ) -> Action:
        """Handle one partition's answer (a ProducePartitionResponse's fields; acks=0: no arguments)."""
        error = None if error_code == 0 else error_for_code(error_code, error_message)
        return self._complete(batch, error, base_offset, log_append_time_ms, now)

    def handle_response(
        self, batches: Sequence[ProducerBatch], response: ProduceResponse, now: float | None = None
    ) -> list[PartitionOutcome]:
        """Handle a ``ProduceResponse`` for the ``batches`` sent in the request."""
        answers = {(t.name, p.partition): p for t in response.topics for p in t.partitions}
        outcomes = []
        for batch in batches:
            answer = answers.get((batch.tp.topic, batch.tp.partition))
            if answer is None:
                error: KBrokerError | None = UnknownError(f"the ProduceResponse did not answer for {batch.tp}")
                action = self._complete(batch, error, -1, -1, now)
                outcomes.append(PartitionOutcome(batch, action, error))
                continue
            error = None if answer.error_code == 0 else error_for_code(answer.error_code, answer.error_message)
            action = self._complete(batch, error, answer.base_offset, answer.log_append_time_ms, now)
            outcomes.append(PartitionOutcome(batch, action, error, answer.leader_id, answer.leader_epoch))
        return outcomes

    def fail_request(
        self, batches: Sequence[ProducerBatch], error: KBrokerError, now: float | None = None
    ) -> list[PartitionOutcome]:
        """The whole request failed (timeout, ErrorResponse, lost connection): each batch retries or fails."""
        return [PartitionOutcome(b, self._complete(b, error, -1, -1, now), error) for b in batches]

    def _complete(
        self,
        batch: ProducerBatch,
        error: KBrokerError | None,
        base_offset: int,
        log_append_time_ms: int,
        now: float | None,
    ) -> Action:
        if now is None:
            now = self._clock()
        with self._lock:
            if batch.state is not IN_FLIGHT:
                return Action.IGNORED
            queue = self._topics[batch.tp.topic][batch.tp.partition]
            queue.in_flight.remove(batch)
            if error is None or (error.code == _DUPLICATE and batch.base_sequence >= 0):
                batch.move(DONE)  # a duplicate was written before: success (offset unknown unless given)
                if batch.producer_epoch == self._producer_epoch and batch.producer_id == self._producer_id:
                    queue.confirmed = True  # the leader knows this producer now: pipeline its batches
                self._release(batch)
                action = Action.DONE
                error = None
            else:
                action = self._retry_or_fail(queue, batch, error, now)
            if action is not Action.RETRY:
                self._space.notify_all()
        if action is Action.RETRY:
            self._wakeup()
            return action
        batch.resolve(base_offset if action is Action.DONE else -1, log_append_time_ms, error)
        return action

    def _retry_or_fail(self, queue: PartitionQueue, batch: ProducerBatch, error: KBrokerError, now: float) -> Action:
        retriable = error.retriable
        explained = False
        if error.code == _OUT_OF_ORDER:
            # expected behind an earlier batch being retried or failed, or before a new epoch
            explained = self._epoch_bump_needed or queue.gap_explained(batch)
            retriable = explained
        if retriable and batch.attempts <= self._retries and now - batch.created < self._delivery_timeout_s:
            batch.last_error = error
            queue.requeue(batch, now + self._retry_backoff_s)
            return Action.RETRY
        # known not written: a non-retriable answer other than an unexplained sequence gap
        known = not error.retriable and not (error.code == _OUT_OF_ORDER and not explained)
        self._fail_for_good(queue, batch, error, outcome_known=known)
        return Action.FAILED

    def _fail_for_good(self, queue: PartitionQueue, batch: ProducerBatch, error: KBrokerError, *, outcome_known: bool) -> None:
        """Move ``batch`` to FAILED (lock held) and repair the partition's sequences."""
        batch.move(FAILED)
        batch.error = error
        self._release(batch)
        if batch.base_sequence < 0:
            return  # never numbered: nothing to repair
        if outcome_known:
            queue.rewind_after(batch)
        else:
            self._epoch_bump_needed = True  # it may or may not be written: start a new epoch

    def _release(self, batch: ProducerBatch) -> None:
        self._buffered -= batch.size
        self._incomplete.pop(batch, None)

    def _resolve_failures(self, finished: list[tuple[ProducerBatch, KBrokerError]]) -> tuple[ProducerBatch, ...]:
        if finished:
            with self._lock:
                self._space.notify_all()
        for batch, error in finished:
            batch.resolve(-1, -1, error)
        return tuple(batch for batch, _ in finished)

    # --- producer id -----------------------------------------------------------------------

    @property
    def producer_id(self) -> tuple[int, int]:
        with self._lock:
            return self._producer_id, self._producer_epoch

    def set_producer_id(self, producer_id: int, producer_epoch: int) -> None:
        """Use this id and epoch from now on (InitProducerIdResponse); a new one restarts sequences at 0."""
        with self._lock:
            changed = (producer_id, producer_epoch) != (self._producer_id, self._producer_epoch)
            self._producer_id = producer_id
            self._producer_epoch = producer_epoch
            self._epoch_bump_needed = False
            if not changed:
                return
            for queue in self._queues:
                queue.renumber(producer_id, producer_epoch)
        self._wakeup()

    # --- flush, close, introspection ------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Make everything ready now and wait until every batch incomplete at the call is done.

        Returns False if ``timeout`` (seconds) passed first. The sender must keep draining.
        """
        with self._lock:
            self._flushes += 1
            pending = list(self._incomplete)
        try:
            self._wakeup()
            deadline = None if timeout is None else time.monotonic() + timeout
            for batch in pending:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not batch.wait(remaining):
                    return False
            return True
        finally:
            with self._lock:
                self._flushes -= 1

    def close(self) -> None:
        """No more records: sends raise, everything queued is ready at once (then ``flush``)."""
        with self._lock:
            self._closed = True
            self._admit_limit = -1
            self._space.notify_all()
        self._wakeup()

    def abort(self, error: KBrokerError) -> int:
        """Fail every incomplete batch, queued or in flight, with ``error``; returns how many."""
        finished: list[tuple[ProducerBatch, KBrokerError]] = []
        with self._lock:
            self._closed = True
            self._admit_limit = -1
            for queue in self._queues:
                for batch in queue.take_all():
                    batch.move(FAILED)
                    batch.error = error
                    self._release(batch)
                    finished.append((batch, error))
        self._resolve_failures(finished)
        return len(finished)

    @property
    def buffered_bytes(self) -> int:
        return self._buffered

    def incomplete_count(self) -> int:
        """Batches not yet acknowledged or failed (queued or in flight)."""
        with self._lock:
            return len(self._incomplete)

    def in_flight_count(self) -> int:
        with self._lock:
            return sum(len(q.in_flight) for q in self._queues)


def produce_request(client_id: str, acks: int, timeout_ms: int, batches: Sequence[ProducerBatch]) -> Produce:
    """The ``Produce`` message carrying ``batches`` (one drained request: at most one per partition)."""
    topics: dict[str, list[ProducePartition]] = {}
    for batch in batches:
        assert batch.payload is not None, "drain() builds the bytes of every batch it returns"
        topics.setdefault(batch.tp.topic, []).append(ProducePartition(batch.tp.partition, batch.payload))
    return Produce(
        client_id=client_id,
        acks=acks,
        timeout_ms=timeout_ms,
        topics=tuple(ProduceTopic(name, tuple(parts)) for name, parts in topics.items()),
    )
