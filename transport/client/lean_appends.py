"""The producer's lean append paths, kept apart from the accumulator's general rules.

    Producer.send (keyless bytes, no headers/timestamp) ──▶ append_to_sticky ──▶ the sticky
    Producer.send_many (keyless, in bulk) ──────────────▶ append_many      partition's open batch
    anything they cannot place ──────────────────────────▶ Accumulator.send (the general path)

Both only ever add records to an OPEN batch that has room, under the accumulator's lock, exactly
as ``Accumulator.append`` would (same record tuples, sizes, timestamps, wake-ups); opening
batches, moving the sticky partition, waiting for memory and validating input stay in the general
path. A mixin of ``Accumulator``: it uses that class's state (``_lock``, ``_topics``, ``_sticky``,
the size limits) and is not used alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from kbroker.transport.client.producer_batch import ProducerBatch, RecordFuture
from kbroker.transport.client.record_input import RECORD_OVERHEAD

__all__ = ["LeanAppends", "NO_HEADERS"]

_MANY_CHUNK = 1024  # records appended per lock hold by append_many (the sender waits at most this long)
NO_HEADERS: tuple = ()  # packs as an empty msgpack array, as BatchBuilder's []


class LeanAppends:
    if TYPE_CHECKING:
        _sticky: dict[str, int] | None
        _lock: Any
        _topics: dict[str, dict[int, Any]]
        _batch_bytes: int
        _buffered: int
        _admit_limit: int
        _max_record_size: int
        _full_at: int

        def _wall_ns(self) -> int: ...
        def _wakeup(self) -> object: ...
        def send(self, topic: str, value: object, *args: Any, **kwargs: Any) -> RecordFuture: ...

    def append_to_sticky(self, topic: str, value: object, num_partitions: int) -> RecordFuture | None:
        """The common case, kept lean: a keyless ``bytes`` value without headers or timestamp into
        the topic's sticky partition's open batch, if it fits; None: use ``send`` (it opens batches,
        moves the sticky partition, waits for memory). ~20% less time per record than ``send``."""
        sticky = self._sticky
        if sticky is None or value.__class__ is not bytes:
            return None
        partition = sticky.get(topic)
        if partition is None or partition >= num_partitions:
            return None
        size = RECORD_OVERHEAD + len(value)  # type: ignore[arg-type]
        if size > self._max_record_size:
            return None
        timestamp_ms = self._wall_ns() // 1_000_000
        lock = self._lock
        lock.acquire()
        try:
            queues = self._topics.get(topic)
            batch = queues[partition].open if queues is not None and partition in queues else None
            if batch is None or batch.size + size > self._batch_bytes or self._buffered + size > self._admit_limit:
                return None
            records = batch.records
            index = len(records)  # type: ignore[arg-type]
            records.append((index, timestamp_ms - batch.first_ts, None, value, NO_HEADERS))  # type: ignore[union-attr]
            if timestamp_ms > batch.max_ts:
                batch.max_ts = timestamp_ms
            batch.size += size
            self._buffered += size
            full = batch.size > self._full_at
        finally:
            lock.release()
        if full:
            self._wakeup()
        return RecordFuture(batch, index, timestamp_ms)

    def append_many(
        self, topic: str, values: Sequence[object], num_partitions: int, available: Sequence[int] | None = None
    ) -> list[ProducerBatch]:
        """Keyless ``values`` in order, as ``send`` would place them one by one (sticky partition,
        moving on as batches fill), but filling the open batch under one lock for up to
        ``_MANY_CHUNK`` records with one timestamp: ~0.3 µs per record instead of ~1.3 (no future
        per record). Anything the fast loop cannot place (a full batch, no room in buffer_memory,
        a value to validate, no sticky partition yet) goes through ``send``. Returns the batches
        holding the records, in order of first use."""
        touched: dict[ProducerBatch, None] = {}
        sticky, n, i = self._sticky, len(values), 0
        while i < n:
            partition = sticky.get(topic) if sticky is not None else None
            if partition is not None and partition < num_partitions:
                timestamp_ms = self._wall_ns() // 1_000_000
                full = False
                with self._lock:
                    queues = self._topics.get(topic)
                    batch = queues[partition].open if queues is not None and partition in queues else None
                    if batch is not None:
                        records = batch.records
                        index = len(records)  # type: ignore[arg-type]
                        size, buffered, delta, start = batch.size, self._buffered, timestamp_ms - batch.first_ts, i
                        room, admit, largest = self._batch_bytes, self._admit_limit, self._max_record_size
                        stop = min(n, i + _MANY_CHUNK)
                        while i < stop:
                            value = values[i]
                            if value.__class__ is not bytes:
                                break
                            record_size = RECORD_OVERHEAD + len(value)  # type: ignore[arg-type]
                            if size + record_size > room or buffered + record_size > admit or record_size > largest:
                                break
                            records.append((index, delta, None, value, NO_HEADERS))  # type: ignore[union-attr]
                            index += 1
                            size += record_size
                            buffered += record_size
                            i += 1
                        if i > start:
                            batch.size, self._buffered = size, buffered
                            if timestamp_ms > batch.max_ts:
                                batch.max_ts = timestamp_ms
                            touched[batch] = None
                            full = size > self._full_at
                if full:
                    self._wakeup()
                if batch is not None and i > start and i < n and (i - start) == _MANY_CHUNK:
                    continue  # the chunk ended, not the batch: take the lock again
            if i < n:
                future = self.send(topic, values[i], num_partitions=num_partitions, available=available)
                touched[future._batch] = None
                i += 1
        return list(touched)
