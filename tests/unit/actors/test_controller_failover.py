"""Tests for kbroker.actors.controller_state: workers, elections, ISR changes, rebalance, restart."""

from __future__ import annotations

import random

import pytest

from _controller_helpers import T0, check_invariants, cluster, endpoint, pid, register
from kbroker.actors.controller_errors import IneligibleReplicaError, InvalidUpdateVersionError
from kbroker.actors.controller_model import WorkerRegistration
from kbroker.actors.controller_state import ControllerSettings, ControllerState
from kbroker.errors import (
    FencedLeaderEpochError,
    InvalidRequestError,
    NotLeaderError,
    StaleMemberEpochError,
    UnknownLeaderEpochError,
    UnknownMemberError,
    UnknownTopicOrPartitionError,
)
from kbroker.transport.messages_internal import UpdateMetadata


def led_by(state: ControllerState, worker_id: int) -> list[int]:
    return [p.partition for p in state.partitions["t"] if p.leader == worker_id]


# --- registration and heartbeats --------------------------------------------------------------


def test_registration_sends_the_worker_everything_and_the_others_its_endpoint() -> None:
    state = cluster(2)
    state.create_topic("t", 4, 2)
    changes = register(state, 2)
    assert changes.records[0] == WorkerRegistration(2, endpoint(2), 1)
    full = changes.update_metadata_for(2)
    assert full is not None and full.full and [t.name for t in full.topics] == ["t"]
    for w in (0, 1):
        update = changes.update_metadata_for(w)
        assert update is not None and not update.full and update.topics == ()
        assert [e.worker_id for e in update.workers] == [0, 1, 2]
    assert changes.leader_and_isr_for(2) is None  # it holds no replica yet


def test_a_duplicate_registration_resends_without_changing_metadata() -> None:
    state = cluster(3)
    state.create_topic("t", 3, 3)
    version = state.metadata_version
    changes = register(state, 1)
    assert changes.records == () and state.metadata_version == version
    assert [type(s.message).__name__ for s in changes.sends] == ["UpdateMetadata", "LeaderAndIsr"]
    assert {s.worker_id for s in changes.sends} == {1}


def test_outdated_incarnations_cannot_register() -> None:
    state = cluster(2)
    register(state, 0, incarnation=5)
    with pytest.raises(StaleMemberEpochError, match="incarnation 4 is outdated"):
        register(state, 0, incarnation=4)
    state.worker_died(0)
    with pytest.raises(StaleMemberEpochError, match="dead"):
        register(state, 0, incarnation=5)  # that process is gone
    with pytest.raises(InvalidRequestError):
        state.register_worker(-1, "tcp://x:1", 1, 1, T0)


def test_heartbeat_errors_tell_the_worker_what_to_do() -> None:
    state = cluster(2)
    with pytest.raises(UnknownMemberError, match="register again"):
        state.heartbeat(9, 1, 0, T0)
    with pytest.raises(UnknownMemberError):
        state.heartbeat(0, 2, 0, T0)  # a newer incarnation that never registered
    register(state, 0, incarnation=3)
    with pytest.raises(StaleMemberEpochError, match="must exit"):
        state.heartbeat(0, 1, 0, T0)
    state.fence_worker(1)
    with pytest.raises(UnknownMemberError, match="fenced"):
        state.heartbeat(1, 1, 0, T0)


def test_heartbeat_answers_the_version_and_resends_metadata_to_a_worker_left_behind() -> None:
    state = cluster(1)
    first = state.heartbeat(0, 1, 0, T0 + 10)
    assert first.response.error_code == 0 and first.response.metadata_version == state.metadata_version
    assert first.full_metadata is None  # an update may still be in flight: wait one interval
    state.create_topic("t", 1, 1)
    up_to_date = state.heartbeat(0, 1, state.metadata_version - 1, T0 + 20)
    assert up_to_date.full_metadata is None  # behind, but less than a whole interval
    behind = state.heartbeat(0, 1, state.metadata_version - 1, T0 + 30)
    assert isinstance(behind.full_metadata, UpdateMetadata) and behind.full_metadata.full
    assert state.heartbeat(0, 1, state.metadata_version, T0 + 40).full_metadata is None


# --- failure detection and elections ------------------------------------------------------------


def test_session_timeout_fences_a_silent_worker_and_moves_its_leaderships() -> None:
    state = cluster(3, settings=ControllerSettings(session_timeout_ms=1000))
    state.create_topic("t", 6, 3)
    for w in (1, 2):
        state.heartbeat(w, 1, 0, T0 + 900)
    assert state.tick(T0 + 1000).empty  # exactly the timeout: still alive
    changes = state.tick(T0 + 1001)
    assert state.live_workers() == [1, 2] and state.workers[0].state.value == "fenced"
    assert {e.previous_leader for e in changes.elections} == {0} and led_by(state, 0) == []
    assert all(0 not in p.isr for p in state.partitions["t"])
    assert changes.leader_and_isr_for(0) is None  # it is not alive: nothing is sent to it
    check_invariants(state)
    register(state, 0)  # the same process may come back by registering again
    assert state.live_workers() == [0, 1, 2]


def test_worker_died_moves_leadership_to_the_next_in_sync_replica_with_a_new_epoch() -> None:
    state = cluster(3)
    state.create_topic("t", 3, 3)
    before = {p.partition: p for p in state.partitions["t"]}
    changes = state.worker_died(0, pid(0))
    for p in state.partitions["t"]:
        old = before[p.partition]
        assert 0 not in p.isr and p.partition_epoch == old.partition_epoch + 1
        if old.leader == 0:
            assert p.leader == next(r for r in old.replicas if r != 0) and p.leader_epoch == old.leader_epoch + 1
        else:
            assert p.leader == old.leader and p.leader_epoch == old.leader_epoch
    moved = changes.leader_and_isr_for(1)
    assert moved is not None and {s.partition for t in moved.topics for s in t.partitions} == {
        p for p, old in before.items() if old.leader == 0
    }
    check_invariants(state)


def test_worker_died_ignores_stale_and_unknown_reports() -> None:
    state = cluster(2)
    state.create_topic("t", 2, 2)
    version = state.metadata_version
    assert state.worker_died(0, pid=999).empty  # an earlier process of worker 0
    assert state.worker_died(7).empty
    assert state.metadata_version == version and state.live_workers() == [0, 1]


def test_clean_election_leaves_a_partition_offline_until_an_isr_member_returns() -> None:
    state = cluster(3)
    state.create_topic("t", 1, 2)
    (part,) = state.partitions["t"]
    leader, follower = part.replicas
    state.worker_died(follower)
    state.worker_died(leader)
    (part,) = state.partitions["t"]
    assert part.leader == -1 and part.isr == (leader,)
    register(state, follower, incarnation=2)  # out of sync: may not lead
    assert state.partitions["t"][0].leader == -1
    changes = register(state, leader, incarnation=2)
    (part,) = state.partitions["t"]
    assert part.leader == leader and part.isr == (leader,) and not changes.unclean_elections
    check_invariants(state)


def test_unclean_election_lets_any_live_replica_lead_and_flags_data_loss() -> None:
    state = cluster(3)
    state.create_topic("t", 1, 2, {"unclean.leader.election.enable": "true"})
    leader, follower = state.partitions["t"][0].replicas
    state.worker_died(follower)
    state.worker_died(leader)
    assert state.partitions["t"][0].leader == -1  # nobody alive
    changes = register(state, follower, incarnation=2)
    (part,) = state.partitions["t"]
    assert part.leader == follower and part.isr == (follower,)
    assert [e.unclean for e in changes.unclean_elections] == [True]


def test_turning_unclean_election_on_revives_offline_partitions() -> None:
    state = cluster(2)
    state.create_topic("t", 1, 2)
    leader, follower = state.partitions["t"][0].replicas
    state.alter_isr(leader, "t", 0, 0, 0, [leader])  # the follower fell behind
    state.worker_died(leader)
    assert state.partitions["t"][0].leader == -1
    altered = state.alter_config("t", {"unclean.leader.election.enable": "true"})
    assert state.partitions["t"][0].leader == follower
    assert altered.changes.unclean_elections and altered.changes.leader_and_isr_for(follower) is not None


def test_restart_flow_follower_first_then_isr_then_preferred_leadership() -> None:
    state = cluster(3)
    state.create_topic("t", 3, 3)
    preferred = led_by(state, 0)
    state.worker_died(0)
    changes = register(state, 0, incarnation=2)
    assert led_by(state, 0) == [] and all(0 not in p.isr for p in state.partitions["t"])
    mine = changes.leader_and_isr_for(0)
    assert mine is not None and len(mine.topics[0].partitions) == 3  # every replica it holds, as follower
    assert state.rebalance_leaders().empty  # not in sync yet
    for p in list(state.partitions["t"]):  # each leader sees it catch up and expands its ISR
        state.alter_isr(p.leader, "t", p.partition, p.leader_epoch, p.partition_epoch, [*p.isr, 0])
    assert all(0 in p.isr for p in state.partitions["t"])
    rebalance = state.rebalance_leaders()
    assert led_by(state, 0) == preferred and len(rebalance.elections) == len(preferred)
    assert all(p.leader == p.replicas[0] for p in state.partitions["t"])
    check_invariants(state)


def test_a_new_incarnation_of_a_live_worker_is_handled_as_its_death_first() -> None:
    state = cluster(2)
    state.create_topic("t", 2, 2)
    leads = led_by(state, 0)
    register(state, 0, incarnation=2)  # restarted before the supervisor's notice arrived
    assert led_by(state, 0) == [] and all(0 not in p.isr for p in state.partitions["t"])
    assert all(state.partitions["t"][p].leader_epoch == 1 for p in leads)
    assert state.worker_died(0, pid(0, 1)).empty  # the late notice about the old process
    assert state.live_workers() == [0, 1]


# --- ISR changes ------------------------------------------------------------------------------


def test_alter_isr_shrinks_and_expands_with_a_new_partition_epoch() -> None:
    state = cluster(3)
    state.create_topic("t", 1, 3)
    p = state.partitions["t"][0]
    shrunk = state.alter_isr(p.leader, "t", 0, p.leader_epoch, p.partition_epoch, [p.leader, p.replicas[1]])
    after = state.partitions["t"][0]
    assert after.isr == (p.leader, p.replicas[1]) and after.partition_epoch == 1 and after.leader_epoch == 0
    assert shrunk.state == after.to_state() and shrunk.response().state == after.to_state()
    assert shrunk.changes.partitions == (("t", 0),) and not shrunk.changes.elections
    assert all(s.message.__class__ is UpdateMetadata for s in shrunk.changes.sends)  # no LeaderAndIsr
    expanded = state.alter_isr(p.leader, "t", 0, 0, 1, list(reversed(p.replicas)))
    assert state.partitions["t"][0].isr == p.replicas  # kept in replica order
    assert expanded.state.partition_epoch == 2


def test_alter_isr_fencing_and_validation() -> None:
    state = cluster(3)
    state.create_topic("t", 1, 3)
    p = state.partitions["t"][0]
    other = p.replicas[1]
    state.worker_died(p.leader)
    state.register_worker(p.leader, endpoint(p.leader), 5, 2, T0)
    q = state.partitions["t"][0]
    assert q.leader == other and q.leader_epoch == 1
    cases = [
        ((p.leader, "t", 0, 0, 0, list(p.replicas)), FencedLeaderEpochError),  # the deposed leader
        ((other, "t", 0, 2, q.partition_epoch, [other]), UnknownLeaderEpochError),
        ((p.leader, "t", 0, 1, q.partition_epoch, [p.leader]), NotLeaderError),
        ((other, "t", 0, 1, q.partition_epoch - 1, [other]), InvalidUpdateVersionError),
        ((other, "t", 0, 1, q.partition_epoch, [other, other]), InvalidRequestError),
        ((other, "t", 0, 1, q.partition_epoch, [q.replicas[2]]), InvalidRequestError),  # without the leader
        ((other, "t", 0, 1, q.partition_epoch, [other, 9]), InvalidRequestError),  # not a replica
        ((other, "t", 1, 1, q.partition_epoch, [other]), UnknownTopicOrPartitionError),
        ((other, "u", 0, 1, q.partition_epoch, [other]), UnknownTopicOrPartitionError),
    ]
    for args, error in cases:
        before = state.image()
        with pytest.raises(error):
            state.alter_isr(*args)
        assert state.image() == before, args


def test_alter_isr_refuses_dead_replicas_and_accepts_a_retry_of_an_applied_change() -> None:
    state = cluster(3)
    state.create_topic("t", 1, 3)
    p = state.partitions["t"][0]
    dead = p.replicas[2]
    state.worker_died(dead)
    q = state.partitions["t"][0]
    with pytest.raises(IneligibleReplicaError, match=str([dead])):
        state.alter_isr(q.leader, "t", 0, q.leader_epoch, q.partition_epoch, [*q.isr, dead])
    shrink = [q.leader]
    state.alter_isr(q.leader, "t", 0, q.leader_epoch, q.partition_epoch, shrink)
    retry = state.alter_isr(q.leader, "t", 0, q.leader_epoch, q.partition_epoch, shrink)  # reply was lost
    assert retry.changes.empty and retry.state.isr == tuple(shrink)
    same = state.alter_isr(q.leader, "t", 0, q.leader_epoch, retry.state.partition_epoch, shrink)
    assert same.changes.empty


# --- controller restart ------------------------------------------------------------------------


def test_start_takes_every_leader_offline_until_in_sync_replicas_register() -> None:
    state = cluster(3)
    state.create_topic("t", 3, 3)
    image = state.image()
    restarted, changes = ControllerState.start(image, rng=random.Random(1))
    assert restarted.controller_epoch == image.controller_epoch + 1
    assert changes.metadata_version == image.metadata_version + 1 and changes.sends == ()
    assert restarted.live_workers() == [] and all(w.pid == -1 for w in restarted.workers.values())
    for p in restarted.partitions["t"]:
        old = image.partitions[p.tp]
        assert p.leader == -1 and p.isr == old.isr and p.leader_epoch == old.leader_epoch + 1
    with pytest.raises(StaleMemberEpochError):
        register(restarted, 2)  # incarnation 1 of worker 2 is on record: that process is gone
    register(restarted, 2, incarnation=2)
    assert all(p.leader == 2 and p.isr == (2,) for p in restarted.partitions["t"])
    check_invariants(restarted)
