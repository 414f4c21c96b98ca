"""Client-facing admin messages: topics and cluster, answered by the controller (bootstrap endpoint).

Configs travel as ``ConfigEntry(name, value)`` pairs with Kafka's key names and text values
(``"604800000"``, ``"compact,delete"``, ``"true"``), which is what ``TopicConfig.from_dict``
parses; in ``AlterConfigs`` a ``None`` value removes the override (back to the broker default).
"""

from __future__ import annotations

from kbroker.transport.schema import (
    DurationMs,
    Endpoint,
    Epoch,
    ErrorCode,
    Int32,
    Int64,
    Message,
    Name,
    Offset,
    PartitionCount,
    PartitionId,
    ReplicationFactor,
    Text,
    WorkerId,
    message,
    struct,
)

__all__ = [
    "ConfigEntry",
    "CreatableTopic",
    "CreateTopics",
    "CreateTopicResult",
    "CreateTopicsResponse",
    "DeleteTopics",
    "DeleteTopicResult",
    "DeleteTopicsResponse",
    "DescribeTopics",
    "PartitionDescription",
    "TopicDescription",
    "DescribeTopicsResponse",
    "AlterConfigsResource",
    "AlterConfigs",
    "AlterConfigsResult",
    "AlterConfigsResponse",
    "DescribeCluster",
    "WorkerDescription",
    "DescribeClusterResponse",
    "DescribeWorkerStats",
    "ReplicaStats",
    "DescribeWorkerStatsResponse",
]


@struct
class ConfigEntry:
    name: Name  # Kafka's key, e.g. "retention.ms"
    value: Text | None  # as text; None in AlterConfigs: remove the override


# --- CreateTopics ---------------------------------------------------------------------------


@struct
class CreatableTopic:
    name: Name
    num_partitions: PartitionCount  # -1: broker default
    replication_factor: ReplicationFactor  # -1: broker default (capped by the number of workers)
    configs: tuple[ConfigEntry, ...]


@message
class CreateTopics(Message):
    topics: tuple[CreatableTopic, ...]
    timeout_ms: DurationMs
    validate_only: bool


@struct
class CreateTopicResult:
    name: Name
    error_code: ErrorCode
    error_message: Text | None
    num_partitions: PartitionCount
    replication_factor: ReplicationFactor
    configs: tuple[ConfigEntry, ...]  # the topic's overrides as stored


@message
class CreateTopicsResponse(Message):
    topics: tuple[CreateTopicResult, ...]


# --- DeleteTopics ---------------------------------------------------------------------------


@message
class DeleteTopics(Message):
    topic_names: tuple[Name, ...]
    timeout_ms: DurationMs


@struct
class DeleteTopicResult:
    name: Name
    error_code: ErrorCode
    error_message: Text | None


@message
class DeleteTopicsResponse(Message):
    topics: tuple[DeleteTopicResult, ...]


# --- DescribeTopics -------------------------------------------------------------------------


@message
class DescribeTopics(Message):
    topic_names: tuple[Name, ...] | None  # None: every topic
    include_configs: bool


@struct
class PartitionDescription:
    partition: PartitionId
    leader_id: WorkerId
    leader_epoch: Epoch
    replicas: tuple[WorkerId, ...]
    isr: tuple[WorkerId, ...]
    log_start_offset: Offset  # -1 where the leader has not reported yet
    high_watermark: Offset
    log_end_offset: Offset


@struct
class TopicDescription:
    name: Name
    error_code: ErrorCode
    error_message: Text | None
    partitions: tuple[PartitionDescription, ...]
    configs: tuple[ConfigEntry, ...]  # every key with its effective value (empty unless asked)


@message
class DescribeTopicsResponse(Message):
    topics: tuple[TopicDescription, ...]


# --- AlterConfigs (incremental: only the named keys change) ---------------------------------


@struct
class AlterConfigsResource:
    topic: Name
    configs: tuple[ConfigEntry, ...]


@message
class AlterConfigs(Message):
    resources: tuple[AlterConfigsResource, ...]
    validate_only: bool


@struct
class AlterConfigsResult:
    topic: Name
    error_code: ErrorCode
    error_message: Text | None


@message
class AlterConfigsResponse(Message):
    resources: tuple[AlterConfigsResult, ...]


# --- DescribeCluster ------------------------------------------------------------------------


@message
class DescribeCluster(Message):
    pass


@struct
class WorkerDescription:
    worker_id: WorkerId
    endpoint: Endpoint
    pid: Int32  # -1 while the worker is not running
    alive: bool


@message
class DescribeClusterResponse(Message):
    cluster_id: Name
    controller_endpoint: Endpoint
    workers: tuple[WorkerDescription, ...]


# --- DescribeWorkerStats (to a worker's endpoint: its counters and replicas, for `kbroker top`) --


@message
class DescribeWorkerStats(Message):
    pass


@struct
class ReplicaStats:
    topic: Name
    partition: PartitionId
    error_code: ErrorCode  # the replica did not answer (its offsets are then -1)
    is_leader: bool
    leader_epoch: Epoch
    log_start_offset: Offset
    high_watermark: Offset
    log_end_offset: Offset
    size_bytes: Int64  # bytes of its segments on disk


@message
class DescribeWorkerStatsResponse(Message):
    worker_id: WorkerId
    uptime_ms: Int64  # since the worker process started serving
    produce_requests: Int64  # counters since the worker process started
    fetch_requests: Int64
    bytes_in: Int64  # record batch bytes received in Produce requests
    bytes_out: Int64  # record batch bytes sent in Fetch responses
    replicas: tuple[ReplicaStats, ...]
