"""ControllerState.alter_replica_status: a replica whose storage failed leaves the ISR and leadership."""

from __future__ import annotations

import pytest

from _controller_helpers import check_invariants, cluster, register
from kbroker.actors.controller_errors import IneligibleReplicaError
from kbroker.errors import InvalidRequestError, StaleMemberEpochError, UnknownTopicOrPartitionError


def _leader_and_follower(state):
    part = state.partition("t", 0)
    return part.leader, next(r for r in part.replicas if r != part.leader)


def test_an_offline_leader_replica_loses_leadership_to_a_live_isr_member() -> None:
    state = cluster(3)
    state.create_topic("t", 2, 3)
    leader, _ = _leader_and_follower(state)
    epoch = state.partition("t", 0).leader_epoch
    other = state.partition("t", 1)
    changes = state.alter_replica_status(leader, 1, "t", 0, offline=True)
    part = state.partition("t", 0)
    assert part.leader not in (leader, -1) and leader not in part.isr and part.leader_epoch == epoch + 1
    assert [(e.previous_leader, e.unclean) for e in changes.elections] == [(leader, False)]
    assert state.partition("t", 1) == other  # only that partition: the worker still serves the rest
    assert changes.leader_and_isr_for(part.leader) is not None
    check_invariants(state)


def test_an_offline_follower_leaves_the_isr_and_cannot_rejoin_until_online() -> None:
    state = cluster(3)
    state.create_topic("t", 1, 3)
    leader, follower = _leader_and_follower(state)
    state.alter_replica_status(follower, 1, "t", 0, offline=True)
    part = state.partition("t", 0)
    assert part.leader == leader and follower not in part.isr
    with pytest.raises(IneligibleReplicaError, match="offline"):
        state.alter_isr(leader, "t", 0, part.leader_epoch, part.partition_epoch, (*part.isr, follower))
    assert state.alter_replica_status(follower, 1, "t", 0, offline=False).elections == ()
    state.alter_isr(leader, "t", 0, part.leader_epoch, part.partition_epoch, (*part.isr, follower))
    assert follower in state.partition("t", 0).isr
    check_invariants(state)


def test_an_offline_preferred_replica_gets_no_leadership_back_from_the_rebalance() -> None:
    state = cluster(3)
    state.create_topic("t", 1, 3)
    preferred = state.partition("t", 0).preferred_leader
    state.alter_replica_status(preferred, 1, "t", 0, offline=True)
    assert state.rebalance_leaders().elections == ()
    assert state.partition("t", 0).leader != preferred


def test_the_last_isr_member_going_offline_takes_the_partition_offline_unless_unclean() -> None:
    state = cluster(2)
    state.create_topic("t", 1, 2)
    leader, follower = _leader_and_follower(state)
    state.alter_replica_status(follower, 1, "t", 0, offline=True)
    state.alter_replica_status(follower, 1, "t", 0, offline=False)  # online, but out of sync
    state.alter_replica_status(leader, 1, "t", 0, offline=True)
    assert state.partition("t", 0).leader == -1
    changes = state.alter_config("t", {"unclean.leader.election.enable": "true"}).changes
    assert state.partition("t", 0).leader == follower and changes.unclean_elections
    check_invariants(state)


def test_a_new_registration_or_death_clears_the_workers_offline_marks() -> None:
    state = cluster(3)
    state.create_topic("t", 1, 3)
    leader, follower = _leader_and_follower(state)
    state.alter_replica_status(follower, 1, "t", 0, offline=True)
    register(state, follower, incarnation=2)  # a new process opens its logs afresh
    assert state.offline_replicas == set()
    state.alter_replica_status(leader, 1, "t", 0, offline=True)
    state.worker_died(leader)
    assert state.offline_replicas == set()


def test_reports_are_checked() -> None:
    state = cluster(3)
    state.create_topic("t", 1, 2)
    outsider = next(w for w in range(3) if w not in state.partition("t", 0).replicas)
    with pytest.raises(InvalidRequestError, match="holds no replica"):
        state.alter_replica_status(outsider, 1, "t", 0, offline=True)
    with pytest.raises(UnknownTopicOrPartitionError):
        state.alter_replica_status(0, 1, "nope", 0, offline=True)
    with pytest.raises(StaleMemberEpochError):
        state.alter_replica_status(0, 7, "t", 0, offline=True)
    leader = state.partition("t", 0).leader
    first = state.alter_replica_status(leader, 1, "t", 0, offline=True)
    again = state.alter_replica_status(leader, 1, "t", 0, offline=True)  # a retried report: nothing new
    assert first.elections and again.elections == () and again.records == ()
