"""The log as the replication layer writes it: a storage ``Log`` (or ``MemoryLog``) plus the producer
table derived from its batch headers.

    ReplicaLog
        log         the storage log (segments, indexes, epoch history, high watermark)
        producers   ProducerStateTable, valid for the log below producers.end_offset

Every write of a replica goes through here, so the two never disagree: leader appends check the
producer table first (duplicates are answered, not written), replicated appends and truncations
keep it up to date or reset it, and ``sync_producers`` replays the headers it is missing.

Invariants:
- ``producers.end_offset <= log.log_end_offset`` after every call; when it is below, the table is
  stale and ``sync_producers`` replays headers from there (never decoding records).
- Bytes handed out for replication (``read_back``) are the stored, patched batches, copied out of
  the log: nothing keeps a reference to a request's buffer after the append.
Not thread-safe: owned by one replica.
"""

from __future__ import annotations

from typing import NamedTuple, Union

from kbroker.actors.producer_state import BatchMeta, ProducerStateTable
from kbroker.actors.replica_outbox import MaintenanceResult
from kbroker.storage.batch import BatchHeader, iter_batches
from kbroker.storage.log import AppendResult, Log, ReadResult
from kbroker.storage.memory_log import MemoryLog

__all__ = ["ReplicaLog", "LeaderAppend", "AnyLog"]

AnyLog = Union[Log, MemoryLog]


class LeaderAppend(NamedTuple):
    """What a leader append did: ``result`` when written, ``duplicate`` when it was a retry."""

    result: AppendResult | None
    duplicate: BatchMeta | None
    previous_end: int  # the log end offset before the append


class ReplicaLog:
    def __init__(self, log: AnyLog) -> None:
        self.log = log
        self.producers = ProducerStateTable(log.log_start_offset)

    # ------------------------------------------------------------------ views
    @property
    def log_end_offset(self) -> int:
        return self.log.log_end_offset

    @property
    def log_start_offset(self) -> int:
        return self.log.log_start_offset

    @property
    def high_watermark(self) -> int:
        return self.log.high_watermark

    @property
    def latest_epoch(self) -> int:
        return self.log.latest_epoch

    def update_high_watermark(self, offset: int) -> int:
        return self.log.update_high_watermark(offset)

    def end_offset_for(self, epoch: int) -> tuple[int, int]:
        """``(epoch, end offset)`` as OffsetForLeaderEpoch answers it (-1, -1 when unknown)."""
        return self.log.epochs.end_offset_for(epoch, self.log.log_end_offset)

    def epoch_start_offset(self, epoch: int) -> int | None:
        return self.log.epochs.start_offset_of(epoch)

    def begin_epoch(self, leader_epoch: int) -> None:
        """A new leader records that its epoch starts at its log end (as Kafka does on election), so
        OffsetForLeaderEpoch for an older epoch ends there even before the first append."""
        if leader_epoch > self.log.latest_epoch:
            self.log.epochs.assign(leader_epoch, self.log.log_end_offset)

    def drop_empty_epochs(self) -> None:
        """Forget epochs that start at the log end (one this replica led without appending): a
        follower asks the new leader about the epoch of its last data, not of an empty leadership."""
        self.log.epochs.truncate_from_end(self.log.log_end_offset)

    # ------------------------------------------------------------------ producer state
    def sync_producers(self) -> None:
        """Bring the producer table up to the log end (replaying headers from where it stopped)."""
        table, log = self.producers, self.log
        end = log.log_end_offset
        if table.end_offset > end or table.end_offset < log.log_start_offset:
            table.reset(log.log_start_offset)
        if table.end_offset < end:
            table.replay(log.iter_batch_headers(table.end_offset), end)

    # ------------------------------------------------------------------ writes
    def append_as_leader(self, data: bytes | bytearray | memoryview, leader_epoch: int, now_ms: int) -> LeaderAppend:
        """Check idempotent producers, then append (offsets and epoch assigned by the log)."""
        previous_end = self.log.log_end_offset
        headers = _headers(data)
        idempotent = any(h.producer_id >= 0 for h in headers)
        if idempotent:
            self.sync_producers()
            duplicate = self.producers.check(headers)
            if duplicate is not None:
                return LeaderAppend(None, duplicate, previous_end)
        result = self.log.append(data, leader_epoch=leader_epoch, now_ms=now_ms)
        if self.producers.end_offset == previous_end:
            if idempotent:
                self.producers.record_append(headers, result.first_offset, result.log_append_time)
            self.producers.end_offset = self.log.log_end_offset
        return LeaderAppend(result, None, previous_end)

    def append_replicated(self, data: bytes | bytearray | memoryview, now_ms: int) -> AppendResult:
        """Append batches copied from the leader as they are; note their producers."""
        previous_end = self.log.log_end_offset
        result = self.log.append_replicated(data, now_ms=now_ms)
        if self.producers.end_offset == previous_end and result.records:
            self.producers.replay(_headers(data), self.log.log_end_offset)
        return result

    def truncate_to(self, offset: int) -> int:
        end = self.log.truncate_to(offset)
        if self.producers.end_offset > end:
            self.producers.reset(self.log.log_start_offset)
        return end

    def truncate_fully_and_start_at(self, offset: int, now_ms: int) -> None:
        self.log.truncate_fully_and_start_at(offset, now_ms)
        self.producers.reset(offset)

    def maintain(self, now_ms: int, producer_expiration_ms: int) -> MaintenanceResult:
        """Retention and compaction (the storage keeps both below the high watermark), flush.ms, the
        checkpoint (high watermark; Kafka writes it every 5 s), and expiry of silent producers."""
        log = self.log
        deleted = log.enforce_retention(now_ms)
        cleaned = log.clean(now_ms)
        flushed = log.maybe_flush(now_ms)
        log.write_checkpoint()
        expired = self.producers.expire(now_ms, producer_expiration_ms)
        return MaintenanceResult(deleted, cleaned, flushed, expired)

    # ------------------------------------------------------------------ reads
    def read(self, offset: int, max_bytes: int, max_offset: int | None = None) -> ReadResult:
        return self.log.read(offset, max_bytes, max_offset)

    def read_back(self, first_offset: int, next_offset: int, size: int) -> bytes:
        """The stored bytes of the batches in [first_offset, next_offset) (what was just appended)."""
        parts: list[bytes] = []
        offset = first_offset
        while offset < next_offset:
            chunk = self.log.read(offset, max(size, 1), next_offset)
            if not chunk.data:
                break
            parts.append(chunk.data)
            offset = chunk.next_offset
        return parts[0] if len(parts) == 1 else b"".join(parts)


def _headers(data: bytes | bytearray | memoryview) -> list[BatchHeader]:
    """Batch headers of ``data`` (structure checked; the CRC is left to the log, which checks it)."""
    return [header for _, header in iter_batches(data, check_crc=False)]
