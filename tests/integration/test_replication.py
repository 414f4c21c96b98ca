"""Replicated produce and fetch against a real ``kbroker start --workers 3`` (raw protocol messages).

Needs the controller to create topics and push UpdateMetadata / LeaderAndIsr to the workers'
replica managers; the test skips (saying why) while the bootstrap endpoint does not serve
CreateTopics yet.
"""

from __future__ import annotations

import os
import signal

from _cluster import Cluster, wait_until
from kbroker.actors.names import REPLICA_MANAGER
from kbroker.errors import NotLeaderError
from kbroker.storage.records import BatchBuilder, decode_batches
from kbroker.transport.messages_admin import CreatableTopic, CreateTopics, CreateTopicsResponse
from kbroker.transport.messages_client import (
    Fetch,
    FetchPartition,
    FetchResponse,
    FetchTopic,
    Metadata,
    MetadataResponse,
    Produce,
    ProducePartition,
    ProduceResponse,
    ProduceTopic,
)
from kbroker.transport.connection import Connection
from kbroker.transport.messages_internal import DescribeReplicas, DescribeReplicasResponse, ReplicaKey

TOPIC = "replicated"
PARTITIONS = 3
RECORDS = 50


def _create_topic(cluster: Cluster) -> None:
    admin = cluster.connection(timeout=10)
    reply = admin.request(CreateTopics((CreatableTopic(TOPIC, PARTITIONS, 3, ()),), 10_000, False), timeout=10)
    assert isinstance(reply, CreateTopicsResponse), reply
    assert reply.topics[0].error_code == 0, reply


def _metadata(conn: Connection) -> MetadataResponse:
    reply = conn.request(Metadata((TOPIC,), False), timeout=10)
    assert isinstance(reply, MetadataResponse), reply
    return reply


def _batch(partition: int, start: int, count: int) -> bytes:
    builder = BatchBuilder()
    for i in range(start, start + count):
        builder.append(b"p%d-v%d" % (partition, i), key=b"k%d" % i)
    return builder.build()


def _wait_for_leaders(cluster: Cluster) -> MetadataResponse:
    bootstrap = cluster.connection(timeout=10)

    def led() -> MetadataResponse | None:
        reply = _metadata(bootstrap)
        parts = reply.topics[0].partitions if reply.topics and reply.topics[0].error_code == 0 else ()
        return reply if len(parts) == PARTITIONS and all(p.leader_id >= 0 and len(p.isr) == 3 for p in parts) else None

    return wait_until(led, 20, "every partition to have a leader and an ISR of 3")


def _fetch_all(conn: Connection, partition: int) -> tuple[int, list[bytes]]:
    """(high watermark, values from offset 0), retrying NotLeader while the leader takes over."""

    def attempt():
        reply = conn.request(
            Fetch("it", 1000, 1, 1 << 20, 0, (FetchTopic(TOPIC, (FetchPartition(partition, 0, 1 << 20, -1),)),)), timeout=10
        )
        assert isinstance(reply, FetchResponse), reply
        part = reply.topics[0].partitions[0]
        return None if part.error_code == NotLeaderError.code else part

    part = wait_until(attempt, 20, f"the leader of partition {partition} to serve fetches")
    assert part.error_code == 0, part
    return part.high_watermark, [r.value for r in decode_batches(bytes(part.records or b""))]


def test_produce_to_leaders_fetch_back_and_replicas_agree(cluster: Cluster) -> None:
    _create_topic(cluster)
    meta = _wait_for_leaders(cluster)
    endpoints = {w.worker_id: w.endpoint for w in meta.workers}
    conns = {w: cluster.connection(endpoint, timeout=10) for w, endpoint in endpoints.items()}
    partitions = meta.topics[0].partitions
    assert all(len(set(p.replicas)) == 3 for p in partitions)
    assert len({p.leader_id for p in partitions}) >= 2  # leaders spread over workers

    for p in partitions:
        leader = conns[p.leader_id]

        def produce(start: int, count: int):
            request = Produce("it", -1, 10_000, (ProduceTopic(TOPIC, (ProducePartition(p.partition, _batch(p.partition, start, count)),)),))
            reply = leader.request(request, timeout=15)
            assert isinstance(reply, ProduceResponse), reply
            return reply.topics[0].partitions[0]

        # the leader may not have applied its LeaderAndIsr yet: retry NotLeader until it has
        first = wait_until(lambda: (a := produce(0, RECORDS // 2)) and (a if a.error_code != NotLeaderError.code else None), 20, "the leader to accept")
        assert (first.error_code, first.base_offset) == (0, 0), first
        second = produce(RECORDS // 2, RECORDS - RECORDS // 2)
        assert (second.error_code, second.base_offset) == (0, RECORDS // 2), second

        assert _fetch_all(leader, p.partition) == (RECORDS, [b"p%d-v%d" % (p.partition, i) for i in range(RECORDS)])

        follower = next(r for r in p.replicas if r != p.leader_id)
        refused = conns[follower].request(
            Produce("it", 1, 5_000, (ProduceTopic(TOPIC, (ProducePartition(p.partition, _batch(p.partition, 0, 1)),)),)), timeout=10
        )
        answer = refused.topics[0].partitions[0]
        assert (answer.error_code, answer.leader_id) == (NotLeaderError.code, p.leader_id)

    def log_ends() -> dict[tuple[int, int], int] | None:
        ends = {}
        for w, conn in conns.items():
            reply = conn.request(
                DescribeReplicas(tuple(ReplicaKey(TOPIC, p.partition) for p in partitions)), to=REPLICA_MANAGER, timeout=10
            )
            assert isinstance(reply, DescribeReplicasResponse), reply
            for d in reply.replicas:
                assert d.error_code == 0, d
                ends[(w, d.partition)] = (d.log_end_offset, d.high_watermark)
        return ends if set(ends.values()) == {(RECORDS, RECORDS)} else None

    ends = wait_until(log_ends, 20, "every replica to have the same log end offset")
    assert len(ends) == 3 * PARTITIONS


def test_replicas_survive_a_stop_and_start_of_the_broker(start_cluster) -> None:
    cluster = start_cluster()
    _create_topic(cluster)
    meta = _wait_for_leaders(cluster)
    endpoints = {w.worker_id: w.endpoint for w in meta.workers}
    for p in meta.topics[0].partitions:
        conn = cluster.connection(endpoints[p.leader_id], timeout=10)
        request = Produce("it", -1, 10_000, (ProduceTopic(TOPIC, (ProducePartition(p.partition, _batch(p.partition, 0, 10)),)),))
        answer = wait_until(
            lambda: (a := conn.request(request, timeout=15).topics[0].partitions[0]) and (a if a.error_code != NotLeaderError.code else None),
            20, "the leader to accept",
        )
        assert answer.error_code == 0, answer
    cluster.close_connections()
    assert cluster.stop() == 0
    for w in range(3):
        for p in range(PARTITIONS):
            assert (cluster.data_dir / f"worker-{w}" / f"{TOPIC}-{p}" / ".clean-shutdown").exists()  # logs closed

    again = start_cluster(data_dir=cluster.data_dir)
    meta = _wait_for_leaders(again)
    endpoints = {w.worker_id: w.endpoint for w in meta.workers}
    for p in meta.topics[0].partitions:
        conn = again.connection(endpoints[p.leader_id], timeout=10)
        def all_back(conn: Connection = conn, partition: int = p.partition) -> tuple[int, list[bytes]] | None:
            got = _fetch_all(conn, partition)
            return got if got[0] == 10 else None

        hw, values = wait_until(all_back, 20, "the high watermark back")
        assert values == [b"p%d-v%d" % (p.partition, i) for i in range(10)]


def test_a_killed_worker_recovers_its_replicas_and_rejoins_the_isr(cluster: Cluster) -> None:
    _create_topic(cluster)
    meta = _wait_for_leaders(cluster)
    conns: dict[str, Connection] = {}

    def conn(endpoint: str) -> Connection:
        if endpoint not in conns:
            conns[endpoint] = cluster.connection(endpoint, timeout=10)
        return conns[endpoint]

    def produce_everywhere(count: int) -> None:
        for p in _wait_for_leaders(cluster).topics[0].partitions:
            request = Produce("it", -1, 10_000, (ProduceTopic(TOPIC, (ProducePartition(p.partition, _batch(p.partition, 0, count)),)),))

            def accepted(p=p, request=request):
                m = _metadata(conn(cluster.bootstrap))
                leader = next(x for x in m.topics[0].partitions if x.partition == p.partition).leader_id
                endpoint = {w.worker_id: w.endpoint for w in m.workers}.get(leader)
                if endpoint is None:
                    return None
                answer = conn(endpoint).request(request, timeout=15).topics[0].partitions[0]
                return None if answer.error_code == NotLeaderError.code else answer

            answer = wait_until(accepted, 20, f"the leader of partition {p.partition} to accept")
            assert answer.error_code == 0, answer

    produce_everywhere(10)
    victim = meta.topics[0].partitions[0].leader_id
    old_pid = cluster.alive_pids()[victim]
    os.kill(old_pid, signal.SIGKILL)
    wait_until(lambda: cluster.alive_pids().get(victim) not in (None, old_pid), 20, "the worker to be restarted")
    produce_everywhere(5)  # once it is back in every ISR
    meta = _wait_for_leaders(cluster)  # every ISR back to 3: the restarted worker caught up

    def log_ends() -> set[tuple[int, int]] | None:
        ends = set()
        for w in meta.workers:
            reply = conn(w.endpoint).request(DescribeReplicas(()), to=REPLICA_MANAGER, timeout=10)
            ends |= {(d.log_end_offset, d.high_watermark) for d in reply.replicas if d.topic == TOPIC}
        return ends if ends == {(15, 15)} else None

    wait_until(log_ends, 20, "every replica to hold the same 15 records")
