"""Replica placement: which workers hold each partition of a new topic (Kafka's rack-unaware rule).

With the live workers sorted, ``n`` of them, a start index ``s`` and a replica shift ``k``:

    partition p:  first replica (the preferred leader) = workers[(p + s) % n]
                  replica j+1 = workers[(first + 1 + (k + j) % (n - 1)) % n]
                  k grows by one every n partitions

so consecutive partitions put their leaders on consecutive workers (round robin) and their
followers on a shifting pattern, which spreads followers as evenly as leaders. Kafka draws ``s``
and ``k`` at random per topic; here ``s`` may instead come from the leader counts of the
existing topics (the least loaded worker leads partition 0), so many small topics still spread
their leaders evenly, and ``k`` from a seeded ``random.Random``, so placement is deterministic
given the seed.

Invariants of every assignment:
- each partition has exactly ``replication_factor`` replicas, all distinct, all drawn from the
  given workers; the first is the preferred leader;
- over ``n`` consecutive partitions every worker is the preferred leader exactly once.

Pure: no I/O, no clock; randomness only through the ``rng`` passed in.
"""

from __future__ import annotations

import random
from typing import Mapping, Sequence

from kbroker.errors import InvalidPartitionsError, InvalidReplicationFactorError

__all__ = ["Assignment", "assign_replicas", "least_loaded_start"]

Assignment = tuple[tuple[int, ...], ...]
"""Replicas per partition, partition 0 first; each tuple starts with the preferred leader."""


def assign_replicas(
    workers: Sequence[int],
    num_partitions: int,
    replication_factor: int,
    *,
    rng: random.Random,
    leader_counts: Mapping[int, int] | None = None,
) -> Assignment:
    """Place ``num_partitions`` partitions of ``replication_factor`` replicas on ``workers``.

    ``leader_counts`` (worker -> partitions it is the preferred leader of): when given, the least
    loaded worker leads partition 0 (ties broken by ``rng``); else the start is random.
    Raises ``InvalidPartitionsError`` / ``InvalidReplicationFactorError`` for impossible requests.
    """
    if num_partitions < 1:
        raise InvalidPartitionsError(f"a topic needs at least 1 partition, got {num_partitions}")
    ordered = sorted(set(workers))
    n = len(ordered)
    if replication_factor < 1:
        raise InvalidReplicationFactorError(f"the replication factor must be at least 1, got {replication_factor}")
    if replication_factor > n:
        raise InvalidReplicationFactorError(
            f"replication factor {replication_factor} is larger than the number of live workers ({n}); "
            "lower it or start more workers"
        )
    start = least_loaded_start(ordered, leader_counts, rng) if leader_counts is not None else rng.randrange(n)
    shift = rng.randrange(n)
    assignment = []
    for p in range(num_partitions):
        if p > 0 and p % n == 0:
            shift += 1
        first = (p + start) % n
        replicas = [ordered[first]]
        for j in range(replication_factor - 1):
            replicas.append(ordered[_replica_index(first, shift, j, n)])
        assignment.append(tuple(replicas))
    return tuple(assignment)


def least_loaded_start(ordered: Sequence[int], leader_counts: Mapping[int, int], rng: random.Random) -> int:
    """Index in ``ordered`` of a worker with the fewest preferred leaderships (ties: ``rng``)."""
    fewest = min(leader_counts.get(w, 0) for w in ordered)
    candidates = [i for i, w in enumerate(ordered) if leader_counts.get(w, 0) == fewest]
    return rng.choice(candidates)


def _replica_index(first: int, shift: int, j: int, n: int) -> int:
    step = 1 + (shift + j) % (n - 1)
    return (first + step) % n
