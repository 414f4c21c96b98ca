"""The ReplicaManager: metadata cache, replica creation and recovery, deletion, DescribeReplicas."""

from __future__ import annotations

from pathlib import Path

from _replica_cluster import Cluster, disk_log_factory, fetch, fetch_part, partition, produce, produce_part, topic_state, wait_until
from kbroker.actors.metadata_cache import MetadataCache
from kbroker.actors.names import replica_actor_name
from kbroker.errors import FencedLeaderEpochError, UnknownTopicOrPartitionError
from kbroker.storage.records import decode_batches
from kbroker.transport.messages_client import WorkerEndpoint
from kbroker.transport.messages_internal import DescribeReplicas, ReplicaKey, UpdateMetadata


def test_metadata_cache_versions_full_and_incremental() -> None:
    cache = MetadataCache()
    a, b = topic_state("a", partition(0, 0, [0])), topic_state("b", partition(0, 0, [0]))
    workers = (WorkerEndpoint(0, "tcp://h:1"),)
    out = cache.apply(UpdateMetadata(0, 1, 1, True, workers, (a, b), ()))
    assert out.applied and set(cache.snapshot.topics) == {"a", "b"}
    assert not cache.apply(UpdateMetadata(0, 1, 1, False, (), (), ("a",))).applied  # not newer: ignored
    b2 = topic_state("b", partition(0, 0, [0], epoch=2))
    out = cache.apply(UpdateMetadata(0, 1, 2, False, workers, (b2,), ("a",)))
    assert out.deleted_topics == ("a",) and out.changed_topics == ("b",)
    assert set(cache.snapshot.topics) == {"b"} and cache.snapshot.partition("b", 0).leader_epoch == 2
    out = cache.apply(UpdateMetadata(0, 1, 3, True, workers, (a,), ()))
    assert out.deleted_topics == ("b",) and cache.version == 3
    cache.add_endpoints((WorkerEndpoint(5, "tcp://h:5"),))
    assert cache.snapshot.endpoint_of(5) == "tcp://h:5" and cache.version == 3


def test_replicas_are_recovered_from_disk_on_restart(tmp_path: Path) -> None:
    c = Cluster(tmp_path, log_factory=disk_log_factory)
    topic = topic_state("r", partition(0, leader=0, replicas=[0]))
    try:
        c.start_worker(0)
        c.assign(topic)
        assert produce_part(c.ask(c.gateway(0), produce("r", 0, b"kept", b"too"))).error_code == 0
        c.workers.pop(0).stop()
        w = c.start_worker(0)
        assert w.manager.proxy().recovered().get(timeout=5) == [("r", 0)]
        c.assign(topic_state("r", partition(0, leader=0, replicas=[0], epoch=2)))
        got = fetch_part(c.ask(c.gateway(0), fetch("r", 0)))
        assert [r.value for r in decode_batches(bytes(got.records))] == [b"kept", b"too"]
    finally:
        c.stop()


def test_a_deleted_topic_stops_its_replicas_and_removes_their_data(tmp_path: Path) -> None:
    c = Cluster(tmp_path, log_factory=disk_log_factory)
    try:
        for w in range(2):
            c.start_worker(w)
        c.assign(topic_state("gone", partition(0, leader=0, replicas=[0, 1])))
        assert produce_part(c.ask(c.gateway(0), produce("gone", 0, b"x"))).error_code == 0
        assert (tmp_path / "worker-1" / "gone-0").is_dir()
        c.update_metadata([], deleted=["gone"])
        for w in range(2):
            assert not (tmp_path / f"worker-{w}" / "gone-0").exists()
            assert c.workers[w].directory.get("gone", 0) is None
            assert c.describe(w, "gone", 0).error_code == UnknownTopicOrPartitionError.code
        answer = produce_part(c.ask(c.gateway(0), produce("gone", 0, b"x")))
        assert answer.error_code == UnknownTopicOrPartitionError.code
    finally:
        c.stop()


def test_a_stale_leader_epoch_is_refused_per_partition(tmp_path: Path) -> None:
    c = Cluster(tmp_path)
    try:
        c.start_worker(0)
        c.assign(topic_state("s", partition(0, leader=0, replicas=[0], epoch=5)))
        reply = c.leader_and_isr(0, [topic_state("s", partition(0, leader=0, replicas=[0], epoch=3))])
        assert [(r.topic, r.partition, r.error_code) for r in reply.partitions] == [("s", 0, FencedLeaderEpochError.code)]
        assert c.describe(0, "s", 0).leader_epoch == 5
    finally:
        c.stop()


def test_describe_replicas_lists_every_replica_with_offsets(tmp_path: Path) -> None:
    c = Cluster(tmp_path)
    try:
        for w in range(2):
            c.start_worker(w)
        c.assign(topic_state("d", partition(0, leader=0, replicas=[0, 1]), partition(1, leader=1, replicas=[1, 0])))
        assert produce_part(c.ask(c.gateway(0), produce("d", 0, b"a", b"b"))).error_code == 0
        wait_until(lambda: c.describe(1, "d", 0).high_watermark == 2, what="the follower's high watermark")
        reply = c.ask(c.manager(1), DescribeReplicas(()))
        assert reply.worker_id == 1
        got = {(r.topic, r.partition): (r.is_leader, r.log_end_offset, r.high_watermark) for r in reply.replicas}
        assert got == {("d", 0): (False, 2, 2), ("d", 1): (True, 0, 0)}
        assert c.ask(c.manager(1), DescribeReplicas((ReplicaKey("x", 0),))).replicas[0].error_code == UnknownTopicOrPartitionError.code
    finally:
        c.stop()


def test_replica_actors_are_registered_on_the_io_thread_while_they_run(tmp_path: Path) -> None:
    c = Cluster(tmp_path)
    try:
        w = c.start_worker(0)
        c.assign(topic_state("n", partition(0, leader=0, replicas=[0])))
        assert replica_actor_name("n", 0) in w.io._handlers
        c.update_metadata([], deleted=["n"])
        assert replica_actor_name("n", 0) not in w.io._handlers
    finally:
        c.stop()


def test_maintenance_runs_on_schedule_and_applies_retention(tmp_path: Path) -> None:
    c = Cluster(tmp_path, log_factory=disk_log_factory, retention_check_interval_ms=50)
    try:
        c.start_worker(0)
        configs = {"segment.bytes": "1024", "retention.bytes": "2048"}
        c.assign(topic_state("small", partition(0, leader=0, replicas=[0]), configs=configs))
        for _ in range(20):
            assert produce_part(c.ask(c.gateway(0), produce("small", 0, b"x" * 400))).error_code == 0
        def trimmed() -> bool:
            d = c.describe(0, "small", 0)
            return d.log_start_offset > 0 and d.size_bytes <= 2048 + 1024 and d.log_end_offset == 20

        wait_until(trimmed, what="retention to delete the old segments after the last append")
    finally:
        c.stop()
