"""A consumer's membership in its group, as a state machine with no I/O (KIP-848, client side).

    UNJOINED ──request()──▶ JOINING ──response──▶ STABLE ◀──▶ (assignment changes: revoke, then add)
        ▲                                            │
        └──── UnknownMember / FencedMemberEpoch ─────┤  (partitions lost: dropped without commit)
                                                     └──leave_request()──▶ LEFT

- ``request(now)`` builds the next ``ConsumerGroupHeartbeat`` (epoch 0 to join), reporting the
  partitions this member owns; ``on_response`` returns the ``Change`` to apply: partitions to
  revoke (commit them first, then stop reading them) and to add (fetch their committed offsets).
  Once applied, the next heartbeat reports them, which lets the coordinator give the revoked
  partitions to their new owners: so a change asks for a heartbeat at once.
- Heartbeats are due every ``heartbeat_interval_ms``, sooner while partitions are pending.
- Errors: UnknownMember and FencedMemberEpoch mean the group moved on without this member: its
  partitions are lost (another member may own them now) and it joins again. Retriable errors
  (coordinator moved or loading, timeouts) back off and retry; others are raised by the driver.

Pure: takes ``now`` (seconds, monotonic); not thread-safe (owned by the consumer's polling thread).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from kbroker.errors import FencedMemberEpochError, UnknownMemberError, error_for_code
from kbroker.transport.client.types import TopicPartition
from kbroker.transport.messages_groups import (
    JOIN_EPOCH,
    LEAVE_EPOCH,
    STATIC_LEAVE_EPOCH,
    ConsumerGroupHeartbeat,
    ConsumerGroupHeartbeatResponse,
    GroupTopicPartitions,
)

__all__ = ["MemberState", "TRANSITIONS", "Change", "Membership"]

_PENDING_INTERVAL_S = 0.1


class MemberState(Enum):
    UNJOINED = "unjoined"
    JOINING = "joining"
    STABLE = "stable"
    LEFT = "left"


TRANSITIONS: dict[MemberState, frozenset[MemberState]] = {
    MemberState.UNJOINED: frozenset({MemberState.JOINING, MemberState.LEFT}),
    MemberState.JOINING: frozenset({MemberState.STABLE, MemberState.UNJOINED, MemberState.LEFT}),
    MemberState.STABLE: frozenset({MemberState.UNJOINED, MemberState.LEFT}),
    MemberState.LEFT: frozenset({MemberState.UNJOINED}),  # unsubscribe(), then subscribe() again
}


@dataclass(frozen=True, slots=True)
class Change:
    revoked: frozenset[TopicPartition]  # commit, then stop reading
    added: frozenset[TopicPartition]  # start reading from the committed offset
    lost: bool = False  # revoked without commit: the group moved on


class Membership:
    def __init__(
        self,
        *,
        group_id: str,
        client_id: str,
        instance_id: str | None,
        session_timeout_ms: int,
        heartbeat_interval_ms: int,
    ) -> None:
        self.group_id = group_id
        self.client_id = client_id
        self.instance_id = instance_id
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_s = heartbeat_interval_ms / 1000
        self.state = MemberState.UNJOINED
        self.member_id = ""
        self.epoch = JOIN_EPOCH
        self.topics: tuple[str, ...] = ()
        self.regex: str | None = None
        self.owned: frozenset[TopicPartition] = frozenset()
        self.next_at = 0.0

    def _to(self, new: MemberState) -> None:
        if new is not self.state:
            if new not in TRANSITIONS[self.state]:
                raise RuntimeError(f"member of {self.group_id!r}: no transition {self.state.value} -> {new.value}")
            self.state = new

    def subscribe(self, topics: tuple[str, ...], regex: str | None, now: float) -> None:
        self.topics, self.regex = topics, regex
        self.next_at = now  # tell the coordinator at once

    def due(self, now: float) -> bool:
        return self.state is not MemberState.LEFT and bool(self.topics or self.regex) and now >= self.next_at

    def wait_s(self, now: float) -> float:
        """Seconds until the next heartbeat is due (inf when none will be)."""
        if self.state is MemberState.LEFT or not (self.topics or self.regex):
            return float("inf")
        return max(0.0, self.next_at - now)

    def request(self, now: float) -> ConsumerGroupHeartbeat:
        if self.state is MemberState.UNJOINED:
            self._to(MemberState.JOINING)
            self.member_id, self.epoch = "", JOIN_EPOCH
        return ConsumerGroupHeartbeat(
            self.group_id, self.member_id, self.epoch, self.instance_id, self.client_id, self.session_timeout_ms,
            self.topics, self.regex, _owned_message(self.owned),
        )

    def on_response(self, response: ConsumerGroupHeartbeatResponse, now: float) -> Change:
        """Apply a heartbeat answer; raises the error it carries unless it is one handled here."""
        if response.error_code:
            error = error_for_code(response.error_code, response.error_message)
            if isinstance(error, (UnknownMemberError, FencedMemberEpochError)):
                return self.reset(now)
            self.on_failure(now)
            raise error
        self._to(MemberState.STABLE)
        self.member_id, self.epoch = response.member_id, response.member_epoch
        new = frozenset(TopicPartition(t.topic, p) for t in response.assignment for p in t.partitions)
        change = Change(self.owned - new, new - self.owned)
        self.owned = new
        if change.revoked or change.added:
            self.next_at = now  # report at once: the revoked partitions' new owners are waiting
        elif response.pending:
            self.next_at = now + min(_PENDING_INTERVAL_S, self.heartbeat_interval_s)
        else:
            self.next_at = now + self.heartbeat_interval_s
        return change

    def heartbeat_now(self, now: float) -> None:
        """Something suggests the group moved on (a refused commit): ask the coordinator at once."""
        self.next_at = min(self.next_at, now)

    def on_failure(self, now: float) -> None:
        """A heartbeat that got no answer, or a retriable error: try again after a short backoff."""
        self.next_at = now + min(self.heartbeat_interval_s, 0.2)

    def reset(self, now: float) -> Change:
        """The coordinator no longer knows this member: lose every partition and join again."""
        lost = self.owned
        self.owned = frozenset()
        self.member_id, self.epoch = "", JOIN_EPOCH
        if self.state is not MemberState.LEFT:
            self._to(MemberState.UNJOINED)
        self.next_at = now
        return Change(lost, frozenset(), lost=True)

    def leave_request(self) -> ConsumerGroupHeartbeat | None:
        """The last heartbeat (epoch -1, or -2 for a static member); None if never joined."""
        joined = self.state is MemberState.STABLE
        epoch = STATIC_LEAVE_EPOCH if self.instance_id is not None else LEAVE_EPOCH
        request = ConsumerGroupHeartbeat(
            self.group_id, self.member_id, epoch, self.instance_id, self.client_id, self.session_timeout_ms,
            self.topics, self.regex, (),
        ) if joined else None
        self._to(MemberState.LEFT)
        self.owned = frozenset()
        return request

    def unsubscribe(self) -> ConsumerGroupHeartbeat | None:
        """Stop being a member (assign() or unsubscribe()): the leave request, and a fresh start after."""
        request = self.leave_request()
        self._to(MemberState.UNJOINED)
        self.member_id, self.epoch = "", JOIN_EPOCH
        self.topics, self.regex = (), None
        return request


def _owned_message(owned: frozenset[TopicPartition]) -> tuple[GroupTopicPartitions, ...]:
    by_topic: dict[str, list[int]] = {}
    for tp in sorted(owned):
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return tuple(GroupTopicPartitions(t, tuple(ps)) for t, ps in by_topic.items())

