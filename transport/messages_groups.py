"""Consumer-group messages: answered by the ``group-coordinator`` actor of the group's coordinator.

    client ──Metadata("__consumer_offsets")──▶ bootstrap: leader of partition group_partition(G)
    client ──ConsumerGroupHeartbeat / OffsetCommit / OffsetFetch / DescribeGroup / DeleteGroup──▶
            (that leader's endpoint, actor "group-coordinator")
    admin  ──ListGroups──▶ every worker's "group-coordinator" (each lists the groups it coordinates)

Membership follows Kafka's KIP-848: a member joins with ``member_epoch`` 0 and an empty
``member_id``, heartbeats with the id and epoch it was given, and reports the partitions it owns;
the coordinator answers with the member's whole current assignment. ``member_epoch`` -1 leaves
the group; -2 leaves a static member (``instance_id``) keeping its assignment for a rejoin.
A worker that does not coordinate the group answers ``NotCoordinator`` (16); one still loading the
group's offsets answers ``CoordinatorNotAvailable`` (15). docs/protocol.md is the reference.
"""

from __future__ import annotations

import zlib
from typing import Annotated

from kbroker.transport.schema import (
    INT32_MAX,
    DurationMs,
    Epoch,
    ErrorCode,
    FetchOffset,
    Int32,
    Message,
    Name,
    Offset,
    PartitionId,
    Range,
    Text,
    TimestampMs,
    message,
    struct,
)

__all__ = [
    "GROUP_COORDINATOR",
    "OFFSETS_TOPIC",
    "JOIN_EPOCH",
    "LEAVE_EPOCH",
    "STATIC_LEAVE_EPOCH",
    "group_partition",
    "GroupTopicPartitions",
    "ConsumerGroupHeartbeat",
    "ConsumerGroupHeartbeatResponse",
    "OffsetCommitPartition",
    "OffsetCommitTopic",
    "OffsetCommit",
    "OffsetCommitResponse",
    "OffsetFetch",
    "CommittedOffset",
    "OffsetFetchResponse",
    "ListGroups",
    "ListedGroup",
    "ListGroupsResponse",
    "DescribeGroup",
    "GroupMemberDescription",
    "DescribeGroupResponse",
    "DeleteGroup",
    "DeleteGroupResponse",
]

GROUP_COORDINATOR = "group-coordinator"
"""The actor name of the group coordinator on every worker endpoint."""
OFFSETS_TOPIC = "__consumer_offsets"
JOIN_EPOCH = 0
LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2



def group_partition(group_id: str, partitions: int) -> int:
    """Which partition of ``__consumer_offsets`` holds ``group_id``: CRC-32 (zlib's, of the UTF-8
    bytes) modulo the partition count. Its leader is the group's coordinator."""
    if partitions < 1:
        raise ValueError(f"{OFFSETS_TOPIC} needs at least 1 partition, got {partitions}")
    return zlib.crc32(group_id.encode("utf-8")) % partitions


MemberEpoch = Annotated[int, Range(-2, INT32_MAX)]
"""0: join; -1: leave; -2: leave, static member (keeps its assignment); else the epoch given."""


@struct
class GroupTopicPartitions:
    topic: Name
    partitions: tuple[PartitionId, ...]


# --- ConsumerGroupHeartbeat -------------------------------------------------------------------


@message
class ConsumerGroupHeartbeat(Message):
    group_id: Name
    member_id: Name  # "" to join: the coordinator gives one
    member_epoch: MemberEpoch
    instance_id: Name | None  # static membership: the same id gets the same partitions back
    client_id: Name
    session_timeout_ms: DurationMs  # no heartbeat for this long: the member is removed
    subscribed_topics: tuple[Name, ...]
    subscribed_topic_regex: Text | None  # Python re syntax, matched in full against topic names
    owned_partitions: tuple[GroupTopicPartitions, ...]  # what the member owns now (revocations done)


@message
class ConsumerGroupHeartbeatResponse(Message):
    error_code: ErrorCode
    error_message: Text | None
    member_id: Name
    member_epoch: Epoch
    assignment: tuple[GroupTopicPartitions, ...]  # the member's whole assignment: own exactly these
    pending: bool  # more partitions are coming once their old owners released them: heartbeat soon


# --- OffsetCommit -----------------------------------------------------------------------------


@struct
class OffsetCommitPartition:
    partition: PartitionId
    committed_offset: FetchOffset  # the next offset to read
    metadata: Text | None


@struct
class OffsetCommitTopic:
    name: Name
    partitions: tuple[OffsetCommitPartition, ...]


@message
class OffsetCommit(Message):
    group_id: Name
    member_id: Name  # "" with member_epoch -1: a commit from outside the group (only while it has no members)
    member_epoch: Annotated[int, Range(-1, INT32_MAX)]
    topics: tuple[OffsetCommitTopic, ...]


@message
class OffsetCommitResponse(Message):
    error_code: ErrorCode  # all or nothing: written to every in-sync replica, or refused
    error_message: Text | None


# --- OffsetFetch ------------------------------------------------------------------------------


@message
class OffsetFetch(Message):
    group_id: Name
    topics: tuple[GroupTopicPartitions, ...] | None  # None: every committed offset of the group


@struct
class CommittedOffset:
    topic: Name
    partition: PartitionId
    committed_offset: Offset  # -1: nothing committed
    metadata: Text | None
    commit_timestamp_ms: TimestampMs


@message
class OffsetFetchResponse(Message):
    error_code: ErrorCode
    error_message: Text | None
    offsets: tuple[CommittedOffset, ...]


# --- ListGroups / DescribeGroup / DeleteGroup -------------------------------------------------


@message
class ListGroups(Message):
    pass


@struct
class ListedGroup:
    group_id: Name
    state: Name  # Empty, Reconciling, Stable
    member_count: Int32


@message
class ListGroupsResponse(Message):
    error_code: ErrorCode
    error_message: Text | None
    groups: tuple[ListedGroup, ...]


@message
class DescribeGroup(Message):
    group_id: Name


@struct
class GroupMemberDescription:
    member_id: Name
    instance_id: Name | None
    client_id: Name
    member_epoch: Epoch
    subscribed_topics: tuple[Name, ...]
    subscribed_topic_regex: Text | None
    assignment: tuple[GroupTopicPartitions, ...]  # what it was told to own
    target: tuple[GroupTopicPartitions, ...]  # what the assignor wants it to own


@message
class DescribeGroupResponse(Message):
    error_code: ErrorCode
    error_message: Text | None
    group_id: Name
    state: Name  # Empty, Reconciling, Stable, Dead (unknown group)
    group_epoch: Epoch
    members: tuple[GroupMemberDescription, ...]
    offsets: tuple[CommittedOffset, ...]


@message
class DeleteGroup(Message):
    group_id: Name


@message
class DeleteGroupResponse(Message):
    error_code: ErrorCode
    error_message: Text | None

