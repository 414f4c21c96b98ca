"""Tests for kbroker.actors.controller_state: topics, configs, views and the Changes they return.

Worker liveness, elections and ISR changes are in test_controller_failover.py.
"""

from __future__ import annotations

from collections import Counter

import pytest

from _controller_helpers import T0, check_invariants, cluster, endpoint, register
from kbroker.actors.controller_model import Removal, Topic, VersionStamp
from kbroker.actors.controller_state import ControllerSettings
from kbroker.errors import (
    InvalidConfigError,
    InvalidPartitionsError,
    InvalidReplicationFactorError,
    InvalidTopicError,
    LeaderNotAvailableError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)
from kbroker.storage.config import CONFIG_KEYS, TopicConfig
from kbroker.transport.messages_admin import ConfigEntry
from kbroker.transport.messages_internal import LeaderAndIsr, UpdateMetadata


def test_create_topic_places_replicas_and_returns_what_to_persist_and_send() -> None:
    state = cluster(3)
    version = state.metadata_version
    created = state.create_topic("orders", 6, 3, {"retention.ms": 60_000})
    changes = created.changes
    assert changes.metadata_version == state.metadata_version == version + 1
    assert [p.partition for p in created.partitions] == list(range(6))
    for part in created.partitions:
        assert len(set(part.replicas)) == 3 and part.leader == part.replicas[0] and part.isr == part.replicas
        assert (part.leader_epoch, part.partition_epoch) == (0, 0)
    assert Counter(p.leader for p in created.partitions) == {0: 2, 1: 2, 2: 2}
    # records: the topic, its partitions, then the version stamp
    assert changes.records[0] == Topic("orders", (("retention.ms", "60000"),), 6)
    assert changes.records[1:7] == created.partitions
    assert changes.records[-1] == VersionStamp(state.metadata_version, state.controller_epoch)
    assert changes.partitions == tuple(("orders", p) for p in range(6))
    # every live worker: incremental UpdateMetadata with the topic, then LeaderAndIsr for its replicas
    kinds = [(s.worker_id, type(s.message)) for s in changes.sends]
    assert kinds == [(w, UpdateMetadata) for w in range(3)] + [(w, LeaderAndIsr) for w in range(3)]
    update = changes.update_metadata_for(1)
    assert update is not None and not update.full and update.metadata_version == state.metadata_version
    assert [t.name for t in update.topics] == ["orders"] and len(update.topics[0].partitions) == 6
    assert update.topics[0].configs == (ConfigEntry("retention.ms", "60000"),)
    assert [w.worker_id for w in update.workers] == [0, 1, 2]
    assert created.result().num_partitions == 6 and created.result().replication_factor == 3
    check_invariants(state)


def test_leader_and_isr_names_only_the_receivers_partitions() -> None:
    state = cluster(4)
    created = state.create_topic("t", 8, 2)
    for w in range(4):
        message = created.changes.leader_and_isr_for(w)
        assert message is not None and message.controller_epoch == state.controller_epoch
        (topic,) = message.topics
        mine = {p.partition for p in created.partitions if w in p.replicas}
        assert {p.partition for p in topic.partitions} == mine
        assert {e.worker_id for e in message.workers} == {p.leader_id for p in topic.partitions}
        assert all(e.endpoint == endpoint(e.worker_id) for e in message.workers)


def test_defaults_apply_for_minus_one_and_replication_is_capped_by_live_workers() -> None:
    state = cluster(2, settings=ControllerSettings(default_partitions=3, default_replication_factor=3))
    created = state.create_topic("t")
    assert len(created.partitions) == 3 and all(len(p.replicas) == 2 for p in created.partitions)


def test_leaders_spread_evenly_over_many_topics() -> None:
    state = cluster(3)
    for i in range(30):
        state.create_topic(f"t{i}", 1, 2)
    leaders = Counter(parts[0].leader for parts in state.partitions.values())
    assert leaders == {0: 10, 1: 10, 2: 10}


@pytest.mark.parametrize(
    ("args", "error", "words"),
    [
        (("bad/name",), InvalidTopicError, "'/'"),
        (("__internal",), InvalidTopicError, "reserved"),
        (("t", 0), InvalidPartitionsError, "got 0"),
        (("t", 10_001), InvalidPartitionsError, "1 to 10000"),
        (("t", 1, 4), InvalidReplicationFactorError, "larger than the number of live workers (3)"),
        (("t", 1, 0), InvalidReplicationFactorError, "at least 1"),
        (("t", 1, 1, {"retention.mss": "1"}), InvalidConfigError, "did you mean 'retention.ms'"),
        (("t", 1, 1, {"retention.ms": "soon"}), InvalidConfigError, "'retention.ms'"),
        (("t", 1, 1, {"cleanup.policy": "shred"}), InvalidConfigError, "'cleanup.policy'"),
        (("t", 1, 1, {"min.insync.replicas": None}), InvalidConfigError, "need values"),
    ],
)
def test_create_topic_errors_change_nothing(args: tuple, error: type, words: str) -> None:
    state = cluster(3)
    before = (state.image(), state.rng.getstate())
    with pytest.raises(error) as info:
        state.create_topic(*args)
    assert words in info.value.message
    assert (state.image(), state.rng.getstate()) == before


def test_create_existing_or_colliding_topic_is_refused() -> None:
    state = cluster(1)
    state.create_topic("a.b", 1, 1)
    with pytest.raises(TopicAlreadyExistsError):
        state.create_topic("a.b", 1, 1)
    with pytest.raises(InvalidTopicError, match="collides with existing topic 'a.b'"):
        state.create_topic("a_b", 1, 1)


def test_no_live_workers_means_no_topic() -> None:
    state = cluster(0)
    with pytest.raises(InvalidReplicationFactorError, match="no worker is alive"):
        state.create_topic("t")


def test_internal_topics_need_the_flag_to_create_and_delete() -> None:
    state = cluster(3)
    created = state.create_topic("__consumer_offsets", 5, 3, {"cleanup.policy": "compact"}, internal=True)
    assert created.topic.overrides == {"cleanup.policy": "compact"}
    with pytest.raises(InvalidTopicError, match="internal"):
        state.delete_topic("__consumer_offsets")
    state.delete_topic("__consumer_offsets", internal=True)
    assert "__consumer_offsets" not in state.topics


def test_validate_only_checks_everything_and_changes_nothing() -> None:
    state = cluster(3)
    before = (state.image(), state.rng.getstate())
    created = state.create_topic("t", 4, 2, {"cleanup.policy": "delete,compact"}, validate_only=True)
    assert created.changes.empty and created.changes.metadata_version == state.metadata_version
    assert created.topic.overrides == {"cleanup.policy": "compact,delete"}
    assert created.result().num_partitions == 4
    assert (state.image(), state.rng.getstate()) == before
    with pytest.raises(InvalidReplicationFactorError):
        state.create_topic("t", 4, 5, validate_only=True)


def test_delete_topic_writes_tombstones_and_tells_every_worker() -> None:
    state = cluster(2)
    state.create_topic("t", 2, 2)
    changes = state.delete_topic("t")
    assert changes.records[:3] == (Removal("topic/t"), Removal("partition/t/0"), Removal("partition/t/1"))
    assert changes.deleted_topics == ("t",)
    for w in range(2):
        update = changes.update_metadata_for(w)
        assert update is not None and update.deleted_topics == ("t",) and update.topics == ()
        assert changes.leader_and_isr_for(w) is None
    assert "t" not in state.topics and "t" not in state.partitions
    with pytest.raises(UnknownTopicOrPartitionError):
        state.delete_topic("t")
    state.create_topic("t", 1, 1)  # the name is free again


def test_alter_config_sets_and_removes_overrides_in_kafka_text_form() -> None:
    state = cluster(1, settings=ControllerSettings(topic_defaults=TopicConfig(retention_ms=1000)))
    state.create_topic("t", 1, 1, {"segment.bytes": "1048576"})
    assert state.effective_config("t").retention_ms == 1000
    altered = state.alter_config(
        "t", {"retention.ms": 5, "unclean.leader.election.enable": "TRUE", "segment.bytes": None}
    )
    assert altered.overrides == {"retention.ms": "5", "unclean.leader.election.enable": "true"}
    assert state.topics["t"].overrides == altered.overrides
    assert state.effective_config("t") == TopicConfig(retention_ms=5, unclean_leader_election_enable=True)
    update = altered.changes.update_metadata_for(0)
    assert update is not None and update.topics[0].configs == (
        ConfigEntry("retention.ms", "5"),
        ConfigEntry("unclean.leader.election.enable", "true"),
    )
    assert altered.changes.leader_and_isr_for(0) is None  # configs travel in UpdateMetadata
    unchanged = state.alter_config("t", {"retention.ms": "5"})
    assert unchanged.changes.empty and unchanged.overrides == altered.overrides


@pytest.mark.parametrize(
    ("changes", "words"),
    [({"flush.mss": "1"}, "unknown topic config"), ({"min.insync.replicas": "0"}, "out of range")],
)
def test_alter_config_errors_change_nothing(changes: dict, words: str) -> None:
    state = cluster(1)
    state.create_topic("t", 1, 1)
    before = state.image()
    with pytest.raises(InvalidConfigError, match=words):
        state.alter_config("t", changes)
    assert state.image() == before
    with pytest.raises(UnknownTopicOrPartitionError):
        state.alter_config("nope", {"retention.ms": "1"})


def test_alter_config_validate_only() -> None:
    state = cluster(1)
    state.create_topic("t", 1, 1)
    result = state.alter_config("t", {"retention.ms": "7"}, validate_only=True)
    assert result.overrides == {"retention.ms": "7"} and result.changes.empty
    assert state.topics["t"].overrides == {}


def test_metadata_version_moves_by_one_per_change_and_never_otherwise() -> None:
    state = cluster(3)
    seen = [state.metadata_version]

    def step(changes) -> None:
        assert changes.metadata_version == state.metadata_version
        assert state.metadata_version - seen[-1] == (1 if changes.records else 0)
        seen.append(state.metadata_version)

    step(state.create_topic("a", 3, 2).changes)
    step(state.alter_config("a", {"retention.ms": "1"}).changes)
    step(state.alter_config("a", {"retention.ms": "1"}).changes)  # no change
    state.heartbeat(0, 1, 0, T0 + 1)  # heartbeats change no metadata
    step(state.rebalance_leaders())  # nothing to rebalance
    step(state.worker_died(1))
    step(state.worker_died(1))  # reported twice
    step(register(state, 1, incarnation=2))
    step(state.delete_topic("a"))
    assert seen == sorted(seen) and len(set(seen)) == 6


def test_metadata_response() -> None:
    state = cluster(3)
    state.create_topic("b", 2, 3)
    state.create_topic("a", 1, 1)
    every = state.metadata_response(None)
    assert [t.name for t in every.topics] == ["a", "b"]
    assert [w.worker_id for w in every.workers] == [0, 1, 2] and every.controller_id == -1
    some = state.metadata_response(["b", "missing", "bad name", "b"])
    assert [(t.name, t.error_code) for t in some.topics] == [
        ("b", 0), ("missing", UnknownTopicOrPartitionError.code), ("bad name", InvalidTopicError.code)
    ]
    part, model = some.topics[0].partitions[1], state.partitions["b"][1]
    assert (part.partition, part.error_code, part.leader_id) == (1, 0, model.leader)
    assert part.leader_epoch == model.leader_epoch
    assert (part.replicas, part.isr) == (model.replicas, model.isr)
    state.worker_died(state.partitions["a"][0].leader)
    offline = state.metadata_response(["a"]).topics[0].partitions[0]
    assert offline.leader_id == -1 and offline.error_code == LeaderNotAvailableError.code


def test_describe_topics_and_cluster() -> None:
    state = cluster(2)
    state.create_topic("t", 2, 2, {"retention.ms": "9"})
    plain = state.describe_topics(["t", "zz"])
    assert plain.topics[0].configs == () and plain.topics[1].error_code == UnknownTopicOrPartitionError.code
    assert (plain.topics[0].partitions[0].log_start_offset, plain.topics[0].partitions[0].high_watermark) == (-1, -1)
    full = state.describe_topics(None, include_configs=True, offsets={("t", 1): (3, 10, 12)})
    (topic,) = full.topics
    configs = dict((e.name, e.value) for e in topic.configs)
    assert list(configs) == list(CONFIG_KEYS)
    assert configs["retention.ms"] == "9" and configs["cleanup.policy"] == "delete"
    p1 = topic.partitions[1]
    assert (p1.log_start_offset, p1.high_watermark, p1.log_end_offset) == (3, 10, 12)
    state.worker_died(1)
    cluster_view = state.describe_cluster("cid", "tcp://127.0.0.1:7092")
    assert cluster_view.cluster_id == "cid"
    assert [(w.worker_id, w.alive, w.pid > 0) for w in cluster_view.workers] == [(0, True, True), (1, False, False)]
