"""Where a PartitionReplica runs its messages: the hot path on the I/O thread, slow work on its own thread."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from _replica_cluster import (
    Cluster, disk_log_factory, fetch, fetch_part, partition, produce, produce_part, running_cluster, topic_state, wait_until,
)
from kbroker.actors.lane_ref import Lane

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with running_cluster(tmp_path, log_factory=disk_log_factory) as c:
        yield c


def _lane(cluster: Cluster, worker: int, topic: str = "t") -> Lane:
    ref = cluster.workers[worker].directory.get(topic, 0)
    assert ref is not None
    return ref.lane


def test_produce_pushes_acks_and_fetches_run_on_the_io_threads(cluster: Cluster) -> None:
    cluster.assign(topic_state("t", partition(0, leader=0, replicas=[0, 1, 2])))
    wait_until(lambda: all(cluster.describe(w, "t", 0).error_code == 0 for w in range(3)), what="replicas")
    leader, follower = _lane(cluster, 0), _lane(cluster, 1)
    wait_until(lambda: cluster.describe(0, "t", 0).high_watermark == 0 and leader.queued == 0, what="a settled leader")
    before = (leader.inline_runs, follower.inline_runs)
    for i in range(20):
        answer = produce_part(cluster.ask(cluster.gateway(0), produce("t", 0, b"v%d" % i)))
        assert (answer.error_code, answer.base_offset) == (0, i)
    got = fetch_part(cluster.ask(cluster.gateway(0), fetch("t", 0)))
    assert got.error_code == 0 and got.high_watermark == 20
    # each produce: the ProducePart and two acks on the leader, a push on each follower; only the
    # ~50 ms ticks (and whatever arrives while one runs) take the actor's own thread
    assert leader.inline_runs - before[0] >= 40
    assert follower.inline_runs - before[1] >= 15


def test_a_topic_that_fsyncs_on_every_message_appends_on_the_replicas_own_thread(cluster: Cluster) -> None:
    cluster.assign(topic_state("t", partition(0, leader=0, replicas=[0]), configs={"flush.messages": "1"}))
    wait_until(lambda: cluster.describe(0, "t", 0).error_code == 0, what="the replica")
    lane = _lane(cluster, 0)
    inline, queued = lane.inline_runs, lane.queued_runs
    for i in range(5):
        assert produce_part(cluster.ask(cluster.gateway(0), produce("t", 0, b"x", acks=1))).error_code == 0
    assert lane.inline_runs == inline  # an fsync must not stall every other partition of the worker
    assert lane.queued_runs - queued >= 5
    assert fetch_part(cluster.ask(cluster.gateway(0), fetch("t", 0))).high_watermark == 5


def test_an_append_that_rolls_the_segment_runs_on_the_replicas_own_thread(cluster: Cluster) -> None:
    cluster.assign(topic_state("t", partition(0, leader=0, replicas=[0]), configs={"segment.bytes": "200"}))
    wait_until(lambda: cluster.describe(0, "t", 0).error_code == 0, what="the replica")
    lane = _lane(cluster, 0)
    assert produce_part(cluster.ask(cluster.gateway(0), produce("t", 0, b"x" * 150, acks=1))).error_code == 0
    queued = lane.queued_runs
    assert produce_part(cluster.ask(cluster.gateway(0), produce("t", 0, b"y" * 150, acks=1))).error_code == 0  # rolls
    assert lane.queued_runs > queued
    got = fetch_part(cluster.ask(cluster.gateway(0), fetch("t", 0)))
    assert got.high_watermark == 2


def test_a_failure_on_the_io_thread_stops_the_replica_as_on_its_own_thread(cluster: Cluster) -> None:
    cluster.assign(topic_state("t", partition(0, leader=0, replicas=[0])))
    wait_until(lambda: cluster.describe(0, "t", 0).error_code == 0, what="the replica")
    ref = cluster.workers[0].directory.get("t", 0)
    assert ref is not None
    actor = ref._actor  # the instance: break its core's append

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in the append path")

    actor.core.append_produce = broken  # type: ignore[method-assign]
    cluster.send(cluster.gateway(0), produce("t", 0, b"x", acks=1, timeout_ms=500), timeout=2)
    wait_until(lambda: not ref.is_alive(), what="the replica to stop after its failure")
    # the next LeaderAndIsr starts it again (ReplicaManager._ensure_replica), with its log recovered
    cluster.assign(topic_state("t", partition(0, leader=0, replicas=[0], epoch=2)))
    assert produce_part(cluster.ask(cluster.gateway(0), produce("t", 0, b"y", acks=1))).error_code == 0


def test_ticks_run_on_the_io_thread_and_maintenance_on_the_replicas_own_thread(tmp_path: Path) -> None:
    with running_cluster(tmp_path, 1, log_factory=disk_log_factory, retention_check_interval_ms=200) as c:
        c.assign(topic_state("t", partition(0, leader=0, replicas=[0])))
        wait_until(lambda: c.describe(0, "t", 0).error_code == 0, what="the replica")
        lane = _lane(c, 0)
        inline, queued = lane.inline_runs, lane.queued_runs
        # no traffic: only the manager's ticks (every 50 ms) and, every 200 ms, maintenance
        wait_until(lambda: lane.inline_runs - inline >= 6, what="ticks on the I/O thread")
        wait_until(lambda: lane.queued_runs - queued >= 2, what="maintenance on the replica's thread")
