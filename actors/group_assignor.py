"""The sticky, balanced assignor: which member of a consumer group should own which partition.

    assign(subscriptions, partition_counts, current) -> target assignment (member -> partitions)

``subscriptions`` maps each member to the topics it subscribes to (already resolved: regexes
matched), ``partition_counts`` each existing topic to its number of partitions, ``current`` each
member to the partitions it owns or was given (its previous target, if any).

What always holds for the result (tests/unit/actors/test_group_assignor.py checks it with
hypothesis):
- every partition of a subscribed, existing topic is assigned to exactly one member that
  subscribes to its topic; nothing else is assigned;
- balanced: when every member subscribes to the same topics, partition counts differ by at most 1
  (with mixed subscriptions: no partition can move to a member with 2 fewer that could take it);
- sticky: a member keeps every partition of ``current`` that is still valid, unless balance needs
  it elsewhere; then it gives up only as many as balance needs;
- deterministic: the same inputs give the same output (members and partitions in sorted order).

Pure: no I/O, no clock, no randomness.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple

__all__ = ["TopicPartition", "assign", "subscribed_partitions"]


class TopicPartition(NamedTuple):
    topic: str
    partition: int


def subscribed_partitions(topics: frozenset[str] | set[str], partition_counts: Mapping[str, int]) -> set[TopicPartition]:
    """Every existing partition of ``topics``."""
    return {TopicPartition(t, p) for t in topics for p in range(partition_counts.get(t, 0))}


def assign(
    subscriptions: Mapping[str, frozenset[str]],
    partition_counts: Mapping[str, int],
    current: Mapping[str, frozenset[TopicPartition]] | None = None,
) -> dict[str, frozenset[TopicPartition]]:
    members = sorted(subscriptions)
    if not members:
        return {}
    current = current or {}
    eligible = {m: subscribed_partitions(subscriptions[m], partition_counts) for m in members}
    owners: dict[TopicPartition, str] = {}
    owned: dict[str, set[TopicPartition]] = {m: set() for m in members}
    # 1. keep what members already have (first claim wins, in member order)
    for m in members:
        for tp in sorted(current.get(m, ())):
            if tp in eligible[m] and tp not in owners:
                owners[tp] = m
                owned[m].add(tp)
    # 2. give every unowned partition to the eligible member with the fewest
    everything = sorted(set().union(*eligible.values()))
    for tp in everything:
        if tp in owners:
            continue
        takers = [m for m in members if tp in eligible[m]]
        best = min(takers, key=lambda m: (len(owned[m]), m))
        owners[tp] = best
        owned[best].add(tp)
    # 3. move partitions from the fullest to the emptiest while that improves balance
    while _move_one(members, eligible, owned):
        pass
    return {m: frozenset(owned[m]) for m in members}


def _move_one(members: list[str], eligible: dict[str, set[TopicPartition]], owned: dict[str, set[TopicPartition]]) -> bool:
    """Move one partition from a member to one with at least 2 fewer that can take it; False if none."""
    by_load = sorted(members, key=lambda m: (-len(owned[m]), m))
    for giver in by_load:
        for taker in reversed(by_load):
            if len(owned[giver]) - len(owned[taker]) <= 1:
                break
            movable = sorted(tp for tp in owned[giver] if tp in eligible[taker])
            if movable:
                tp = movable[-1]  # the last one: members keep their lowest partitions
                owned[giver].discard(tp)
                owned[taker].add(tp)
                return True
    return False
