"""The Gateway over real in-process IOThreads: routing, aggregation, acks, errors, Metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from _replica_cluster import Cluster, fetch, fetch_part, partition, produce, produce_part, topic_state, wait_until
from kbroker.errors import InvalidRequestError, NotLeaderError, RequestTimedOutError, UnknownTopicOrPartitionError
from kbroker.storage.records import build_batch, decode_batches
from kbroker.transport.messages_client import (
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    Fetch,
    FetchPartition,
    FetchTopic,
    ListOffsets,
    ListOffsetsPartition,
    ListOffsetsResponse,
    ListOffsetsTopic,
    Metadata,
    MetadataResponse,
    Produce,
    ProducePartition,
    ProduceResponse,
    ProduceTopic,
)
from kbroker.transport.messages_internal import WorkerHeartbeat


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    for w in range(2):
        c.start_worker(w)
    c.assign(topic_state("t", partition(0, leader=0, replicas=[0, 1]), partition(1, leader=1, replicas=[1, 0])))
    try:
        yield c
    finally:
        c.stop()


def test_metadata_is_answered_by_any_worker_from_its_cache(cluster: Cluster) -> None:
    for w in range(2):
        reply = cluster.ask(cluster.gateway(w), Metadata(None, False))
        assert isinstance(reply, MetadataResponse)
        assert {x.worker_id: x.endpoint for x in reply.workers} == {0: cluster.workers[0].endpoint, 1: cluster.workers[1].endpoint}
        [t] = reply.topics
        assert (t.name, t.error_code) == ("t", 0)
        assert [(p.partition, p.leader_id, p.replicas) for p in t.partitions] == [(0, 0, (0, 1)), (1, 1, (1, 0))]
    reply = cluster.ask(cluster.gateway(0), Metadata(("nope",), True))
    assert reply.topics[0].error_code == UnknownTopicOrPartitionError.code


def test_produce_to_unknown_topic_or_partition_is_refused(cluster: Cluster) -> None:
    assert produce_part(cluster.ask(cluster.gateway(0), produce("nope", 0, b"x"))).error_code == UnknownTopicOrPartitionError.code
    assert produce_part(cluster.ask(cluster.gateway(0), produce("t", 7, b"x"))).error_code == UnknownTopicOrPartitionError.code


def test_a_worker_without_a_replica_names_the_leader(tmp_path: Path) -> None:
    c = Cluster(tmp_path)
    try:
        for w in range(3):
            c.start_worker(w)
        c.assign(topic_state("t", partition(0, leader=1, replicas=[1, 0], epoch=4)))
        answer = produce_part(c.ask(c.gateway(2), produce("t", 0, b"x")))
        assert (answer.error_code, answer.leader_id, answer.leader_epoch) == (NotLeaderError.code, 1, 4)
    finally:
        c.stop()


def test_a_produce_spanning_partitions_is_split_and_answered_once(cluster: Cluster) -> None:
    request = Produce("test", 1, 5_000, (
        ProduceTopic("t", (ProducePartition(0, build_batch([(b"a",)])), ProducePartition(1, build_batch([(b"b",), (b"c",)])))),
        ProduceTopic("nope", (ProducePartition(0, build_batch([(b"d",)])),)),
    ))
    reply = cluster.ask(cluster.gateway(0), request)
    assert isinstance(reply, ProduceResponse)
    by_topic = {t.name: [(p.partition, p.error_code, p.base_offset) for p in t.partitions] for t in reply.topics}
    assert by_topic == {
        "t": [(0, 0, 0), (1, NotLeaderError.code, -1)],  # worker 0 only follows partition 1
        "nope": [(0, UnknownTopicOrPartitionError.code, -1)],
    }


def test_acks_zero_gets_no_reply_and_the_batch_is_written(cluster: Cluster) -> None:
    pending = cluster.send(cluster.gateway(0), produce("t", 0, b"fire", acks=0), timeout=0.3)
    wait_until(lambda: cluster.describe(0, "t", 0).log_end_offset == 1, what="the acks=0 batch")
    with pytest.raises(RequestTimedOutError):
        pending.result(5)


def test_envelopes_are_released_after_produce_and_fetch(cluster: Cluster) -> None:
    for _ in range(3):
        assert produce_part(cluster.ask(cluster.gateway(0), produce("t", 0, b"x" * 1000))).error_code == 0
    fetch_part(cluster.ask(cluster.gateway(0), fetch("t", 0)))
    for w in cluster.workers.values():
        wait_until(lambda w=w: w.io.stats().inflight_bytes == 0, what=f"worker {w.worker_id} to release every payload")


def test_fetch_over_partitions_waits_until_any_brings_data(tmp_path: Path) -> None:
    c = Cluster(tmp_path)
    try:
        c.start_worker(0)
        c.assign(topic_state("m", partition(0, leader=0, replicas=[0]), partition(1, leader=0, replicas=[0])))
        assert produce_part(c.ask(c.gateway(0), produce("m", 0, b"old"))).error_code == 0
        request = Fetch("test", 20_000, 1, 1 << 20, 0, (FetchTopic("m", (FetchPartition(0, 1, 1 << 20, -1), FetchPartition(1, 0, 1 << 20, -1))),))
        waiting = c.send(c.gateway(0), request, timeout=30)
        assert produce_part(c.ask(c.gateway(0), produce("m", 1, b"new"))).error_code == 0
        p0, p1 = waiting.result(5).topics[0].partitions  # long before max_wait_ms
        assert (p0.error_code, bytes(p0.records or b""), p0.high_watermark) == (0, b"", 1)
        assert [r.value for r in decode_batches(bytes(p1.records))] == [b"new"]
    finally:
        c.stop()


def test_a_fetch_with_a_partition_error_answers_at_once(cluster: Cluster) -> None:
    request = Fetch("test", 20_000, 1, 1 << 20, 0, (FetchTopic("t", (FetchPartition(0, 0, 1 << 20, -1), FetchPartition(1, 0, 1 << 20, -1))),))
    p0, p1 = cluster.ask(cluster.gateway(0), request, timeout=5).topics[0].partitions
    assert p0.error_code == 0 and not p0.records
    assert (p1.error_code, p1.leader_id) == (NotLeaderError.code, 1)


def test_fetch_max_bytes_bounds_the_response_after_the_first_batch(tmp_path: Path) -> None:
    c = Cluster(tmp_path)
    try:
        c.start_worker(0)
        c.assign(topic_state("m", partition(0, leader=0, replicas=[0]), partition(1, leader=0, replicas=[0])))
        for p in range(2):
            assert produce_part(c.ask(c.gateway(0), produce("m", p, b"x" * 500, acks=1))).error_code == 0
        request = Fetch("test", 0, 1, 100, 0, (FetchTopic("m", (FetchPartition(0, 0, 1 << 20, -1), FetchPartition(1, 0, 1 << 20, -1))),))
        p0, p1 = c.ask(c.gateway(0), request).topics[0].partitions
        assert len(decode_batches(bytes(p0.records))) == 1 and not p1.records
    finally:
        c.stop()


def test_list_offsets_earliest_and_latest(cluster: Cluster) -> None:
    for _ in range(3):
        assert produce_part(cluster.ask(cluster.gateway(0), produce("t", 0, b"x"))).error_code == 0
    request = ListOffsets(0, (ListOffsetsTopic("t", (
        ListOffsetsPartition(0, EARLIEST_TIMESTAMP, -1), ListOffsetsPartition(0, LATEST_TIMESTAMP, -1), ListOffsetsPartition(1, LATEST_TIMESTAMP, -1),
    )),))
    reply = cluster.ask(cluster.gateway(0), request)
    assert isinstance(reply, ListOffsetsResponse)
    assert [(p.error_code, p.offset) for p in reply.topics[0].partitions] == [(0, 0), (0, 3), (NotLeaderError.code, -1)]


def test_internal_messages_are_refused_by_name(cluster: Cluster) -> None:
    with pytest.raises(InvalidRequestError):
        cluster.ask(cluster.gateway(0), WorkerHeartbeat(0, 1, 0))


def test_fetch_waits_for_min_bytes_not_just_any_data(tmp_path: Path) -> None:
    c = Cluster(tmp_path)
    try:
        c.start_worker(0)
        c.assign(topic_state("m", partition(0, leader=0, replicas=[0])))
        waiting = c.send(c.gateway(0), fetch("m", 0, max_wait_ms=20_000, min_bytes=1500), timeout=30)
        assert produce_part(c.ask(c.gateway(0), produce("m", 0, b"small"))).error_code == 0
        c.ask(c.gateway(0), Metadata(None, False))  # replies leave in order: a finished fetch would be here
        assert not waiting.done()
        assert produce_part(c.ask(c.gateway(0), produce("m", 0, b"x" * 2000))).error_code == 0
        got = fetch_part(waiting.result(5))
        assert [len(r.value) for r in decode_batches(bytes(got.records))] == [5, 2000]
    finally:
        c.stop()
