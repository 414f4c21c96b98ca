"""The GroupCoordinator actor on in-process workers (memory logs; the test plays the controller):
routing by __consumer_offsets leadership, commits through the replica, loading on failover."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from _coordinators import coordinated_cluster
from _replica_cluster import Cluster, partition, topic_state, wait_until
from kbroker.errors import (
    GroupIdNotFoundError,
    GroupNotEmptyError,
    InvalidRequestError,
    NotCoordinatorError,
    StaleMemberEpochError,
    UnknownMemberError,
)
from kbroker.transport.envelope import Address
from kbroker.transport.messages_client import ErrorResponse
from kbroker.transport.messages_groups import (
    GROUP_COORDINATOR,
    OFFSETS_TOPIC,
    ConsumerGroupHeartbeat,
    DeleteGroup,
    DeleteGroupResponse,
    DescribeGroup,
    GroupTopicPartitions,
    ListGroups,
    OffsetCommit,
    OffsetCommitPartition,
    OffsetCommitTopic,
    OffsetFetch,
)

OFFSETS = topic_state(OFFSETS_TOPIC, partition(0, leader=0, replicas=[0, 1]), configs={"cleanup.policy": "compact"})
DATA = topic_state("t", *(partition(p, leader=p % 2, replicas=[0, 1]) for p in range(4)))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with coordinated_cluster(tmp_path, DATA, OFFSETS) as c:
        yield c


def coordinator(cluster: Cluster, w: int) -> Address:
    return Address(cluster.workers[w].endpoint, GROUP_COORDINATOR)


def join(group: str = "g", member: str = "", epoch: int = 0, owned: tuple = ()) -> ConsumerGroupHeartbeat:
    return ConsumerGroupHeartbeat(group, member, epoch, None, "c", 5000, ("t",), None, owned)


def commit(member: str, epoch: int, offsets: dict[int, int], group: str = "g") -> OffsetCommit:
    parts = tuple(OffsetCommitPartition(p, o, None) for p, o in sorted(offsets.items()))
    return OffsetCommit(group, member, epoch, (OffsetCommitTopic("t", parts),))


def ready(cluster: Cluster, w: int) -> None:
    """Wait until worker ``w`` serves group "g" (its __consumer_offsets partition is loaded)."""
    wait_until(lambda: cluster.ask(coordinator(cluster, w), OffsetFetch("g", None)).error_code == 0, 10, f"worker {w} coordinating")


def test_members_join_commit_and_fetch_offsets_at_the_coordinator_only(cluster: Cluster) -> None:
    ready(cluster, 0)
    other = cluster.ask(coordinator(cluster, 1), join())
    assert other.error_code == NotCoordinatorError.code
    first = cluster.ask(coordinator(cluster, 0), join())
    assert first.error_code == 0 and first.assignment == (GroupTopicPartitions("t", (0, 1, 2, 3)),)
    reply = cluster.ask(coordinator(cluster, 0), commit(first.member_id, first.member_epoch, {0: 5, 3: 9}))
    assert reply.error_code == 0, reply
    fetched = cluster.ask(coordinator(cluster, 0), OffsetFetch("g", (GroupTopicPartitions("t", (0, 1, 3)),)))
    assert [(o.partition, o.committed_offset) for o in fetched.offsets] == [(0, 5), (1, -1), (3, 9)]
    assert cluster.describe(0, OFFSETS_TOPIC, 0).high_watermark == 2  # written to both replicas (acks=all)
    stale = cluster.ask(coordinator(cluster, 0), commit(first.member_id, first.member_epoch + 5, {0: 6}))
    assert stale.error_code == StaleMemberEpochError.code
    unknown = cluster.ask(coordinator(cluster, 0), commit("ghost", 1, {0: 6}))
    assert unknown.error_code == UnknownMemberError.code
    outside = cluster.ask(coordinator(cluster, 0), commit("", -1, {0: 6}))
    assert outside.error_code == GroupNotEmptyError.code
    assert cluster.ask(coordinator(cluster, 0), DeleteGroup("g")).error_code == GroupNotEmptyError.code
    groups = cluster.ask(coordinator(cluster, 0), ListGroups()).groups
    assert [(g.group_id, g.member_count) for g in groups] == [("g", 1)]
    assert cluster.ask(coordinator(cluster, 1), ListGroups()).groups == ()
    bad = cluster.ask(coordinator(cluster, 0), ConsumerGroupHeartbeat("g", "", 0, None, "c", 5000, (), "(", ()))
    assert bad.error_code == InvalidRequestError.code


def test_a_second_member_gets_partitions_only_after_the_first_released_them(cluster: Cluster) -> None:
    ready(cluster, 0)
    a = cluster.ask(coordinator(cluster, 0), join())
    b = cluster.ask(coordinator(cluster, 0), join())
    assert b.assignment == () and b.pending
    a2 = cluster.ask(coordinator(cluster, 0), join(member=a.member_id, epoch=a.member_epoch, owned=a.assignment))
    assert len(a2.assignment[0].partitions) == 2
    b2 = cluster.ask(coordinator(cluster, 0), join(member=b.member_id, epoch=b.member_epoch))
    assert b2.assignment == ()  # a has not reported the release yet
    cluster.ask(coordinator(cluster, 0), join(member=a.member_id, epoch=a2.member_epoch, owned=a2.assignment))
    b3 = cluster.ask(coordinator(cluster, 0), join(member=b.member_id, epoch=b2.member_epoch))
    assert set(b3.assignment[0].partitions) == {0, 1, 2, 3} - set(a2.assignment[0].partitions)
    described = cluster.ask(coordinator(cluster, 0), DescribeGroup("g"))
    assert described.state == "Stable" and len(described.members) == 2


def test_offsets_are_loaded_by_the_new_leader_and_deleted_with_tombstones(cluster: Cluster) -> None:
    ready(cluster, 0)
    assert cluster.ask(coordinator(cluster, 0), commit("", -1, {1: 11, 2: 22})).error_code == 0
    assert cluster.ask(coordinator(cluster, 0), commit("", -1, {1: 12})).error_code == 0
    moved = topic_state(OFFSETS_TOPIC, partition(0, leader=1, replicas=[0, 1], epoch=2), configs={"cleanup.policy": "compact"})
    cluster.assign(moved)
    wait_until(lambda: cluster.ask(coordinator(cluster, 1), OffsetFetch("g", None)).error_code == 0, 10, "worker 1 loaded")
    fetched = cluster.ask(coordinator(cluster, 1), OffsetFetch("g", None))
    assert [(o.partition, o.committed_offset) for o in fetched.offsets] == [(1, 12), (2, 22)]
    assert cluster.ask(coordinator(cluster, 0), OffsetFetch("g", None)).error_code == NotCoordinatorError.code
    deleted = cluster.ask(coordinator(cluster, 1), DeleteGroup("g"))
    assert isinstance(deleted, DeleteGroupResponse) and deleted.error_code == 0
    assert cluster.ask(coordinator(cluster, 1), OffsetFetch("g", None)).offsets == ()
    assert cluster.ask(coordinator(cluster, 1), DeleteGroup("g")).error_code == GroupIdNotFoundError.code
    assert cluster.ask(coordinator(cluster, 1), DescribeGroup("g")).state == "Dead"


def test_unserved_requests_are_refused_by_type(cluster: Cluster) -> None:
    reply = cluster.ask(coordinator(cluster, 0), OffsetFetch("", None))
    assert reply.error_code == InvalidRequestError.code
    assert not isinstance(reply, ErrorResponse)
