"""The lifecycle of one partition replica, as data: roles, follower phases, and their transitions.

    Role (what the controller made this replica)

        OFFLINE --become_leader--> LEADER <--become_leader (newer epoch)--+
           |                        |  ^                                  |
           | become_follower        |  | become_leader                    |
           v                        v  |                                  |
        FOLLOWER <--become_follower-+--+----------------------------------+
        any of the three --delete--> DELETED (terminal: the log is gone)
        LEADER / FOLLOWER --go_offline--> OFFLINE

    FollowerPhase (what a follower is doing about its leader)

        TRUNCATING --answer: done--> FETCHING
        TRUNCATING --answer: ask again (KIP-279 intermediate step)--> TRUNCATING
        FETCHING   --leader says out of range below its log start--> FETCHING (after a full truncation)
        (a new leader or epoch restarts at TRUNCATING through become_follower)

Invariants:
- Every change of role or phase goes through ``check_role`` / ``check_phase``; a move the table
  does not list is refused with ``IllegalTransition`` (a bug or a message for a deleted replica).
- DELETED has no way out.
- Which epoch may cause a transition is decided by the replica (fencing), not here: the tables
  say only which moves exist.
Pure data; no I/O.
"""

from __future__ import annotations

from enum import Enum
from typing import Final, Mapping

__all__ = [
    "Role",
    "FollowerPhase",
    "IllegalTransition",
    "ROLE_TRANSITIONS",
    "PHASE_TRANSITIONS",
    "check_role",
    "check_phase",
]


class Role(Enum):
    OFFLINE = "offline"  # created or recovered, not told anything yet; or taken offline
    LEADER = "leader"
    FOLLOWER = "follower"
    DELETED = "deleted"


class FollowerPhase(Enum):
    TRUNCATING = "truncating"  # asked OffsetForLeaderEpoch; waiting for the answer
    FETCHING = "fetching"  # truncated by epochs; appending what the leader sends or fetching


class IllegalTransition(ValueError):
    """A move between two states that the transition table does not allow."""


_ALIVE: Final = frozenset({Role.LEADER, Role.FOLLOWER, Role.OFFLINE, Role.DELETED})

ROLE_TRANSITIONS: Final[Mapping[Role, frozenset[Role]]] = {
    Role.OFFLINE: _ALIVE,
    Role.LEADER: _ALIVE,  # LEADER -> LEADER: a newer leader epoch or a new ISR from the controller
    Role.FOLLOWER: _ALIVE,  # FOLLOWER -> FOLLOWER: a new leader or leader epoch
    Role.DELETED: frozenset(),
}

PHASE_TRANSITIONS: Final[Mapping[FollowerPhase, frozenset[FollowerPhase]]] = {
    FollowerPhase.TRUNCATING: frozenset({FollowerPhase.TRUNCATING, FollowerPhase.FETCHING}),
    FollowerPhase.FETCHING: frozenset({FollowerPhase.FETCHING}),
}


def check_role(old: Role, new: Role) -> Role:
    """Return ``new`` if the role table allows ``old -> new``; raise ``IllegalTransition`` otherwise."""
    if new not in ROLE_TRANSITIONS[old]:
        raise IllegalTransition(f"a replica cannot go from {old.value} to {new.value}")
    return new


def check_phase(old: FollowerPhase, new: FollowerPhase) -> FollowerPhase:
    """Return ``new`` if the follower phase table allows ``old -> new``; raise otherwise."""
    if new not in PHASE_TRANSITIONS[old]:
        raise IllegalTransition(f"a follower cannot go from {old.value} to {new.value}")
    return new
