"""Tests for kbroker.actors.placement: Kafka's rack-unaware replica assignment."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kbroker.actors.placement import assign_replicas
from kbroker.errors import InvalidPartitionsError, InvalidReplicationFactorError


@settings(max_examples=200, deadline=None)
@given(
    workers=st.sets(st.integers(0, 50), min_size=1, max_size=8),
    partitions=st.integers(1, 40),
    data=st.data(),
)
def test_every_partition_gets_distinct_replicas_on_given_workers(workers: set[int], partitions: int, data) -> None:
    rf = data.draw(st.integers(1, len(workers)), label="replication factor")
    seed = data.draw(st.integers(0, 2**32), label="seed")
    assignment = assign_replicas(sorted(workers), partitions, rf, rng=random.Random(seed))
    assert len(assignment) == partitions
    for replicas in assignment:
        assert len(replicas) == rf
        assert len(set(replicas)) == rf
        assert set(replicas) <= workers


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_leaders_round_robin_within_a_topic(n: int) -> None:
    assignment = assign_replicas(list(range(n)), 4 * n, min(n, 3), rng=random.Random(1))
    leaders = Counter(replicas[0] for replicas in assignment)
    assert leaders == {w: 4 for w in range(n)}
    # consecutive partitions: consecutive leaders
    firsts = [replicas[0] for replicas in assignment]
    assert all((b - a) % n == 1 % n for a, b in zip(firsts, firsts[1:]))


def test_followers_spread_evenly_too() -> None:
    assignment = assign_replicas([0, 1, 2, 3], 12, 3, rng=random.Random(5))
    per_worker = Counter(w for replicas in assignment for w in replicas)
    assert per_worker == {0: 9, 1: 9, 2: 9, 3: 9}


def test_leaders_even_over_many_single_partition_topics_with_leader_counts() -> None:
    rng = random.Random(11)
    counts: Counter[int] = Counter()
    for _ in range(100):
        (replicas,) = assign_replicas([0, 1, 2, 3], 1, 2, rng=rng, leader_counts=counts)
        counts[replicas[0]] += 1
    assert max(counts.values()) - min(counts.values()) <= 1


def test_random_start_also_spreads_leaders_of_many_topics() -> None:
    rng = random.Random(3)
    counts: Counter[int] = Counter()
    for _ in range(600):
        (replicas,) = assign_replicas([0, 1, 2], 1, 1, rng=rng)
        counts[replicas[0]] += 1
    assert all(150 <= c <= 250 for c in counts.values())


def test_deterministic_given_a_seed() -> None:
    first = assign_replicas([3, 1, 2, 0], 7, 3, rng=random.Random(42))
    second = assign_replicas([0, 1, 2, 3], 7, 3, rng=random.Random(42))  # order of workers does not matter
    assert first == second
    others = {assign_replicas([0, 1, 2, 3], 7, 3, rng=random.Random(seed)) for seed in range(20)}
    assert len(others) > 1  # the seed does matter


@pytest.mark.parametrize(
    ("rf", "words"), [(0, "at least 1"), (-1, "at least 1"), (4, "larger than the number of live workers (3)")]
)
def test_replication_factor_bounds(rf: int, words: str) -> None:
    with pytest.raises(InvalidReplicationFactorError) as info:
        assign_replicas([0, 1, 2], 1, rf, rng=random.Random(0))
    assert words in info.value.message


@pytest.mark.parametrize("partitions", [0, -3])
def test_partitions_bounds(partitions: int) -> None:
    with pytest.raises(InvalidPartitionsError, match="at least 1 partition"):
        assign_replicas([0, 1, 2], partitions, 1, rng=random.Random(0))


def test_no_workers_is_an_invalid_replication_factor() -> None:
    with pytest.raises(InvalidReplicationFactorError):
        assign_replicas([], 1, 1, rng=random.Random(0))
