"""The group side of a ``Consumer`` with a ``group_id``: membership, commits, committed offsets.

    Consumer.poll ──▶ GroupConsumer.poll ──┬─ heartbeat when due (Membership → GroupClient)
                                           │    change: commit + drop revoked, seek added to committed
                                           ├─ auto-commit every auto_commit_interval_ms
                                           └─ Fetcher.poll in slices, so heartbeats stay on time

- Heartbeats are sent from the thread calling ``poll`` (and ``commit``): a consumer that stops
  polling for longer than ``session_timeout_ms`` leaves the group (as Kafka's
  ``max.poll.interval.ms``), and its partitions move to the others.
- Revoked partitions are committed (when auto-commit is on) before the next heartbeat says they
  are released, so their new owner starts where this one stopped: at-least-once, and duplicates
  only after the last commit. Lost partitions (the group fenced this member) are dropped without
  a commit: it would be refused.
- Added partitions start at their committed offset; without one, at ``auto_offset_reset``.
- With ``assign()`` instead of ``subscribe()``, commits are made from outside the group (member
  epoch -1), which the coordinator accepts only while the group has no members.

Not thread-safe: owned by the consumer's polling thread.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Mapping

from kbroker.errors import FencedMemberEpochError, InvalidConfigError, KBrokerError, StaleMemberEpochError, UnknownMemberError
from kbroker.transport.client.common import ConnectionPool, check_ms
from kbroker.transport.client.fetcher import Fetcher
from kbroker.transport.client.group_client import GroupClient
from kbroker.transport.client.group_membership import Change, MemberState, Membership
from kbroker.transport.client.types import Record, TopicPartition
from kbroker.transport.messages_groups import ConsumerGroupHeartbeatResponse

__all__ = ["GroupConsumer", "make_group_consumer"]

log = logging.getLogger(__name__)

_MAX_HEARTBEATS_IN_A_ROW = 8  # changes are acknowledged at once; bounded so a poll always gets to fetch


class GroupConsumer:
    def __init__(
        self,
        fetcher: Fetcher,
        client: GroupClient,
        membership: Membership,
        *,
        auto_commit: bool,
        auto_commit_interval_s: float,
        timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetcher = fetcher
        self._client = client
        self.membership = membership
        self._auto_commit = auto_commit
        self._auto_commit_interval_s = auto_commit_interval_s
        self._timeout_s = timeout_s
        self._clock = clock
        self._next_auto_commit = clock() + auto_commit_interval_s
        self._committed: dict[TopicPartition, int] = {}  # what this consumer last committed
        self._unpositioned: set[TopicPartition] = set()  # owned, committed offset not fetched yet: not read

    @property
    def _quick_s(self) -> float:
        """How long a request made inside poll may take: well within the session timeout."""
        return min(self._timeout_s, max(1.0, self.membership.session_timeout_ms / 3000))

    @property
    def subscribed(self) -> bool:
        return bool(self.membership.topics or self.membership.regex)

    # --- subscription -----------------------------------------------------------------------

    def subscribe(self, topics: tuple[str, ...], regex: str | None) -> None:
        """Join (or change the subscription); partitions come from the group, not ``assign()``."""
        self.membership.subscribe(topics, regex, self._clock())
        self._assign_owned()

    def unsubscribe(self) -> None:
        """Leave the group (commit first, with auto-commit) and stop reading its partitions."""
        if self.subscribed or self.membership.state is MemberState.STABLE:
            self._commit_quietly(self._fetcher.positions())
            request = self.membership.unsubscribe()
            self._send_leave(request)
        self._fetcher.assign([])

    # --- polling ----------------------------------------------------------------------------

    def poll(self, timeout_s: float, max_records: int, stop: Callable[[], bool]) -> list[Record]:
        deadline = self._clock() + timeout_s
        while True:
            self.heartbeat_if_due()
            self._position_added()
            self._maybe_auto_commit()
            now = self._clock()
            slice_s = max(0.0, min(deadline - now, self.membership.wait_s(now)))
            records = self._fetcher.poll(slice_s, max_records, stop)
            if records or stop() or self._clock() >= deadline:
                return records

    def heartbeat_if_due(self) -> None:
        now = self._clock()
        for _ in range(_MAX_HEARTBEATS_IN_A_ROW):
            if not self.membership.due(now):
                return
            request = self.membership.request(now)
            try:
                response = self._client.request_once(request, ConsumerGroupHeartbeatResponse, self._quick_s)
            except KBrokerError as exc:
                if not exc.retriable:  # UnknownMember / FencedMemberEpoch: rejoin; others are raised
                    self._apply(self.membership.on_response(_error_response(exc), now))
                    now = self._clock()
                    continue
                self.membership.on_failure(self._clock())
                return
            self._apply(self.membership.on_response(response, self._clock()))
            now = self._clock()

    def _apply(self, change: Change) -> None:
        """Revoked: commit their positions (unless lost), stop reading; added: read once positioned."""
        if change.revoked and not change.lost:
            positions = self._fetcher.positions()
            self._commit_quietly({tp: positions[tp] for tp in change.revoked if tp in positions})
        for tp in change.revoked:
            self._committed.pop(tp, None)
        self._unpositioned = (self._unpositioned | change.added) & self.membership.owned
        self._assign_owned()
        self._position_added()

    def _assign_owned(self) -> None:
        self._fetcher.assign(sorted(self.membership.owned - self._unpositioned))

    def _position_added(self) -> None:
        """Start reading added partitions at their committed offsets (auto_offset_reset where none);
        if the coordinator cannot say yet, they wait (never read from a guessed position)."""
        if not self._unpositioned:
            return
        wanted = sorted(self._unpositioned)
        try:
            committed = self._client.fetch_offsets(wanted, self._quick_s)
        except KBrokerError as exc:
            if not exc.retriable:
                raise
            log.info("group %r: committed offsets not available yet (%s); retrying", self._client.group_id, exc.message)
            return
        self._unpositioned.clear()
        self._assign_owned()
        for tp in wanted:
            offset = committed.get(tp)
            if offset is not None:
                self._fetcher.seek(tp, offset)
                self._committed[tp] = offset

    # --- commits ----------------------------------------------------------------------------

    def _maybe_auto_commit(self) -> None:
        if not self._auto_commit or self._clock() < self._next_auto_commit:
            return
        self._next_auto_commit = self._clock() + self._auto_commit_interval_s
        self._commit_quietly(self._fetcher.positions())

    def _commit_quietly(self, offsets: Mapping[TopicPartition, int]) -> None:
        if not self._auto_commit:
            return
        try:
            self.commit(offsets, only_changed=True, timeout_s=self._quick_s)
        except (UnknownMemberError, FencedMemberEpochError, StaleMemberEpochError) as exc:
            log.info("group %r: commit refused (%s); heartbeating now to rejoin", self._client.group_id, exc.message)
            self.membership.heartbeat_now(self._clock())
        except KBrokerError as exc:
            log.warning("group %r: auto-commit failed: %s", self._client.group_id, exc.message)

    def commit(
        self, offsets: Mapping[TopicPartition, int] | None = None, *, only_changed: bool = False, timeout_s: float | None = None
    ) -> None:
        """Commit ``offsets`` (default: the position of every assigned partition), synchronously."""
        if offsets is None:
            offsets = self._fetcher.positions()
        for tp, offset in offsets.items():
            if not isinstance(tp, TopicPartition) or isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
                raise InvalidConfigError(f"commit() takes {{TopicPartition: offset >= 0}}, got {tp!r}: {offset!r}")
        wanted = {tp: o for tp, o in offsets.items() if not only_changed or self._committed.get(tp) != o}
        if not wanted:
            return
        if self.membership.state is MemberState.STABLE:
            member_id, epoch = self.membership.member_id, self.membership.epoch
        else:
            member_id, epoch = "", -1
        try:
            self._client.commit(wanted, member_id, epoch, timeout_s)
        except (UnknownMemberError, FencedMemberEpochError, StaleMemberEpochError):
            self.membership.heartbeat_now(self._clock())  # the group moved on: rejoin at the next poll
            raise  # as Kafka's CommitFailedException: these records may be processed again
        self._committed.update(wanted)

    def committed(self, tp: TopicPartition) -> int | None:
        return self._client.fetch_offsets([tp]).get(tp)

    # --- closing ----------------------------------------------------------------------------

    def close(self) -> None:
        """Commit (auto-commit), leave the group, close the coordinator connection."""
        try:
            if self.membership.state is MemberState.STABLE:
                self._commit_quietly(self._fetcher.positions())
            self._send_leave(self.membership.leave_request())
        finally:
            self._client.close()

    def _send_leave(self, request: object) -> None:
        if request is None:
            return
        try:
            self._client.request_once(request, ConsumerGroupHeartbeatResponse, min(self._timeout_s, 2.0))  # type: ignore[arg-type]
        except KBrokerError as exc:
            log.info("group %r: leave not acknowledged (%s); the session timeout will remove this member", self._client.group_id, exc.message)


def make_group_consumer(
    fetcher: Fetcher,
    bootstrap: str,
    group_id: str | None,
    client_id: str,
    *,
    enable_auto_commit: bool,
    auto_commit_interval_ms: object,
    session_timeout_ms: object,
    heartbeat_interval_ms: object,
    group_instance_id: object,
    timeout_s: float,
) -> GroupConsumer | None:
    """The group side of a Consumer (None without ``group_id``), every setting checked."""
    auto_commit_s = check_ms("auto_commit_interval_ms", auto_commit_interval_ms, minimum=1) / 1000
    session_ms = int(check_ms("session_timeout_ms", session_timeout_ms, minimum=100))
    heartbeat_ms = int(check_ms("heartbeat_interval_ms", heartbeat_interval_ms, minimum=10))
    if heartbeat_ms >= session_ms:
        raise InvalidConfigError(
            f"heartbeat_interval_ms ({heartbeat_ms}) must be below session_timeout_ms ({session_ms}), ideally a third of it"
        )
    if group_id is None:
        if group_instance_id is not None:
            raise InvalidConfigError("group_instance_id needs a group_id")
        return None
    if not isinstance(group_id, str) or not group_id or len(group_id) > 1024:
        raise InvalidConfigError(f"group_id must be a non-empty string of at most 1024 characters, got {group_id!r}")
    if group_instance_id is not None and (not isinstance(group_instance_id, str) or not group_instance_id or len(group_instance_id) > 1024):
        raise InvalidConfigError(f"group_instance_id must be None or a non-empty string, got {group_instance_id!r}")
    membership = Membership(
        group_id=group_id, client_id=client_id, instance_id=group_instance_id,  # type: ignore[arg-type]
        session_timeout_ms=session_ms, heartbeat_interval_ms=heartbeat_ms,
    )
    client = GroupClient(bootstrap, group_id, timeout_s=timeout_s, pool=ConnectionPool(timeout=timeout_s, socket_setup=fetcher.socket_setup))
    return GroupConsumer(
        fetcher, client, membership, auto_commit=enable_auto_commit, auto_commit_interval_s=auto_commit_s, timeout_s=timeout_s
    )


def _error_response(exc: KBrokerError) -> ConsumerGroupHeartbeatResponse:
    return ConsumerGroupHeartbeatResponse(exc.code, exc.message, "", -1, (), False)
