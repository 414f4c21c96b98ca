"""One group's membership (KIP-848): joins, incremental moves, sessions, static members, commit fencing."""

from __future__ import annotations

import pytest

from kbroker.actors.group_assignor import TopicPartition as TP
from kbroker.actors.group_state import TRANSITIONS, Group, GroupState, Heartbeat
from kbroker.errors import FencedMemberEpochError, GroupNotEmptyError, InvalidRequestError, StaleMemberEpochError, UnknownMemberError

COUNTS = {"t": 6, "u": 2, "__consumer_offsets": 8}
SESSION = 3000


def hb(member: str = "", epoch: int = 0, owned: frozenset = frozenset(), topics=("t",), regex=None, instance=None) -> Heartbeat:
    return Heartbeat(member, epoch, instance, "c", SESSION, frozenset(topics), regex, frozenset(owned))


class Sim:
    """Members that do what a well-behaved client does: report what they were told to own."""

    def __init__(self, counts: dict = COUNTS) -> None:
        self.group = Group("g")
        self.counts = counts
        self.now = 0
        self.members: dict[str, tuple[int, frozenset]] = {}  # id -> (epoch, owned)
        self.subscriptions: dict[str, dict] = {}

    def join(self, **kw) -> str:
        r = self.group.heartbeat(hb(**kw), self.now, self.counts)
        self.members[r.member_id] = (r.member_epoch, r.assignment)
        self.subscriptions[r.member_id] = {k: v for k, v in kw.items() if k in ("topics", "regex")}
        return r.member_id

    def beat(self, member: str) -> None:
        epoch, owned = self.members[member]
        r = self.group.heartbeat(hb(member, epoch, owned, **self.subscriptions[member]), self.now, self.counts)
        self.members[member] = (r.member_epoch, r.assignment)

    def settle(self, rounds: int = 6) -> None:
        for _ in range(rounds):
            for m in list(self.members):
                self.beat(m)
            self.check()

    def check(self) -> None:
        told = [tp for m in self.group.members.values() for tp in m.assigned]
        assert len(told) == len(set(told)), "a partition was given to two members"
        held = [tp for m in self.group.members.values() for tp in m.held]
        assert len(held) == len(set(held)), "a partition is held by two members"

    def owned(self, member: str) -> frozenset:
        return self.members[member][1]


def test_state_table_has_every_state_and_dead_is_final() -> None:
    assert set(TRANSITIONS) == set(GroupState)
    assert TRANSITIONS[GroupState.DEAD] == frozenset()


def test_three_members_split_six_partitions_and_become_stable() -> None:
    sim = Sim()
    ids = [sim.join() for _ in range(3)]
    sim.settle()
    assert sorted(len(sim.owned(m)) for m in ids) == [2, 2, 2]
    assert sim.group.state is GroupState.STABLE
    assert set().union(*(sim.owned(m) for m in ids)) == {TP("t", p) for p in range(6)}


def test_a_partition_moves_only_after_its_old_owner_released_it() -> None:
    sim = Sim()
    a = sim.join()
    sim.settle()
    assert len(sim.owned(a)) == 6
    b = sim.join()
    assert sim.owned(b) == frozenset()  # a still holds everything
    assert sim.group.state is GroupState.RECONCILING
    sim.beat(a)  # a is told to own 3: the other 3 are revoked, but a has not released them yet
    assert len(sim.owned(a)) == 3
    sim.beat(b)
    assert sim.owned(b) == frozenset()  # still held by a (a's last report listed them)
    sim.beat(a)  # a reports it owns only its 3
    sim.beat(b)
    assert len(sim.owned(b)) == 3 and not sim.owned(a) & sim.owned(b)
    sim.settle()
    assert sim.group.state is GroupState.STABLE


def test_leaving_and_expiring_members_give_their_partitions_to_the_others() -> None:
    sim = Sim()
    a, b, c = (sim.join() for _ in range(3))
    sim.settle()
    kept = {m: sim.owned(m) for m in (a, b, c)}
    epoch = sim.group.epoch
    sim.group.leave(b, static=False, now_ms=sim.now, partition_counts=COUNTS)
    del sim.members[b]
    assert sim.group.epoch == epoch + 1
    sim.settle()
    assert sorted(len(sim.owned(m)) for m in (a, c)) == [3, 3]
    assert kept[a] <= sim.owned(a) and kept[c] <= sim.owned(c)  # sticky
    # c stops heartbeating: removed once its session timeout passed, not before
    sim.now += SESSION - 1
    sim.beat(a)
    assert sim.group.expire(sim.now, COUNTS) == []
    sim.now += 2
    sim.beat(a)
    assert sim.group.expire(sim.now, COUNTS) == [c]
    del sim.members[c]
    sim.settle()
    assert len(sim.owned(a)) == 6
    with pytest.raises(UnknownMemberError):
        sim.group.heartbeat(hb(c, 5), sim.now, COUNTS)


def test_stale_epochs_are_fenced_and_commits_checked() -> None:
    sim = Sim()
    a = sim.join()
    sim.settle()
    epoch, owned = sim.members[a]
    with pytest.raises(FencedMemberEpochError):
        sim.group.heartbeat(hb(a, epoch + 7, owned), sim.now, COUNTS)
    sim.group.check_commit(a, epoch, set(owned))
    with pytest.raises(StaleMemberEpochError, match="epoch"):
        sim.group.check_commit(a, epoch + 7, set(owned))
    with pytest.raises(UnknownMemberError):
        sim.group.check_commit("nobody", 1, {TP("t", 0)})
    b = sim.join()
    sim.settle()
    with pytest.raises(StaleMemberEpochError, match="does not own"):
        sim.group.check_commit(a, sim.members[a][0], set(sim.owned(b)))
    with pytest.raises(GroupNotEmptyError):
        sim.group.check_commit("", -1, {TP("t", 0)})


def test_outside_commits_only_for_an_empty_group() -> None:
    group = Group("g")
    group.check_commit("", -1, {TP("t", 0)})


def test_regex_subscriptions_follow_new_topics_but_not_internal_ones() -> None:
    counts = {"orders-1": 2, "__consumer_offsets": 8, "other": 1}
    sim = Sim(counts)
    a = sim.join(topics=(), regex=r"orders-\d+|__.*")
    sim.settle()
    assert sim.owned(a) == {TP("orders-1", 0), TP("orders-1", 1)}
    counts["orders-2"] = 1
    assert sim.group.metadata_changed(counts)
    assert not sim.group.metadata_changed(counts)
    sim.settle()
    assert TP("orders-2", 0) in sim.owned(a)
    counts["orders-1"] = 3  # partitions added
    sim.settle()
    assert TP("orders-1", 2) in sim.owned(a)
    with pytest.raises(InvalidRequestError, match="regex"):
        sim.group.heartbeat(hb(topics=(), regex="(bad"), 0, counts)


def test_static_member_back_in_time_gets_its_partitions_without_a_new_epoch() -> None:
    sim = Sim()
    a = sim.join(instance="i-a")
    b = sim.join(instance="i-b")
    sim.settle()
    before, epoch = sim.owned(a), sim.group.epoch
    sim.group.heartbeat(hb(a, -2), sim.now, COUNTS)  # static leave: keeps its partitions
    del sim.members[a]
    sim.settle()
    assert len(sim.owned(b)) == 3  # b did not get a's partitions
    sim.now += SESSION // 2
    a2 = sim.join(instance="i-a")
    assert a2 != a and sim.owned(a2) == before and sim.group.epoch == epoch
    sim.settle()
    # a static member that stays away past its session is removed, and its partitions move
    sim.group.heartbeat(hb(a2, -2), sim.now, COUNTS)
    del sim.members[a2]
    sim.now += SESSION + 1
    sim.beat(b)
    assert sim.group.expire(sim.now, COUNTS) == [a2]
    sim.settle()
    assert len(sim.owned(b)) == 6


def test_dead_is_final_and_empty_group_after_last_leave() -> None:
    sim = Sim()
    a = sim.join()
    sim.settle()
    sim.group.leave(a, static=False, now_ms=0, partition_counts=COUNTS)
    assert sim.group.state is GroupState.EMPTY
    sim.group.mark_dead()
    with pytest.raises(RuntimeError, match="no transition"):
        sim.group._set_state(GroupState.ASSIGNING)
