"""Group state as wire messages (and back): the coordinator's replies, built from its pure state.

Pure: plain functions from ``Group`` / ``OffsetStore`` values to messages of messages_groups.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from kbroker.actors.group_assignor import TopicPartition
from kbroker.actors.group_offsets import Committed
from kbroker.actors.group_state import Group, GroupState
from kbroker.transport.messages_groups import (
    CommittedOffset,
    DescribeGroupResponse,
    GroupMemberDescription,
    GroupTopicPartitions,
    ListedGroup,
)

__all__ = ["to_tps", "tps_message", "committed_offsets", "listed_group", "describe_group", "group_state_name"]


def to_tps(topics: Iterable[GroupTopicPartitions]) -> frozenset[TopicPartition]:
    return frozenset(TopicPartition(t.topic, p) for t in topics for p in t.partitions)


def tps_message(tps: Iterable[TopicPartition]) -> tuple[GroupTopicPartitions, ...]:
    by_topic: dict[str, list[int]] = {}
    for tp in sorted(tps):
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return tuple(GroupTopicPartitions(t, tuple(ps)) for t, ps in by_topic.items())


def committed_offsets(
    offsets: Mapping[TopicPartition, Committed], wanted: Iterable[TopicPartition] | None = None
) -> tuple[CommittedOffset, ...]:
    """Every committed offset (``wanted`` None), or one entry per wanted partition (-1: none)."""
    keys = sorted(offsets) if wanted is None else sorted(set(wanted))
    out = []
    for tp in keys:
        c = offsets.get(tp)
        if c is None:
            out.append(CommittedOffset(tp.topic, tp.partition, -1, None, -1))
        else:
            out.append(CommittedOffset(tp.topic, tp.partition, c.offset, c.metadata, c.commit_ms))
    return tuple(out)


def group_state_name(group: Group | None) -> str:
    if group is None or group.state is GroupState.DEAD or not group.members:
        return GroupState.EMPTY.value
    return group.state.value


def listed_group(group_id: str, group: Group | None) -> ListedGroup:
    return ListedGroup(group_id, group_state_name(group), len(group.members) if group is not None else 0)


def describe_group(group_id: str, group: Group | None, offsets: Mapping[TopicPartition, Committed]) -> DescribeGroupResponse:
    if (group is None or not group.members) and not offsets:
        return DescribeGroupResponse(0, None, group_id, GroupState.DEAD.value, -1, (), ())
    members = ()
    if group is not None:
        members = tuple(
            GroupMemberDescription(
                m.member_id, m.instance_id, m.client_id, m.epoch, tuple(sorted(m.topics)), m.regex,
                tps_message(m.assigned), tps_message(group.target.get(m.member_id, frozenset())),
            )
            for m in sorted(group.members.values(), key=lambda m: m.member_id)
        )
    epoch = group.epoch if group is not None else 0
    return DescribeGroupResponse(0, None, group_id, group_state_name(group), epoch, members, committed_offsets(offsets))
