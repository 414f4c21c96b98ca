"""Internal messages between the supervisor, the controller and the workers' actors.

Not part of the client contract (they may change between versions; clients never send them).

Controller -> workers: ``LeaderAndIsr`` (become leader / follower for these partitions, with the
leader epoch) and ``UpdateMetadata`` (the metadata cache every gateway answers clients from).
Both carry ``TopicState``s; a worker leads a partition when ``leader_id`` is its own id.

Worker -> controller: ``RegisterWorker`` once per process start, ``WorkerHeartbeat``
periodically, ``AlterIsr`` when a leader shrinks or expands its ISR.

Leader <-> follower (one partition each, addressed to the replica actor):
``ReplicaAppend`` pushes freshly appended batches with the leader's high watermark and is
acknowledged with ``ReplicaAppendAck`` (the follower's log end offset); a follower that is behind
pulls with ``ReplicaFetch``; after a leader change it first asks ``OffsetForLeaderEpoch`` and
truncates to the answer (KIP-101) before fetching.
"""

from __future__ import annotations

from kbroker.transport.messages_admin import ConfigEntry
from kbroker.transport.messages_client import WorkerEndpoint
from kbroker.transport.schema import (
    ByteCount,
    DurationMs,
    Endpoint,
    Epoch,
    ErrorCode,
    FetchOffset,
    Int32,
    Int64,
    Message,
    Name,
    Offset,
    PartitionId,
    Payload,
    Text,
    WorkerId,
    message,
    struct,
)

__all__ = [
    "RegisterWorker",
    "RegisterWorkerResponse",
    "WorkerHeartbeat",
    "WorkerHeartbeatResponse",
    "PartitionState",
    "TopicState",
    "LeaderAndIsr",
    "PartitionResult",
    "LeaderAndIsrResponse",
    "UpdateMetadata",
    "UpdateMetadataResponse",
    "AlterIsr",
    "AlterIsrResponse",
    "AlterReplicaStatus",
    "AlterReplicaStatusResponse",
    "InjectFault",
    "InjectFaultResponse",
    "ReplicaAppend",
    "ReplicaAppendAck",
    "ReplicaFetch",
    "ReplicaFetchResponse",
    "OffsetForLeaderEpoch",
    "OffsetForLeaderEpochResponse",
    "ReplicaKey",
    "DescribeReplicas",
    "ReplicaDescription",
    "DescribeReplicasResponse",
]


# --- Worker lifecycle -----------------------------------------------------------------------


@message
class RegisterWorker(Message):
    worker_id: WorkerId
    endpoint: Endpoint  # the worker's ROUTER, as reported by its I/O thread
    pid: Int32
    incarnation: Int64  # differs on every process start (e.g. start time in ns)


@message
class RegisterWorkerResponse(Message):
    error_code: ErrorCode
    error_message: Text | None
    controller_epoch: Epoch


@message
class WorkerHeartbeat(Message):
    worker_id: WorkerId
    incarnation: Int64
    metadata_version: Int64  # the last UpdateMetadata version the worker applied


@message
class WorkerHeartbeatResponse(Message):
    error_code: ErrorCode
    error_message: Text | None
    metadata_version: Int64  # the controller's current version; resend metadata when behind


# --- Partition state pushed by the controller -----------------------------------------------


@struct
class PartitionState:
    partition: PartitionId
    leader_id: WorkerId
    leader_epoch: Epoch
    partition_epoch: Epoch  # bumped on every leader or ISR change; AlterIsr must quote it
    replicas: tuple[WorkerId, ...]
    isr: tuple[WorkerId, ...]


@struct
class TopicState:
    name: Name
    configs: tuple[ConfigEntry, ...]  # the topic's overrides (text values)
    partitions: tuple[PartitionState, ...]


@message
class LeaderAndIsr(Message):
    controller_id: WorkerId
    controller_epoch: Epoch
    workers: tuple[WorkerEndpoint, ...]  # endpoints of the leaders named below
    topics: tuple[TopicState, ...]  # only the partitions with a replica on the receiving worker


@struct
class PartitionResult:
    topic: Name
    partition: PartitionId
    error_code: ErrorCode
    error_message: Text | None


@message
class LeaderAndIsrResponse(Message):
    error_code: ErrorCode
    partitions: tuple[PartitionResult, ...]


@message
class UpdateMetadata(Message):
    controller_id: WorkerId
    controller_epoch: Epoch
    metadata_version: Int64  # strictly increasing; a worker ignores older versions
    full: bool  # True: replaces the whole cache; False: topics below replace same-named entries
    workers: tuple[WorkerEndpoint, ...]
    topics: tuple[TopicState, ...]
    deleted_topics: tuple[Name, ...]


@message
class UpdateMetadataResponse(Message):
    error_code: ErrorCode


# --- ISR changes (leader -> controller) -----------------------------------------------------


@message
class AlterIsr(Message):
    worker_id: WorkerId  # the leader asking
    topic: Name
    partition: PartitionId
    leader_epoch: Epoch
    partition_epoch: Epoch  # the version the new ISR is based on
    new_isr: tuple[WorkerId, ...]


@message
class AlterIsrResponse(Message):
    error_code: ErrorCode
    error_message: Text | None
    topic: Name
    partition: PartitionId
    state: PartitionState | None  # the partition as the controller now has it (None on error)


# --- Replica storage status (worker -> controller) ------------------------------------------


@message
class AlterReplicaStatus(Message):
    """A worker's replica lost its storage (an I/O error, a full disk) or has it back (Kafka: offline
    log dirs, KIP-112). Offline: the controller takes it out of the ISR and moves leadership away."""

    worker_id: WorkerId
    incarnation: Int64
    topic: Name
    partition: PartitionId
    offline: bool
    reason: Text | None  # what failed (an errno text), for the controller's log


@message
class AlterReplicaStatusResponse(Message):
    error_code: ErrorCode
    error_message: Text | None


# --- Fault injection (tests, to a worker started with --fault-injection) ---------------------


@message
class InjectFault(Message):
    """Arm (``times`` > 0, or -1 for until cleared) or clear (``times`` 0) a named storage fault
    point in one worker (storage/faults.py): it raises OSError(``errno``) where it is reached.
    Refused unless the broker was started with ``--fault-injection`` (a test-only switch)."""

    point: Name
    errno: Int32
    times: Int32


@message
class InjectFaultResponse(Message):
    error_code: ErrorCode
    error_message: Text | None


# --- Replication (leader <-> follower) ------------------------------------------------------


@message
class ReplicaAppend(Message):
    topic: Name
    partition: PartitionId
    leader_id: WorkerId
    leader_epoch: Epoch
    base_offset: FetchOffset  # offset of the first batch; must equal the follower's log end offset
    batches: tuple[Payload, ...]  # whole batches as the leader stored them (offsets assigned)
    high_watermark: Offset
    log_start_offset: Offset


@message
class ReplicaAppendAck(Message):
    topic: Name
    partition: PartitionId
    follower_id: WorkerId
    leader_epoch: Epoch  # the epoch of the append being acknowledged
    error_code: ErrorCode  # e.g. FencedLeaderEpoch, OffsetOutOfRange (gap: fetch to catch up)
    log_end_offset: Offset


@message
class ReplicaFetch(Message):
    topic: Name
    partition: PartitionId
    follower_id: WorkerId
    current_leader_epoch: Epoch
    fetch_offset: FetchOffset
    max_bytes: ByteCount
    max_wait_ms: DurationMs


@message
class ReplicaFetchResponse(Message):
    topic: Name
    partition: PartitionId
    error_code: ErrorCode
    leader_epoch: Epoch
    high_watermark: Offset
    log_start_offset: Offset
    log_end_offset: Offset
    records: Payload | None  # whole batches from fetch_offset; None on error


@message
class OffsetForLeaderEpoch(Message):
    topic: Name
    partition: PartitionId
    follower_id: WorkerId
    current_leader_epoch: Epoch  # the follower's view of the leader's epoch (fencing)
    leader_epoch: Epoch  # the latest epoch in the follower's own log


@message
class OffsetForLeaderEpochResponse(Message):
    topic: Name
    partition: PartitionId
    error_code: ErrorCode
    leader_epoch: Epoch  # the largest epoch <= the one asked for that the leader knows
    end_offset: Offset  # where that epoch ends in the leader's log: truncate to min(this, own LEO)


# --- Replica state queries (controller -> worker) -------------------------------------------


@struct
class ReplicaKey:
    topic: Name
    partition: PartitionId


@message
class DescribeReplicas(Message):
    """Asked by the controller of a worker's replica manager, e.g. to answer DescribeTopics."""

    partitions: tuple[ReplicaKey, ...]  # empty: every replica the worker holds


@struct
class ReplicaDescription:
    topic: Name
    partition: PartitionId
    error_code: ErrorCode
    is_leader: bool
    leader_epoch: Epoch
    log_start_offset: Offset
    high_watermark: Offset
    log_end_offset: Offset
    size_bytes: Int64


@message
class DescribeReplicasResponse(Message):
    worker_id: WorkerId
    replicas: tuple[ReplicaDescription, ...]
