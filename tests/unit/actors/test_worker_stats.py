"""DescribeWorkerStats: a worker's gateway counters and its replicas (state and size on disk)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from _replica_cluster import Cluster, disk_log_factory, fetch, fetch_part, partition, produce, produce_part, topic_state, wait_until
from kbroker.actors.worker_stats import GatewayCounters
from kbroker.errors import InvalidRequestError
from kbroker.transport.messages_admin import DescribeWorkerStats, DescribeWorkerStatsResponse


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, log_factory=disk_log_factory)
    for w in range(2):
        c.start_worker(w)
    c.assign(topic_state("t", partition(0, leader=0, replicas=[0, 1]), partition(1, leader=1, replicas=[1, 0])))
    try:
        yield c
    finally:
        c.stop()


def stats(cluster: Cluster, worker_id: int) -> DescribeWorkerStatsResponse:
    reply = cluster.ask(cluster.gateway(worker_id), DescribeWorkerStats())
    assert isinstance(reply, DescribeWorkerStatsResponse), reply
    return reply


def test_counters_add_up() -> None:
    c = GatewayCounters().add(produce_requests=1, bytes_in=10).add(fetch_requests=2, bytes_out=5)
    assert c == GatewayCounters(1, 2, 10, 5)


def test_a_fresh_worker_reports_zero_counters_and_its_replicas(cluster: Cluster) -> None:
    reply = stats(cluster, 0)
    assert reply.worker_id == 0 and reply.uptime_ms >= 0
    assert (reply.produce_requests, reply.fetch_requests, reply.bytes_in, reply.bytes_out) == (0, 0, 0, 0)
    assert [(r.topic, r.partition, r.is_leader, r.error_code) for r in reply.replicas] == [("t", 0, True, 0), ("t", 1, False, 0)]


def test_produce_and_fetch_are_counted_and_sizes_grow(cluster: Cluster) -> None:
    for _ in range(3):
        assert produce_part(cluster.ask(cluster.gateway(0), produce("t", 0, b"x" * 1000))).error_code == 0
    got = fetch_part(cluster.ask(cluster.gateway(0), fetch("t", 0)))
    assert got.error_code == 0 and got.records
    reply = stats(cluster, 0)
    assert reply.produce_requests == 3 and reply.fetch_requests == 1
    assert reply.bytes_in > 3000 and reply.bytes_out == len(got.records)
    leader = next(r for r in reply.replicas if r.partition == 0)
    assert (leader.log_end_offset, leader.high_watermark) == (3, 3) and leader.size_bytes >= reply.bytes_in
    assert stats(cluster, 1).produce_requests == 0  # counters are per worker
    wait_until(lambda: next(r for r in stats(cluster, 1).replicas if r.partition == 0).size_bytes == leader.size_bytes,
               what="the follower's copy to reach the leader's size")  # fmt: skip


def test_a_produce_to_a_partition_it_does_not_lead_is_still_counted(cluster: Cluster) -> None:
    cluster.ask(cluster.gateway(0), produce("t", 1, b"y"))
    assert stats(cluster, 0).produce_requests == 1


def test_a_gateway_without_a_replica_manager_refuses_politely(tmp_path: Path) -> None:
    from kbroker.actors.gateway import Gateway
    from kbroker.transport.envelope import Envelope

    gateway = Gateway.start(worker_id=7)
    try:
        replies: list = []
        envelope = Envelope.detached(DescribeWorkerStats(), replies.append)
        gateway.tell(envelope)
        wait_until(lambda: replies, what="an answer")
        assert replies[0].code == InvalidRequestError.code and "does not report stats" in replies[0].message
    finally:
        gateway.stop()
