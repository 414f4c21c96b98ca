"""One producer batch on its way to a partition leader, and the per-record futures it resolves.

Lifecycle (``BatchState``; ``TRANSITIONS`` is the whole table, checked on every move):

    OPEN ──drain──> IN_FLIGHT ──success──> DONE
      │                │  ^
      │                │  └──drain── RETRY    (retriable error: back at the front of its
      │                └──retriable──> ┘       partition's queue, same bytes, same sequence)
      └──────────── FAILED <── fatal error, retries/delivery timeout used up, abort

Invariants:
- Records are appended only while OPEN, and only to the last batch of a partition's queue.
- The records are kept in the body layout of ``storage/records.py`` (``BatchBuilder``'s, without
  its per-record re-validation, which would cost ~0.4 us of the ~1 us per-record budget: the
  accumulator validates once) and are byte-identical to ``BatchBuilder.build`` (tested).
- The batch bytes are built once, when the batch is first drained; producer id, epoch and base
  sequence are fixed then and change only by ``restamp`` (sequences rewound after an earlier
  batch failed for good, or renumbered after a producer epoch bump), never the records.
- ``complete``/``fail`` happen once: every record future resolves exactly once, all of a batch's
  futures together, with ``offset = base_offset + index``.

Futures are ``concurrent.futures.Future``-compatible where it matters (``result(timeout)``,
``exception``, ``add_done_callback``, ``done``); they are not ``concurrent.futures.Future``
instances (those cost ~2 us each to create), so ``as_concurrent_future()`` bridges to
``concurrent.futures.wait`` / ``asyncio.wrap_future``.

Thread-safety: the accumulator moves batches between states under its lock; futures may be
waited on and given callbacks from any thread.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from enum import Enum
from typing import Callable

from kbroker.errors import KBrokerError
import msgpack

from kbroker.storage.batch import HEADER_SIZE, pack_header, read_header
from kbroker.storage.compression import Codec, compress
from kbroker.transport.client.types import RecordMetadata, TopicPartition

__all__ = ["BatchState", "TRANSITIONS", "ProducerBatch", "RecordFuture", "SendManyFuture"]

log = logging.getLogger(__name__)

_CALLBACK_LOCK = threading.Lock()  # guards callbacks lists vs completion; never held while calling out


class BatchState(Enum):
    OPEN = "open"
    IN_FLIGHT = "in_flight"
    RETRY = "retry"
    DONE = "done"
    FAILED = "failed"


TRANSITIONS: dict[BatchState, frozenset[BatchState]] = {
    BatchState.OPEN: frozenset({BatchState.IN_FLIGHT, BatchState.FAILED}),
    BatchState.IN_FLIGHT: frozenset({BatchState.DONE, BatchState.RETRY, BatchState.FAILED}),
    BatchState.RETRY: frozenset({BatchState.IN_FLIGHT, BatchState.FAILED}),
    BatchState.DONE: frozenset(),
    BatchState.FAILED: frozenset(),
}

OPEN = BatchState.OPEN


class ProducerBatch:
    """Records for one partition, sent and acknowledged together."""

    __slots__ = (
        "tp",
        "records",
        "first_ts",
        "max_ts",
        "codec",
        "payload",
        "state",
        "size",
        "created",
        "attempts",
        "order",
        "producer_id",
        "producer_epoch",
        "base_sequence",
        "resequenced",
        "stamp",
        "retry_at",
        "last_error",
        "base_offset",
        "log_append_time_ms",
        "error",
        "_count",
        "_done",
        "_event",
        "_callbacks",
    )

    def __init__(self, tp: TopicPartition, codec: Codec, created: float, overhead: int, first_ts: int) -> None:
        self.tp = tp
        # the body's records, exactly as storage/records.py lays them out (msgpack arrays):
        # (offset_delta, timestamp_delta (from first_ts), key, value, headers); tuples, not lists: a
        # tuple of atoms leaves the garbage collector's watch, and full batches hold many records
        self.records: list[tuple] | None = []
        self.first_ts = first_ts
        self.max_ts = first_ts
        self.codec = codec
        self.payload: bytes | None = None
        self.state = OPEN
        self.size = overhead  # estimated bytes, as counted against batch_bytes and buffer_memory
        self.created = created
        self.attempts = 0
        self.order = -1  # drain order within the partition (set on first drain); orders retries
        self.producer_id = -1
        self.producer_epoch = -1
        self.base_sequence = -1
        self.resequenced = False  # sequence rewound while in flight: its rejection is expected, retry it
        self.stamp: tuple[int, int, int] | None = None  # (producer id, epoch, base sequence) in the bytes
        self.retry_at = 0.0
        self.last_error: KBrokerError | None = None
        self.base_offset = -1
        self.log_append_time_ms = -1
        self.error: KBrokerError | None = None
        self._count = 0
        self._done = False
        self._event = threading.Event()
        self._callbacks: list[tuple[RecordFuture, Callable[[RecordFuture], object]]] | None = None

    def __repr__(self) -> str:
        return (
            f"ProducerBatch({self.tp}, {self.record_count} records, {self.state.value}, "
            f"seq={self.base_sequence}, attempts={self.attempts})"
        )

    @property
    def record_count(self) -> int:
        return len(self.records) if self.records is not None else self._count

    @property
    def done(self) -> bool:
        return self._done

    def move(self, new: BatchState) -> None:
        if new not in TRANSITIONS[self.state]:
            raise RuntimeError(f"{self!r}: illegal transition {self.state.value} -> {new.value}")
        self.state = new

    # --- bytes ---------------------------------------------------------------------------

    def build(self, stamp: tuple[int, int, int]) -> bytes:
        """The batch bytes with ``stamp`` = (producer id, epoch, base sequence) in the header.

        Built from the records on the first call (byte for byte what ``BatchBuilder.build`` makes
        of the same records; the record list is dropped then); later calls with another stamp
        rewrite only the header (``_restamp``).
        """
        if self.payload is None:
            records = self.records
            assert records
            producer_id, producer_epoch, base_sequence = stamp
            body = compress(self.codec, msgpack.packb(records, use_bin_type=True))
            header = pack_header(
                base_offset=0,
                body_size=len(body),
                leader_epoch=-1,
                attributes=int(self.codec),
                last_offset_delta=len(records) - 1,
                first_timestamp=self.first_ts,
                max_timestamp=self.max_ts,
                producer_id=producer_id,
                producer_epoch=producer_epoch,
                base_sequence=base_sequence,
                records_count=len(records),
                body=body,
            )
            self._count = len(records)
            self.payload = header + body
            self.records = None  # the records live on in the bytes only
        elif stamp != self.stamp:
            self._restamp(stamp)
        self.stamp = stamp
        return self.payload

    def _restamp(self, stamp: tuple[int, int, int]) -> None:
        """Rewrite the header with another producer id, epoch and base sequence (CRC redone)."""
        assert self.payload is not None
        producer_id, producer_epoch, base_sequence = stamp
        header = read_header(self.payload)
        body = memoryview(self.payload)[HEADER_SIZE:]
        new_header = pack_header(
            base_offset=header.base_offset,
            body_size=len(body),
            leader_epoch=header.leader_epoch,
            attributes=header.attributes,
            last_offset_delta=header.last_offset_delta,
            first_timestamp=header.first_timestamp,
            max_timestamp=header.max_timestamp,
            producer_id=producer_id,
            producer_epoch=producer_epoch,
            base_sequence=base_sequence,
            records_count=header.records_count,
            body=body,
        )
        self.payload = new_header + body

    # --- completion (called by the accumulator, under its lock) ---------------------------

    def resolve(self, base_offset: int, log_append_time_ms: int, error: KBrokerError | None) -> None:
        """Complete every record future of the batch (once); run callbacks outside any lock."""
        self.base_offset = base_offset
        self.log_append_time_ms = log_append_time_ms
        self.error = error
        with _CALLBACK_LOCK:
            self._done = True
            callbacks, self._callbacks = self._callbacks, None
        self._event.set()
        if callbacks:
            for future, fn in callbacks:
                _run_callback(future, fn)

    def wait(self, timeout: float | None) -> bool:
        return self._done or self._event.wait(timeout)

    def add_callback(self, future: RecordFuture, fn: Callable[[RecordFuture], object]) -> None:
        with _CALLBACK_LOCK:
            if not self._done:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append((future, fn))
                return
        _run_callback(future, fn)


def _run_callback(future: RecordFuture, fn: Callable[[RecordFuture], object]) -> None:
    try:
        fn(future)
    except Exception:  # as concurrent.futures: a failing callback must not break the others
        log.exception("exception calling callback for %r", future)


class RecordFuture:
    """The future ``Producer.send`` returns; resolves to ``RecordMetadata`` or raises a ``KBrokerError``."""

    __slots__ = ("_batch", "_index", "_timestamp_ms")

    def __init__(self, batch: ProducerBatch, index: int, timestamp_ms: int) -> None:
        self._batch = batch
        self._index = index
        self._timestamp_ms = timestamp_ms

    def __repr__(self) -> str:
        batch = self._batch
        if not batch.done:
            status = "pending"
        elif batch.error is not None:
            status = f"failed: {type(batch.error).__name__}"
        else:
            status = "done"
        return f"<RecordFuture {batch.tp}#{self._index} {status}>"

    def done(self) -> bool:
        return self._batch.done

    def cancelled(self) -> bool:
        return False

    def running(self) -> bool:
        return not self._batch.done

    def cancel(self) -> bool:
        """A record handed to the producer cannot be taken back: always False, as in Kafka."""
        return False

    def result(self, timeout: float | None = None) -> RecordMetadata:
        batch = self._batch
        if not batch.wait(timeout):
            raise concurrent.futures.TimeoutError(
                f"record for {batch.tp} not acknowledged within {timeout}s (it may still be delivered)"
            )
        if batch.error is not None:
            raise batch.error
        return self._metadata()

    def exception(self, timeout: float | None = None) -> BaseException | None:
        batch = self._batch
        if not batch.wait(timeout):
            raise concurrent.futures.TimeoutError(f"record for {batch.tp} not acknowledged within {timeout}s")
        return batch.error

    def add_done_callback(self, fn: Callable[[RecordFuture], object]) -> None:
        """Call ``fn(future)`` once the record is acknowledged or failed (now, if it already is).

        Callbacks run on the producer's I/O thread: keep them short and never block in them.
        """
        self._batch.add_callback(self, fn)

    def as_concurrent_future(self) -> concurrent.futures.Future:
        """A real ``concurrent.futures.Future`` that follows this one (for ``wait``/``asyncio``)."""
        real: concurrent.futures.Future = concurrent.futures.Future()
        real.set_running_or_notify_cancel()

        def copy(done: RecordFuture) -> None:
            error = done._batch.error
            if error is not None:
                real.set_exception(error)
            else:
                real.set_result(done._metadata())

        self.add_done_callback(copy)
        return real

    def _metadata(self) -> RecordMetadata:
        batch = self._batch
        tp = batch.tp
        offset = batch.base_offset + self._index if batch.base_offset >= 0 else -1
        ts = batch.log_append_time_ms if batch.log_append_time_ms >= 0 else self._timestamp_ms
        return RecordMetadata(tp.topic, tp.partition, offset, ts)


class SendManyFuture:
    """The future ``Producer.send_many`` returns: one for all its records (no future per record).

    Done when every batch holding them is acknowledged or failed; ``result`` returns the number of
    records, or raises the first batch's error (records in other batches may have been written,
    as with failed ``send`` futures). Offsets are not reported: use ``send`` for those.
    """

    __slots__ = ("_batches", "count")

    def __init__(self, batches: list[ProducerBatch], count: int) -> None:
        self._batches = batches
        self.count = count

    def __repr__(self) -> str:
        return f"<SendManyFuture {self.count} records in {len(self._batches)} batches, {'done' if self.done() else 'pending'}>"

    def done(self) -> bool:
        return all(b.done for b in self._batches)

    def _wait(self, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        for batch in self._batches:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not batch.wait(left):
                raise concurrent.futures.TimeoutError(f"{self.count} records not all acknowledged within {timeout}s (they may still be)")

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._wait(timeout)
        return next((b.error for b in self._batches if b.error is not None), None)

    def result(self, timeout: float | None = None) -> int:
        error = self.exception(timeout)
        if error is not None:
            raise error
        return self.count
