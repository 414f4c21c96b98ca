"""What the replica core hands back to its actor shell, as data: messages to send and results.

    Outbox
        to_replicas       [Send(worker id, message)]  ReplicaAppend, ReplicaAppendAck, ReplicaFetch,
                                                      ReplicaFetchResponse, OffsetForLeaderEpoch(Response),
                                                      each to the PartitionReplica actor of the same
                                                      topic-partition on that worker (a tell)
        to_controller     [AlterIsr]
        produce_results   [ProduceResult]   produce requests that completed (acks=0 ones too: the shell
                                            sends nothing for those, but may count errors)
        fetch_results     [FetchResult]     consumer fetches that completed (now or after waiting)

Also here: ``ReplicaSettings`` (broker-level replication settings, Kafka's names and defaults)
and ``Ident`` (which replica this is). All values are immutable except the Outbox being filled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from kbroker.errors import KBrokerError
from kbroker.transport.messages_client import FetchPartitionResponse, ProducePartitionResponse
from kbroker.transport.messages_internal import AlterIsr
from kbroker.transport.schema import Message

__all__ = [
    "Ident",
    "ReplicaSettings",
    "Send",
    "ProduceResult",
    "FetchResult",
    "ListOffsetsResult",
    "MaintenanceResult",
    "Outbox",
]


class Ident(NamedTuple):
    topic: str
    partition: int
    local_id: int  # the worker this replica lives on


@dataclass(frozen=True, slots=True)
class ReplicaSettings:
    """Broker settings of replication (Kafka's names, Kafka's defaults unless said otherwise)."""

    replica_lag_time_max_ms: int = 30_000  # replica.lag.time.max.ms: ISR shrink after this long behind
    replica_fetch_wait_max_ms: int = 500  # replica.fetch.wait.max.ms: a follower's long poll
    replica_fetch_max_bytes: int = 1 << 20  # replica.fetch.max.bytes
    request_timeout_ms: int = 5_000  # a follower request unanswered this long (past its wait) is re-sent
    retry_backoff_ms: int = 100  # after an error answer, before asking again
    alter_isr_timeout_ms: int = 5_000  # an unanswered AlterIsr is re-sent after this long
    max_unacked_push_bytes: int = 8 << 20  # stop pushing to a follower with this much unacknowledged
    push_timeout_ms: int = 500  # pushes unacknowledged this long are sent again through the fetch path
    producer_id_expiration_ms: int = 86_400_000  # producer.id.expiration.ms


class Send(NamedTuple):
    to: int  # worker id of the destination replica
    message: Message


def _code(error: KBrokerError | None) -> int:
    return 0 if error is None else error.code


def _text(error: KBrokerError | None) -> str | None:
    return None if error is None else error.message


@dataclass(frozen=True, slots=True)
class ProduceResult:
    request_id: object
    acks: int
    base_offset: int = -1
    last_offset: int = -1
    log_append_time_ms: int = -1
    log_start_offset: int = -1
    error: KBrokerError | None = None
    duplicate: bool = False  # a retried batch answered with its original offsets, nothing written

    @property
    def error_code(self) -> int:
        return _code(self.error)

    def to_response(self, partition: int, leader_id: int, leader_epoch: int) -> ProducePartitionResponse:
        return ProducePartitionResponse(
            partition, self.error_code, _text(self.error), self.base_offset, self.log_append_time_ms,
            self.log_start_offset, leader_id, leader_epoch,
        )


@dataclass(frozen=True, slots=True)
class FetchResult:
    request_id: object
    records: bytes = b""
    next_offset: int = -1
    high_watermark: int = -1
    log_start_offset: int = -1
    error: KBrokerError | None = None

    @property
    def error_code(self) -> int:
        return _code(self.error)

    def to_response(self, partition: int, leader_id: int, leader_epoch: int) -> FetchPartitionResponse:
        records = None if self.error is not None else self.records
        return FetchPartitionResponse(
            partition, self.error_code, _text(self.error), self.high_watermark, self.high_watermark,
            self.log_start_offset, leader_id, leader_epoch, records,
        )


@dataclass(frozen=True, slots=True)
class ListOffsetsResult:
    offset: int = -1
    timestamp: int = -1
    leader_epoch: int = -1
    error: KBrokerError | None = None

    @property
    def error_code(self) -> int:
        return _code(self.error)


@dataclass(frozen=True, slots=True)
class MaintenanceResult:
    segments_deleted: int = 0
    cleaned: object | None = None  # storage.cleaner.CleanResult when the cleaner ran
    flushed: bool = False
    producers_expired: int = 0


@dataclass(slots=True)
class Outbox:
    to_replicas: list[Send] = field(default_factory=list)
    to_controller: list[AlterIsr] = field(default_factory=list)
    produce_results: list[ProduceResult] = field(default_factory=list)
    fetch_results: list[FetchResult] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.to_replicas or self.to_controller or self.produce_results or self.fetch_results)

    def extend(self, other: "Outbox") -> None:
        self.to_replicas.extend(other.to_replicas)
        self.to_controller.extend(other.to_controller)
        self.produce_results.extend(other.produce_results)
        self.fetch_results.extend(other.fetch_results)
