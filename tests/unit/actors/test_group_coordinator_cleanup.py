"""The GroupCoordinator drops a deleted topic's committed offsets, with tombstones (in-process
workers, memory logs; the test plays the controller): other topics keep theirs, a group left
with nothing is gone, and the next coordinator loads no stale offsets."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from _coordinators import coordinated_cluster
from _replica_cluster import Cluster, partition, topic_state, wait_until
from kbroker.transport.envelope import Address
from kbroker.transport.messages_groups import (
    GROUP_COORDINATOR,
    OFFSETS_TOPIC,
    ListGroups,
    OffsetCommit,
    OffsetCommitPartition,
    OffsetCommitTopic,
    OffsetFetch,
)

pytestmark = pytest.mark.timeout(60)

OFFSETS = topic_state(OFFSETS_TOPIC, partition(0, leader=0, replicas=[0, 1]), configs={"cleanup.policy": "compact"})
EVENTS = topic_state("events", *(partition(p, leader=p % 2, replicas=[0, 1]) for p in range(6)))
ORDERS = topic_state("orders", partition(0, leader=0, replicas=[0, 1]))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with coordinated_cluster(tmp_path, EVENTS, ORDERS, OFFSETS) as c:
        yield c


def _at(cluster: Cluster, w: int) -> Address:
    return Address(cluster.workers[w].endpoint, GROUP_COORDINATOR)


def _commit(group: str, offsets: dict[str, dict[int, int]]) -> OffsetCommit:
    topics = tuple(
        OffsetCommitTopic(t, tuple(OffsetCommitPartition(p, o, None) for p, o in sorted(parts.items())))
        for t, parts in sorted(offsets.items())
    )
    return OffsetCommit(group, "", -1, topics)


def _offsets(cluster: Cluster, w: int, group: str) -> dict[tuple[str, int], int] | None:
    reply = cluster.ask(_at(cluster, w), OffsetFetch(group, None))
    if reply.error_code:
        return None
    return {(o.topic, o.partition): o.committed_offset for o in reply.offsets}


def test_deleting_a_topic_drops_its_offsets_in_every_group_even_when_re_created(cluster: Cluster) -> None:
    wait_until(lambda: _offsets(cluster, 0, "billing") is not None, 10, "worker 0 coordinating")
    assert cluster.ask(_at(cluster, 0), _commit("billing", {"events": {4: 1, 0: 3}, "orders": {0: 7}})).error_code == 0
    assert cluster.ask(_at(cluster, 0), _commit("audit", {"events": {4: 2}})).error_code == 0
    assert _offsets(cluster, 0, "billing") == {("events", 0): 3, ("events", 4): 1, ("orders", 0): 7}
    written = cluster.describe(0, OFFSETS_TOPIC, 0).high_watermark

    cluster.update_metadata([], deleted=["events"])  # deleted, then re-created with the same shape
    cluster.assign(EVENTS)

    wait_until(lambda: _offsets(cluster, 0, "billing") == {("orders", 0): 7}, 10, "events offsets dropped")
    assert _offsets(cluster, 0, "audit") == {}
    assert [g.group_id for g in cluster.ask(_at(cluster, 0), ListGroups()).groups] == ["billing"]  # audit is gone
    wait_until(lambda: cluster.describe(0, OFFSETS_TOPIC, 0).high_watermark == written + 3, 10, "3 tombstones written")

    assert cluster.ask(_at(cluster, 0), _commit("billing", {"events": {4: 0}})).error_code == 0  # the new topic
    moved = topic_state(OFFSETS_TOPIC, partition(0, leader=1, replicas=[0, 1], epoch=2), configs={"cleanup.policy": "compact"})
    cluster.assign(moved)
    wait_until(lambda: _offsets(cluster, 1, "billing") is not None, 10, "worker 1 loaded")
    assert _offsets(cluster, 1, "billing") == {("events", 4): 0, ("orders", 0): 7}
    assert _offsets(cluster, 1, "audit") == {}
    assert [g.group_id for g in cluster.ask(_at(cluster, 1), ListGroups()).groups] == ["billing"]
