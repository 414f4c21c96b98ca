"""The broker's topic defaults (``kbroker start --config``'s [topic_defaults]) reach the replicas'
logs, under each topic's own overrides."""

from __future__ import annotations

from pathlib import Path

from _replica_cluster import memory_log_factory, partition, topic_state, wait_until
from kbroker.actors.metadata_cache import MetadataCache
from kbroker.actors.replica_manager import ReplicaDirectory, ReplicaManager
from kbroker.storage.config import TopicConfig
from kbroker.transport.envelope import Envelope
from kbroker.transport.io_thread import IOThread
from kbroker.transport.messages_internal import LeaderAndIsr, LeaderAndIsrResponse


def test_defaults_apply_under_the_topics_overrides(tmp_path: Path) -> None:
    opened: dict[str, TopicConfig] = {}

    def capture(path: Path, config: TopicConfig):  # type: ignore[no-untyped-def]
        opened[path.name] = config
        return memory_log_factory(path, config)

    io = IOThread(name="test-io-defaults")
    io.start()
    manager = ReplicaManager.start(
        io=io, worker_id=0, data_dir=tmp_path, cache=MetadataCache(), directory=ReplicaDirectory(), controller=None,
        log_factory=capture, topic_defaults={"retention.ms": "1000", "cleanup.policy": "compact"},
    )  # fmt: skip
    try:
        replies: list = []
        topics = (
            topic_state("plain", partition(0, leader=0, replicas=[0])),
            topic_state("own", partition(0, leader=0, replicas=[0]), configs={"cleanup.policy": "delete"}),
        )
        manager.tell(Envelope.detached(LeaderAndIsr(-1, 1, (), topics), replies.append))
        wait_until(lambda: replies, what="the LeaderAndIsr answer")
        assert isinstance(replies[0], LeaderAndIsrResponse) and all(p.error_code == 0 for p in replies[0].partitions)
        assert (opened["plain-0"].retention_ms, opened["plain-0"].cleanup_policy) == (1000, frozenset({"compact"}))
        assert (opened["own-0"].retention_ms, opened["own-0"].cleanup_policy) == (1000, frozenset({"delete"}))
    finally:
        manager.stop()
        io.stop()
