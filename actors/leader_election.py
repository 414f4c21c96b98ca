"""Leader election and ISR repair for one partition, given which workers are alive.

``reconcile`` is the one rule the controller applies whenever liveness changes (a worker
registers, dies, is fenced; the controller starts with every worker dead; a topic turns unclean
election on). Given the partition and the live workers:

    leader alive            ISR := ISR minus dead workers (partition epoch + 1 if it shrank)
    leader dead or none:
      a live ISR member     leader := first live ISR member in preferred (replica) order,
                            ISR := its live members
      else, unclean on and  leader := first live replica in preferred order, ISR := [leader]
      a live replica        (the election is flagged unclean: acknowledged records may be lost)
      else                  offline: leader := -1, ISR unchanged (it keeps the last in-sync
                            members, so the partition comes back when one of them registers)

Every leader change (to -1 included) bumps the leader epoch and the partition epoch.
``preferred`` moves leadership back to the preferred replica (the first) when it is alive, in
the ISR and not leading (Kafka's auto leader rebalance).

Invariants of every outcome: the ISR is a non-empty subset of the replicas; the leader is -1 or
a live member of the ISR; epochs never decrease. Pure: no state, no clock.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import AbstractSet

from kbroker.actors.controller_model import NO_LEADER, Partition

__all__ = ["Election", "Outcome", "preferred", "reconcile"]


@dataclass(frozen=True, slots=True)
class Election:
    """A leader change, for logs and for the shell to report (``unclean``: data may be lost)."""

    topic: str
    partition: int
    previous_leader: int
    leader: int  # NO_LEADER: the partition went offline
    leader_epoch: int
    unclean: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    partition: Partition
    election: Election | None  # None: only the ISR changed


def reconcile(part: Partition, live: AbstractSet[int], unclean_allowed: bool) -> Outcome | None:
    """The partition after applying the rule above, or None when nothing changes."""
    if part.leader != NO_LEADER and part.leader in live:
        isr = tuple(r for r in part.isr if r in live)
        if isr == part.isr:
            return None
        return Outcome(dataclasses.replace(part, isr=isr, partition_epoch=part.partition_epoch + 1), None)
    live_isr = [r for r in part.replicas if r in part.isr and r in live]
    unclean = False
    if live_isr:
        leader = live_isr[0]
        isr = tuple(r for r in part.isr if r in live)
    else:
        live_replicas = [r for r in part.replicas if r in live]
        if unclean_allowed and live_replicas:
            leader, isr, unclean = live_replicas[0], (live_replicas[0],), True
        elif part.leader == NO_LEADER:
            return None  # already offline; nothing new
        else:
            leader, isr = NO_LEADER, part.isr
    return _elect(part, leader, isr, unclean)


def preferred(part: Partition, live: AbstractSet[int]) -> Outcome | None:
    """Leadership back to the preferred replica, if it is alive, in sync and not leading."""
    want = part.preferred_leader
    if part.leader == want or want not in live or want not in part.isr:
        return None
    return _elect(part, want, part.isr, False)


def _elect(part: Partition, leader: int, isr: tuple[int, ...], unclean: bool) -> Outcome:
    epoch = part.leader_epoch + 1
    new = dataclasses.replace(
        part, leader=leader, isr=isr, leader_epoch=epoch, partition_epoch=part.partition_epoch + 1
    )
    return Outcome(new, Election(part.topic, part.partition, part.leader, leader, epoch, unclean))
