"""The sticky balanced assignor: ownership, balance and stickiness as properties (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kbroker.actors.group_assignor import TopicPartition as TP
from kbroker.actors.group_assignor import assign, subscribed_partitions

TOPICS = ["a", "b", "c"]

counts_st = st.dictionaries(st.sampled_from(TOPICS), st.integers(0, 12), min_size=1)
members_st = st.lists(st.text("mnop", min_size=1, max_size=3), min_size=1, max_size=7, unique=True)


def _all(counts: dict[str, int], topics: frozenset[str]) -> set[TP]:
    return subscribed_partitions(topics, counts)


def test_six_partitions_three_members_two_each() -> None:
    subs = {m: frozenset({"t"}) for m in ("m1", "m2", "m3")}
    out = assign(subs, {"t": 6})
    assert sorted(len(v) for v in out.values()) == [2, 2, 2]
    assert set().union(*out.values()) == {TP("t", p) for p in range(6)}


def test_a_member_leaving_moves_only_its_partitions() -> None:
    subs = {m: frozenset({"t"}) for m in ("m1", "m2", "m3")}
    before = assign(subs, {"t": 6})
    del subs["m2"]
    after = assign(subs, {"t": 6}, before)
    for m in ("m1", "m3"):
        assert before[m] <= after[m]
    assert sorted(len(v) for v in after.values()) == [3, 3]


def test_a_member_joining_takes_only_what_balance_needs() -> None:
    subs = {m: frozenset({"t"}) for m in ("m1", "m2")}
    before = assign(subs, {"t": 6})
    subs["m3"] = frozenset({"t"})
    after = assign(subs, {"t": 6}, before)
    assert len(after["m3"]) == 2
    for m in ("m1", "m2"):
        assert len(before[m] & after[m]) == 2  # gave one partition each, kept two


def test_members_get_only_topics_they_subscribe_to() -> None:
    subs = {"x": frozenset({"a"}), "y": frozenset({"b"})}
    out = assign(subs, {"a": 3, "b": 1, "c": 5})
    assert out["x"] == {TP("a", 0), TP("a", 1), TP("a", 2)} and out["y"] == {TP("b", 0)}


def test_no_members_nothing_assigned_and_output_is_deterministic() -> None:
    assert assign({}, {"a": 3}) == {}
    subs = {m: frozenset({"a", "b"}) for m in ("q", "p", "r")}
    assert assign(subs, {"a": 5, "b": 2}) == assign(dict(reversed(list(subs.items()))), {"b": 2, "a": 5})


@settings(max_examples=300, deadline=None)
@given(members=members_st, counts=counts_st, data=st.data())
def test_every_partition_owned_once_by_a_subscriber(members: list[str], counts: dict[str, int], data: st.DataObject) -> None:
    subs = {m: frozenset(data.draw(st.sets(st.sampled_from(TOPICS), min_size=1), label=m)) for m in members}
    out = assign(subs, counts)
    seen: list[TP] = [tp for tps in out.values() for tp in tps]
    assert len(seen) == len(set(seen))  # at most one owner
    wanted = set().union(*(_all(counts, t) for t in subs.values()))
    assert set(seen) == wanted  # every subscribed partition has one
    for m, tps in out.items():
        assert tps <= _all(counts, subs[m])
    # no partition could move to a member with 2 fewer that subscribes to it
    for giver in out:
        for taker in out:
            if len(out[giver]) - len(out[taker]) > 1:
                assert not any(tp.topic in subs[taker] for tp in out[giver])


@settings(max_examples=300, deadline=None)
@given(members=members_st, counts=counts_st, data=st.data())
def test_same_subscriptions_balanced_within_one_and_sticky(members: list[str], counts: dict[str, int], data: st.DataObject) -> None:
    topics = frozenset(counts)
    subs = {m: topics for m in members}
    before = assign(subs, counts)
    sizes = [len(v) for v in before.values()]
    assert max(sizes) - min(sizes) <= 1
    # the group changes: some leave, some join; the stayers keep what balance allows
    leaving = set(data.draw(st.lists(st.sampled_from(members), unique=True, max_size=len(members) - 1), label="leaving"))
    joining = data.draw(st.lists(st.text("xyz", min_size=1, max_size=2), unique=True, max_size=3), label="joining")
    after_subs = {m: topics for m in members if m not in leaving} | {j: topics for j in joining}
    after = assign(after_subs, counts, before)
    sizes = [len(v) for v in after.values()]
    assert max(sizes) - min(sizes) <= 1
    total = sum(counts.values())
    floor = total // len(after_subs)
    for m in after_subs:
        if m in before:
            assert len(before[m] & after[m]) >= min(len(before[m]), floor), f"{m} lost more than balance needs"
