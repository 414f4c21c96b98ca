"""Tests for kbroker.actors.leader_election: reconcile (elections, ISR repair) and preferred."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kbroker.actors.controller_model import NO_LEADER, Partition
from kbroker.actors.leader_election import Election, preferred, reconcile


def part(leader: int = 0, isr: tuple[int, ...] = (0, 1, 2), replicas: tuple[int, ...] = (0, 1, 2)) -> Partition:
    return Partition("t", 0, replicas, leader, 5, 9, isr)


def test_nothing_changes_while_leader_and_isr_are_alive() -> None:
    assert reconcile(part(), {0, 1, 2}, False) is None
    assert reconcile(part(), {0, 1, 2, 7}, True) is None


def test_a_dead_follower_leaves_the_isr_without_an_election() -> None:
    outcome = reconcile(part(), {0, 2}, False)
    assert outcome is not None and outcome.election is None
    assert outcome.partition == Partition("t", 0, (0, 1, 2), 0, 5, 10, (0, 2))


def test_a_dead_leader_is_replaced_by_the_first_live_isr_member_in_preferred_order() -> None:
    outcome = reconcile(part(leader=0, isr=(2, 0, 1)), {1, 2}, False)
    assert outcome is not None
    assert outcome.partition.leader == 1  # replicas order (0, 1, 2), not ISR order
    assert outcome.partition.isr == (2, 1)
    assert (outcome.partition.leader_epoch, outcome.partition.partition_epoch) == (6, 10)
    assert outcome.election == Election("t", 0, 0, 1, 6, unclean=False)


def test_no_live_isr_member_and_clean_election_goes_offline_keeping_the_isr() -> None:
    outcome = reconcile(part(leader=0, isr=(0,)), {1, 2}, False)
    assert outcome is not None
    assert outcome.partition.leader == NO_LEADER and outcome.partition.isr == (0,)
    assert outcome.partition.leader_epoch == 6
    assert outcome.election == Election("t", 0, 0, NO_LEADER, 6)
    # still offline: nothing more happens until the ISR member returns
    assert reconcile(outcome.partition, {1, 2}, False) is None
    back = reconcile(outcome.partition, {0, 1, 2}, False)
    assert back is not None and back.partition.leader == 0 and back.partition.isr == (0,)
    assert back.partition.leader_epoch == 7


def test_unclean_election_picks_any_live_replica_and_flags_data_loss() -> None:
    outcome = reconcile(part(leader=0, isr=(0,)), {2, 1}, True)
    assert outcome is not None
    assert outcome.partition.leader == 1 and outcome.partition.isr == (1,)
    assert outcome.election is not None and outcome.election.unclean


def test_unclean_with_no_live_replica_stays_offline() -> None:
    outcome = reconcile(part(leader=0, isr=(0,)), {9}, True)
    assert outcome is not None and outcome.partition.leader == NO_LEADER and outcome.partition.isr == (0,)


def test_preferred_moves_leadership_back_only_when_in_sync_and_alive() -> None:
    moved = preferred(part(leader=1, isr=(1, 2, 0)), {0, 1, 2})
    assert moved is not None and moved.partition.leader == 0 and moved.partition.leader_epoch == 6
    assert moved.partition.isr == (1, 2, 0)
    assert preferred(part(leader=1, isr=(1, 2)), {0, 1, 2}) is None  # not in sync yet
    assert preferred(part(leader=1, isr=(1, 2, 0)), {1, 2}) is None  # not alive
    assert preferred(part(leader=0), {0, 1, 2}) is None  # already leads


@settings(max_examples=300, deadline=None)
@given(
    replicas=st.lists(st.integers(0, 5), min_size=1, max_size=4, unique=True),
    data=st.data(),
)
def test_outcomes_keep_the_partition_invariants(replicas: list[int], data) -> None:
    isr = data.draw(st.lists(st.sampled_from(replicas), min_size=1, unique=True), label="isr")
    leader = data.draw(st.sampled_from([NO_LEADER, *isr]), label="leader")
    live = data.draw(st.sets(st.integers(0, 6)), label="live")
    unclean = data.draw(st.booleans(), label="unclean")
    before = Partition("t", 0, tuple(replicas), leader, 3, 3, tuple(isr))
    outcome = reconcile(before, live, unclean)
    after = outcome.partition if outcome else before
    assert after.isr and set(after.isr) <= set(after.replicas)
    assert after.leader == NO_LEADER or (after.leader in live and after.leader in after.isr)
    assert after.leader_epoch >= before.leader_epoch and after.partition_epoch >= before.partition_epoch
    if outcome is not None:
        assert after.partition_epoch == before.partition_epoch + 1
        assert (outcome.election is not None) == (after.leader != before.leader)
    if after.leader != NO_LEADER:
        assert set(after.isr) <= live
