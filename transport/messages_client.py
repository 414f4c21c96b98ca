"""Client-facing messages: what Producer, Consumer, Admin (and clients in other languages) send.

Names follow Kafka's protocol (Produce, Fetch, ListOffsets, Metadata, CreateTopics, ...) with
the same field names where a field has a Kafka counterpart. Every request is answered by its
``...Response`` or, when the whole request fails, by an ``ErrorResponse``; per-partition
failures travel as ``error_code`` / ``error_message`` inside the response, as in Kafka.

Record batches are ``Payload`` fields: raw frames on the wire (see storage/batch.py for their
layout), ``memoryview``s over the received frame in memory. docs/protocol.md is the reference.
"""

from __future__ import annotations

from typing import Annotated

from kbroker.transport.schema import (
    INT64_MAX,
    Acks,
    ByteCount,
    DurationMs,
    Endpoint,
    Epoch,
    ErrorCode,
    FetchOffset,
    Int32,
    IsolationLevel,
    Message,
    Name,
    Offset,
    PartitionId,
    Payload,
    ProducerEpoch,
    ProducerId,
    Range,
    Text,
    TimestampMs,
    WorkerId,
    message,
    struct,
)

__all__ = [
    "LATEST_TIMESTAMP",
    "EARLIEST_TIMESTAMP",
    "READ_UNCOMMITTED",
    "READ_COMMITTED",
    "ErrorResponse",
    "WorkerEndpoint",
    "Metadata",
    "PartitionMetadata",
    "TopicMetadata",
    "MetadataResponse",
    "ProducePartition",
    "ProduceTopic",
    "Produce",
    "ProducePartitionResponse",
    "ProduceTopicResponse",
    "ProduceResponse",
    "FetchPartition",
    "FetchTopic",
    "Fetch",
    "FetchPartitionResponse",
    "FetchTopicResponse",
    "FetchResponse",
    "ListOffsetsPartition",
    "ListOffsetsTopic",
    "ListOffsets",
    "ListOffsetsPartitionResponse",
    "ListOffsetsTopicResponse",
    "ListOffsetsResponse",
    "InitProducerId",
    "InitProducerIdResponse",
]

LATEST_TIMESTAMP = -1
"""ListOffsets timestamp asking for the log end offset (the high watermark for consumers)."""
EARLIEST_TIMESTAMP = -2
"""ListOffsets timestamp asking for the log start offset."""
READ_UNCOMMITTED = 0
READ_COMMITTED = 1

ListOffsetsTimestamp = Annotated[int, Range(-2, INT64_MAX)]


@message
class ErrorResponse(Message):
    """The whole request failed (malformed, unknown actor, unexpected error): a code from kbroker.errors."""

    code: ErrorCode
    message: Text


# --- Metadata -------------------------------------------------------------------------------


@struct
class WorkerEndpoint:
    worker_id: WorkerId
    endpoint: Endpoint  # where clients connect to this worker, e.g. "tcp://10.0.0.5:7093"


@message
class Metadata(Message):
    topics: tuple[Name, ...] | None  # None: every topic
    allow_auto_topic_creation: bool


@struct
class PartitionMetadata:
    partition: PartitionId
    error_code: ErrorCode
    leader_id: WorkerId  # -1: no leader right now (election in progress)
    leader_epoch: Epoch
    replicas: tuple[WorkerId, ...]
    isr: tuple[WorkerId, ...]


@struct
class TopicMetadata:
    name: Name
    error_code: ErrorCode
    error_message: Text | None
    partitions: tuple[PartitionMetadata, ...]


@message
class MetadataResponse(Message):
    workers: tuple[WorkerEndpoint, ...]  # every live worker, so leader ids resolve to endpoints
    controller_id: WorkerId
    topics: tuple[TopicMetadata, ...]


# --- Produce --------------------------------------------------------------------------------


@struct
class ProducePartition:
    partition: PartitionId
    records: Payload  # one record batch; producer id, epoch and base sequence are in its header


@struct
class ProduceTopic:
    name: Name
    partitions: tuple[ProducePartition, ...]


@message
class Produce(Message):
    client_id: Name
    acks: Acks  # 0: no response is sent at all; 1: leader wrote it; -1: every in-sync replica has it
    timeout_ms: DurationMs
    topics: tuple[ProduceTopic, ...]


@struct
class ProducePartitionResponse:
    partition: PartitionId
    error_code: ErrorCode
    error_message: Text | None
    base_offset: Offset  # offset given to the batch's first record; -1 on error
    log_append_time_ms: TimestampMs  # broker time for LogAppendTime topics, else -1
    log_start_offset: Offset
    leader_id: WorkerId  # with NotLeader: the current leader, if known (else -1)
    leader_epoch: Epoch


@struct
class ProduceTopicResponse:
    name: Name
    partitions: tuple[ProducePartitionResponse, ...]


@message
class ProduceResponse(Message):
    topics: tuple[ProduceTopicResponse, ...]
    throttle_time_ms: DurationMs


# --- Fetch ----------------------------------------------------------------------------------


@struct
class FetchPartition:
    partition: PartitionId
    fetch_offset: FetchOffset
    partition_max_bytes: ByteCount
    current_leader_epoch: Epoch  # -1: do not check; else fenced if it differs from the leader's


@struct
class FetchTopic:
    name: Name
    partitions: tuple[FetchPartition, ...]


@message
class Fetch(Message):
    client_id: Name
    max_wait_ms: DurationMs  # long poll: wait up to this long for min_bytes to arrive
    min_bytes: ByteCount
    max_bytes: ByteCount  # over the whole response; the first batch is returned even if larger
    isolation_level: IsolationLevel
    topics: tuple[FetchTopic, ...]


@struct
class FetchPartitionResponse:
    partition: PartitionId
    error_code: ErrorCode
    error_message: Text | None
    high_watermark: Offset
    last_stable_offset: Offset
    log_start_offset: Offset
    leader_id: WorkerId  # with NotLeader / FencedLeaderEpoch: the current leader, if known
    leader_epoch: Epoch
    records: Payload | None  # whole batches; the last may be cut short by max_bytes; None on error


@struct
class FetchTopicResponse:
    name: Name
    partitions: tuple[FetchPartitionResponse, ...]


@message
class FetchResponse(Message):
    error_code: ErrorCode
    throttle_time_ms: DurationMs
    topics: tuple[FetchTopicResponse, ...]


# --- ListOffsets ----------------------------------------------------------------------------


@struct
class ListOffsetsPartition:
    partition: PartitionId
    timestamp: ListOffsetsTimestamp  # -1 latest, -2 earliest, else the first offset at/after this time
    current_leader_epoch: Epoch


@struct
class ListOffsetsTopic:
    name: Name
    partitions: tuple[ListOffsetsPartition, ...]


@message
class ListOffsets(Message):
    isolation_level: IsolationLevel
    topics: tuple[ListOffsetsTopic, ...]


@struct
class ListOffsetsPartitionResponse:
    partition: PartitionId
    error_code: ErrorCode
    error_message: Text | None
    timestamp: TimestampMs  # the found record's timestamp; -1 for latest/earliest or none found
    offset: Offset  # -1 when no record has a timestamp at or after the one asked for
    leader_epoch: Epoch


@struct
class ListOffsetsTopicResponse:
    name: Name
    partitions: tuple[ListOffsetsPartitionResponse, ...]


@message
class ListOffsetsResponse(Message):
    topics: tuple[ListOffsetsTopicResponse, ...]


# --- Idempotent producer --------------------------------------------------------------------


@message
class InitProducerId(Message):
    transactional_id: Name | None  # always None for now (no transactions)
    transaction_timeout_ms: Int32
    producer_id: ProducerId  # -1 for a new producer; else the id to bump the epoch of
    producer_epoch: ProducerEpoch


@message
class InitProducerIdResponse(Message):
    error_code: ErrorCode
    error_message: Text | None
    producer_id: ProducerId
    producer_epoch: ProducerEpoch

