"""Idempotent producer state of one partition: per producer id, its epoch and its last batches.

    ProducerStateTable
        end_offset: the table reflects every batch of the log below this offset
        producer id -> ProducerEntry
            epoch
            batches: up to 5 BatchMeta(first_seq, last_seq, first_offset, last_offset, log_append_time)
            last_timestamp (for expiry)

Rules when a leader appends (Kafka's ProducerStateManager, without transactions):
- a batch without a producer id (-1) is not checked;
- an epoch older than the known one -> ``InvalidProducerEpochError`` (a newer instance fenced it);
- same epoch: a batch whose (first, last) sequences equal one of the last 5 batches is a duplicate:
  it is not written and the caller answers with the original offsets (Kafka's DuplicateSequence,
  which clients treat as success); otherwise the base sequence must follow the last one (wrapping
  from 2**31-1 to 0), else ``OutOfOrderSequenceError``;
- a newer epoch of a known producer must start at sequence 0;
- an unknown producer may start at any sequence (its batches may have gone with retention or its
  entry expired; Kafka accepts these too).

Where the state comes from: batch headers only (producer id, epoch, base sequence, offsets), never
records. Leaders and followers both record every batch they append, so becoming leader costs
nothing; otherwise (a restart, or a truncation below ``end_offset``) the table is replayed from the
log's headers, from ``end_offset`` -- the in-memory table is the snapshot point -- or from the log
start after a reset. Choice: no snapshot file. A restart walks every batch header of the log once
(61 bytes per batch, no records decoded); a ``.snapshot`` file written at the recovery point is
where to add one if restarts of long logs get slow.

Invariants:
- At most ``MAX_BATCHES`` (5, as Kafka) batches per producer, in offset order.
- ``check`` changes nothing; only ``record`` / ``replay`` / ``reset`` / ``expire`` change state.
Not thread-safe: owned by one replica.
"""

from __future__ import annotations

from collections import deque
from typing import Iterable, NamedTuple, Sequence

from kbroker.actors.replica_errors import InvalidProducerEpochError
from kbroker.errors import InvalidRecordError, InvalidRequestError, OutOfOrderSequenceError
from kbroker.storage.batch import BatchHeader

__all__ = ["BatchMeta", "ProducerEntry", "ProducerStateTable", "MAX_BATCHES", "next_sequence"]

MAX_BATCHES = 5
_SEQ_MASK = 0x7FFFFFFF


def next_sequence(sequence: int) -> int:
    """The sequence after ``sequence`` (wraps from 2**31-1 to 0, as Kafka's)."""
    return (sequence + 1) & _SEQ_MASK


class BatchMeta(NamedTuple):
    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int
    log_append_time: int  # -1 unless the topic uses LogAppendTime


class ProducerEntry:
    __slots__ = ("epoch", "batches", "last_timestamp")

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.batches: deque[BatchMeta] = deque(maxlen=MAX_BATCHES)
        self.last_timestamp = -1

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else -1

    def find_duplicate(self, first_seq: int, last_seq: int) -> BatchMeta | None:
        for meta in self.batches:
            if meta.first_seq == first_seq and meta.last_seq == last_seq:
                return meta
        return None


class ProducerStateTable:
    """Producer id -> ``ProducerEntry`` for one partition (see module docstring)."""

    def __init__(self, start_offset: int = 0) -> None:
        self._entries: dict[int, ProducerEntry] = {}
        self.end_offset = start_offset

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, producer_id: int) -> ProducerEntry | None:
        return self._entries.get(producer_id)

    # ------------------------------------------------------------------ leader: before appending
    def check(self, headers: Sequence[BatchHeader]) -> BatchMeta | None:
        """Check the batches of one produce request in order. Returns None when they may be appended,
        the original ``BatchMeta`` when the request is one batch already written (a retry), and
        raises ``InvalidProducerEpochError`` / ``OutOfOrderSequenceError`` / ``InvalidRecordError``.
        """
        staged: dict[int, tuple[int, int]] = {}  # producer id -> (epoch, last seq) after earlier batches
        for header in headers:
            pid = header.producer_id
            if pid < 0:
                continue
            if header.base_sequence < 0:
                raise InvalidRecordError(
                    f"batch from idempotent producer {pid} has no base sequence; set one or drop the producer id"
                )
            entry = self._entries.get(pid)
            epoch, last_seq = staged.get(pid) or ((entry.epoch, entry.last_seq) if entry else (-1, -1))
            if header.producer_epoch < epoch:
                raise InvalidProducerEpochError(
                    f"producer {pid} sent epoch {header.producer_epoch}, but epoch {epoch} has written here; "
                    "this producer instance is fenced"
                )
            if entry is not None and pid not in staged and header.producer_epoch == entry.epoch:
                duplicate = entry.find_duplicate(header.base_sequence, header.last_sequence)
                if duplicate is not None:
                    if len(headers) > 1:
                        raise InvalidRequestError(
                            f"a produce request repeats an already written batch of producer {pid} among "
                            "other batches; send one batch per partition"
                        )
                    return duplicate
            if header.producer_epoch == epoch and header.base_sequence != next_sequence(last_seq):
                raise OutOfOrderSequenceError(
                    f"producer {pid} epoch {epoch}: expected sequence {next_sequence(last_seq)}, "
                    f"got {header.base_sequence}; records were lost in between"
                )
            if header.producer_epoch > epoch and epoch >= 0 and header.base_sequence != 0:
                raise OutOfOrderSequenceError(
                    f"producer {pid} started epoch {header.producer_epoch} at sequence {header.base_sequence}; "
                    "a new epoch starts at sequence 0"
                )
            staged[pid] = (header.producer_epoch, header.last_sequence)
        return None

    # ------------------------------------------------------------------ after appending, and replay
    def record(self, header: BatchHeader, log_append_time: int = -1) -> None:
        """Take note of one appended batch (``header`` with its final offsets)."""
        self._record(header, log_append_time)
        self.end_offset = max(self.end_offset, header.next_offset)

    def _record(self, header: BatchHeader, log_append_time: int) -> None:
        if header.producer_id < 0 or header.base_sequence < 0:
            return
        entry = self._entries.get(header.producer_id)
        if entry is None or header.producer_epoch > entry.epoch:
            entry = self._entries[header.producer_id] = ProducerEntry(header.producer_epoch)
        elif header.producer_epoch < entry.epoch:
            return  # a fenced epoch's batch (cannot be in a valid log): nothing to learn from it
        entry.batches.append(
            BatchMeta(header.base_sequence, header.last_sequence, header.base_offset, header.last_offset, log_append_time)
        )
        entry.last_timestamp = max(entry.last_timestamp, header.max_timestamp, log_append_time)

    def record_append(self, headers: Iterable[BatchHeader], first_offset: int, log_append_time: int = -1) -> None:
        """Take note of a leader append: ``headers`` as produced (offsets not yet assigned), laid
        out contiguously from ``first_offset`` as the log assigned them."""
        offset = first_offset
        for h in headers:
            if h.producer_id >= 0:
                self.record(
                    BatchHeader(
                        offset, h.batch_length, h.leader_epoch, h.magic, h.crc, h.attributes, h.last_offset_delta,
                        h.first_timestamp, h.max_timestamp, h.producer_id, h.producer_epoch, h.base_sequence,
                        h.records_count,
                    ),
                    log_append_time,
                )
            offset += h.last_offset_delta + 1
        self.end_offset = max(self.end_offset, offset)

    def replay(self, headers: Iterable[BatchHeader], end_offset: int) -> None:
        """Record stored batches (from ``end_offset`` on: earlier ones are already in the table)."""
        start = self.end_offset
        for header in headers:
            if header.last_offset >= start:
                self.record(header, header.max_timestamp if header.timestamp_type else -1)
        self.end_offset = max(self.end_offset, end_offset)

    def reset(self, start_offset: int) -> None:
        """Forget everything (the log was truncated below ``end_offset``); replay from ``start_offset``."""
        self._entries.clear()
        self.end_offset = start_offset

    def expire(self, now_ms: int, expiration_ms: int) -> int:
        """Drop producers silent for ``expiration_ms`` (Kafka's producer.id.expiration.ms); returns how many."""
        old = [pid for pid, entry in self._entries.items() if now_ms - entry.last_timestamp >= expiration_ms]
        for pid in old:
            del self._entries[pid]
        return len(old)
