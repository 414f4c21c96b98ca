"""One consumer group's membership and assignment (Kafka's KIP-848 protocol), as plain data.

    heartbeat(member, epoch, subscription, owned, now) ──▶ Group ──▶ the member's assignment now
    leave / expire(now) / metadata_changed(partition_counts)   │
                                                               ├─ members: epoch, subscription,
                                                               │   assigned (told to own), owned (says it owns)
                                                               ├─ group epoch: +1 on every change of the
                                                               │   members, subscriptions or partitions
                                                               └─ target: the assignor's answer at that epoch

Incremental reconciliation: a member is given a partition of its target only when no other member
holds it (a partition is *held* by a member that was told to own it or still says it owns it), and
loses partitions that left its target at once in what it is told to own; it still holds them
until its next heartbeat reports it released them (after committing their offsets). So a
partition is never read by two members at once, and moves only after its old owner let go.

Invariants: member epochs only grow; every partition is held by at most one member's
``assigned`` (``owned`` may still overlap only with a revoked partition's new *target*, never a
new ``assigned``); a member missing its session timeout is removed (a static member that left
with epoch -2 keeps its partitions until then, for a rejoin under the same ``instance_id``).
Pure: takes ``now`` (ms) and partition counts; no I/O. Not thread-safe: owned by one actor.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, Mapping

from kbroker.actors.group_assignor import TopicPartition, assign
from kbroker.errors import (
    FencedMemberEpochError,
    GroupNotEmptyError,
    InvalidRequestError,
    StaleMemberEpochError,
    UnknownMemberError,
)

__all__ = ["GroupState", "TRANSITIONS", "Member", "Heartbeat", "HeartbeatResult", "Group", "resolve_topics"]

TPs = frozenset[TopicPartition]
_EMPTY: TPs = frozenset()


class GroupState(Enum):
    EMPTY = "Empty"
    ASSIGNING = "Assigning"  # a new target is being computed (inside one call)
    RECONCILING = "Reconciling"  # some member does not own its target yet
    STABLE = "Stable"
    DEAD = "Dead"  # deleted, or no longer coordinated here


TRANSITIONS: dict[GroupState, frozenset[GroupState]] = {
    GroupState.EMPTY: frozenset({GroupState.ASSIGNING, GroupState.DEAD}),
    GroupState.ASSIGNING: frozenset({GroupState.EMPTY, GroupState.RECONCILING, GroupState.STABLE}),
    GroupState.RECONCILING: frozenset({GroupState.ASSIGNING, GroupState.STABLE, GroupState.DEAD}),
    GroupState.STABLE: frozenset({GroupState.ASSIGNING, GroupState.RECONCILING, GroupState.DEAD}),
    GroupState.DEAD: frozenset(),
}


def resolve_topics(topics: frozenset[str], regex: str | None, partition_counts: Mapping[str, int]) -> frozenset[str]:
    """Named topics plus every existing non-internal topic the regex matches in full."""
    if regex is None:
        return topics
    pattern = re.compile(regex)
    return topics | frozenset(t for t in partition_counts if not t.startswith("__") and pattern.fullmatch(t))


def _random_member_id(client_id: str) -> str:
    return f"{client_id}-{uuid.uuid4().hex[:12]}"


@dataclass(slots=True)
class Member:
    member_id: str
    instance_id: str | None
    client_id: str
    session_timeout_ms: int
    topics: frozenset[str]
    regex: str | None
    deadline_ms: int
    epoch: int = 0
    previous_epoch: int = -1
    assigned: TPs = _EMPTY
    owned: TPs = _EMPTY
    left: bool = False  # a static member that left (epoch -2): its partitions wait for its return

    @property
    def held(self) -> TPs:
        return self.assigned | self.owned


@dataclass(frozen=True, slots=True)
class Heartbeat:
    member_id: str  # "" to join
    member_epoch: int  # 0 join, -1 leave, -2 static leave
    instance_id: str | None
    client_id: str
    session_timeout_ms: int
    topics: frozenset[str]
    regex: str | None
    owned: TPs


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    member_id: str
    member_epoch: int
    assignment: TPs
    pending: bool  # its target has partitions still held by others


@dataclass
class Group:
    group_id: str
    epoch: int = 0
    state: GroupState = GroupState.EMPTY
    members: dict[str, Member] = field(default_factory=dict)
    target: dict[str, TPs] = field(default_factory=dict)
    _key: object = None  # what the target was computed from
    new_member_id: Callable[[str], str] = _random_member_id  # unique across coordinators: random, injectable

    # --- state ------------------------------------------------------------------------------

    def _set_state(self, new: GroupState) -> None:
        if new is not self.state:
            if new not in TRANSITIONS[self.state]:
                raise RuntimeError(f"group {self.group_id!r}: no transition {self.state.value} -> {new.value}")
            self.state = new

    def _settle(self) -> None:
        if not self.members:
            self._set_state(GroupState.EMPTY)
        elif all(m.assigned == self.target.get(m.member_id, _EMPTY) and m.owned <= m.assigned for m in self.members.values()):
            self._set_state(GroupState.STABLE)
        else:
            self._set_state(GroupState.RECONCILING)

    def mark_dead(self) -> None:
        self._set_state(GroupState.DEAD)

    @property
    def active_members(self) -> list[Member]:
        return [m for m in self.members.values() if not m.left]

    # --- the target assignment --------------------------------------------------------------

    def metadata_changed(self, partition_counts: Mapping[str, int]) -> bool:
        """Recompute the target if members, subscriptions or their partitions changed; True if so."""
        subs = {m.member_id: resolve_topics(m.topics, m.regex, partition_counts) for m in self.members.values()}
        counts = {t: partition_counts.get(t, 0) for t in sorted(set().union(*subs.values()))} if subs else {}
        who = sorted(((m.instance_id or m.member_id), tuple(sorted(subs[m.member_id]))) for m in self.members.values())
        key = (tuple(who), tuple(sorted(counts.items())))
        if key == self._key:
            return False
        self._key = key
        self._set_state(GroupState.ASSIGNING)
        self.epoch += 1
        current = {mid: self.target.get(mid, m.assigned) for mid, m in self.members.items()}
        self.target = assign(subs, counts, current)
        self._settle()
        return True

    def _reconcile(self, member: Member) -> bool:
        """Update what ``member`` is told to own toward its target; True if more is still to come."""
        target = self.target.get(member.member_id, _EMPTY)
        others = _EMPTY.union(*(m.held for m in self.members.values() if m is not member))
        new = (member.assigned & target) | frozenset(tp for tp in target - member.assigned if tp not in others)
        if new != member.assigned:
            member.previous_epoch, member.epoch = member.epoch, self.epoch
            member.assigned = new
        elif member.epoch < self.epoch and new == target:
            member.previous_epoch, member.epoch = member.epoch, self.epoch
        return new != target

    # --- requests ---------------------------------------------------------------------------

    def heartbeat(self, hb: Heartbeat, now_ms: int, partition_counts: Mapping[str, int]) -> HeartbeatResult | None:
        """Join, heartbeat or leave (None). Raises UnknownMember / FencedMemberEpoch."""
        if hb.regex is not None:
            try:
                re.compile(hb.regex)
            except re.error as exc:
                raise InvalidRequestError(f"subscribed_topic_regex {hb.regex!r} is not a valid regex: {exc}") from None
        if hb.member_epoch < 0:
            self.leave(hb.member_id, static=hb.member_epoch == -2, now_ms=now_ms, partition_counts=partition_counts)
            return None
        if hb.member_epoch == 0:
            member = self._join(hb, now_ms)
        else:
            member = self._known(hb.member_id)
            if member.left:
                raise UnknownMemberError(f"member {hb.member_id} left group {self.group_id!r}; join again")
            if hb.member_epoch not in (member.epoch, member.previous_epoch):
                raise FencedMemberEpochError(
                    f"member {hb.member_id} of group {self.group_id!r} sent epoch {hb.member_epoch}, "
                    f"the coordinator has {member.epoch}; rejoin the group"
                )
            member.owned = hb.owned & member.held  # what it released is free now
        member.deadline_ms = now_ms + hb.session_timeout_ms
        member.session_timeout_ms = hb.session_timeout_ms
        if (member.topics, member.regex) != (hb.topics, hb.regex):
            member.topics, member.regex = hb.topics, hb.regex
        self.metadata_changed(partition_counts)
        pending = self._reconcile(member)
        self._settle()
        return HeartbeatResult(member.member_id, member.epoch, member.assigned, pending)

    def _join(self, hb: Heartbeat, now_ms: int) -> Member:
        member = Member(
            member_id=self.new_member_id(hb.client_id) if not hb.member_id else hb.member_id,
            instance_id=hb.instance_id,
            client_id=hb.client_id,
            session_timeout_ms=hb.session_timeout_ms,
            topics=hb.topics,
            regex=hb.regex,
            deadline_ms=now_ms + hb.session_timeout_ms,
        )
        old = self.members.pop(member.member_id, None)
        if hb.instance_id is not None:
            old = next((m for m in self.members.values() if m.instance_id == hb.instance_id), old)
        if old is not None:  # a static member back (or a member joining again under its id): take its place
            self.members.pop(old.member_id, None)
            member.assigned, member.owned = old.assigned, old.owned
            member.epoch = member.previous_epoch = old.epoch
            if old.member_id in self.target:
                self.target[member.member_id] = self.target.pop(old.member_id)
        self.members[member.member_id] = member
        return member

    def _known(self, member_id: str) -> Member:
        member = self.members.get(member_id)
        if member is None:
            raise UnknownMemberError(f"group {self.group_id!r} has no member {member_id!r} (it timed out or left); join again")
        return member

    def leave(self, member_id: str, *, static: bool, now_ms: int, partition_counts: Mapping[str, int]) -> None:
        member = self._known(member_id)
        if static and member.instance_id is not None:
            member.left = True
            member.owned = _EMPTY
            member.deadline_ms = now_ms + member.session_timeout_ms
            return
        del self.members[member_id]
        self.target.pop(member_id, None)
        self.metadata_changed(partition_counts)
        self._settle()

    def expire(self, now_ms: int, partition_counts: Mapping[str, int]) -> list[str]:
        """Remove members past their session timeout; returns their ids."""
        gone = [mid for mid, m in self.members.items() if m.deadline_ms <= now_ms]
        for mid in gone:
            del self.members[mid]
            self.target.pop(mid, None)
        if gone:
            self.metadata_changed(partition_counts)
            self._settle()
        return gone

    # --- commits ----------------------------------------------------------------------------

    def check_commit(self, member_id: str, member_epoch: int, partitions: set[TopicPartition]) -> None:
        """Raise unless ``member_id`` at ``member_epoch`` may commit offsets of ``partitions``."""
        if member_epoch == -1 and not member_id:
            if self.members:
                raise GroupNotEmptyError(
                    f"group {self.group_id!r} has {len(self.members)} member(s); only they may commit (or wait until it is empty)"
                )
            return
        member = self._known(member_id)
        if member_epoch not in (member.epoch, member.previous_epoch):
            raise StaleMemberEpochError(
                f"member {member_id} of group {self.group_id!r} committed at epoch {member_epoch}, the group is at {member.epoch}"
            )
        foreign = sorted(partitions - member.held)
        if foreign:
            raise StaleMemberEpochError(
                f"member {member_id} of group {self.group_id!r} does not own {', '.join(f'{t}-{p}' for t, p in foreign)}"
            )

    def owner_of(self, tp: TopicPartition) -> str | None:
        return next((m.member_id for m in self.members.values() if tp in m.assigned), None)
