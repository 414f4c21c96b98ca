"""The consumer's group driver with fake coordinator and fetcher: commit before release, start at
committed offsets, never read a partition whose committed offset is not known yet."""

from __future__ import annotations

from kbroker.errors import CoordinatorNotAvailableError, UnknownMemberError
from kbroker.transport.client.group_consumer import GroupConsumer
from kbroker.transport.client.group_membership import Membership
from kbroker.transport.client.types import TopicPartition as TP
from kbroker.transport.messages_groups import ConsumerGroupHeartbeatResponse as R
from kbroker.transport.messages_groups import GroupTopicPartitions as G


class FakeFetcher:
    def __init__(self) -> None:
        self.assigned: list[TP] = []
        self.pos: dict[TP, int] = {}
        self.log: list[tuple] = []

    def assign(self, tps: list[TP]) -> None:
        self.assigned = list(tps)
        self.pos = {tp: o for tp, o in self.pos.items() if tp in tps}
        self.log.append(("assign", tuple(tps)))

    def positions(self) -> dict[TP, int]:
        return dict(self.pos)

    def seek(self, tp: TP, offset: int) -> None:
        self.pos[tp] = offset

    def poll(self, timeout: float, max_records: int, stop: object) -> list:
        return []


class FakeCoordinator:
    group_id = "g"

    def __init__(self, replies: list) -> None:
        self.replies = replies
        self.heartbeats: list = []
        self.commits: list[tuple[dict, str, int]] = []
        self.committed: dict[TP, int] = {}
        self.fetch_error: Exception | None = None
        self.events: list[str] = []

    def request_once(self, request: object, expected: type, timeout: float) -> object:
        self.heartbeats.append(request)
        self.events.append("heartbeat")
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    def commit(self, offsets: dict, member_id: str, epoch: int, timeout_s: float | None = None) -> None:
        self.commits.append((dict(offsets), member_id, epoch))
        self.events.append("commit")

    def fetch_offsets(self, tps: list[TP], timeout_s: float | None = None) -> dict[TP, int | None]:
        if self.fetch_error is not None:
            raise self.fetch_error
        return {tp: self.committed.get(tp) for tp in tps}

    def close(self) -> None:
        pass


def driver(replies: list, *, auto_commit: bool = True) -> tuple[GroupConsumer, FakeCoordinator, FakeFetcher, list[float]]:
    clock = [0.0]
    fetcher, coord = FakeFetcher(), FakeCoordinator(replies)
    member = Membership(group_id="g", client_id="c", instance_id=None, session_timeout_ms=3000, heartbeat_interval_ms=500)
    gc = GroupConsumer(fetcher, coord, member, auto_commit=auto_commit, auto_commit_interval_s=100.0, timeout_s=5.0,  # type: ignore[arg-type]
                       clock=lambda: clock[0])
    gc.subscribe(("t",), None)
    return gc, coord, fetcher, clock


def test_added_partitions_start_at_their_committed_offsets() -> None:
    gc, coord, fetcher, _ = driver([R(0, None, "m", 1, (G("t", (0, 1)),), False)] * 2)
    coord.committed = {TP("t", 0): 42}
    gc.heartbeat_if_due()
    assert sorted(fetcher.assigned) == [TP("t", 0), TP("t", 1)]
    assert fetcher.pos == {TP("t", 0): 42}  # t-1 has none: auto_offset_reset applies


def test_revoked_partitions_are_committed_before_the_release_is_reported() -> None:
    replies = [
        R(0, None, "m", 1, (G("t", (0, 1)),), False),
        R(0, None, "m", 1, (G("t", (0, 1)),), False),
        R(0, None, "m", 2, (G("t", (1,)),), False),  # t-0 revoked
        R(0, None, "m", 2, (G("t", (1,)),), False),
    ]
    gc, coord, fetcher, clock = driver(replies)
    gc.heartbeat_if_due()
    fetcher.pos = {TP("t", 0): 7, TP("t", 1): 9}
    clock[0] = 1.0
    coord.events.clear()
    gc.heartbeat_if_due()
    assert coord.commits[-1] == ({TP("t", 0): 7}, "m", 2)
    assert coord.events == ["heartbeat", "commit", "heartbeat"]  # committed, then reported the release
    assert coord.heartbeats[-1].owned_partitions == (G("t", (1,)),)
    assert fetcher.assigned == [TP("t", 1)]


def test_unknown_committed_offsets_keep_a_partition_unread_until_known() -> None:
    gc, coord, fetcher, clock = driver([R(0, None, "m", 1, (G("t", (0,)),), False)] * 2)
    coord.fetch_error = CoordinatorNotAvailableError("moving")
    coord.committed = {TP("t", 0): 5}
    gc.heartbeat_if_due()
    assert fetcher.assigned == []  # not read from a guessed position
    coord.fetch_error = None
    gc.poll(0, 10, lambda: False)
    assert fetcher.assigned == [TP("t", 0)] and fetcher.pos == {TP("t", 0): 5}


def test_lost_partitions_are_dropped_without_commit_and_the_member_rejoins() -> None:
    replies = [
        R(0, None, "m", 1, (G("t", (0,)),), False),
        R(0, None, "m", 1, (G("t", (0,)),), False),
        UnknownMemberError("gone"),
        R(0, None, "m2", 1, (), False),
    ]
    gc, coord, fetcher, clock = driver(replies)
    gc.heartbeat_if_due()
    fetcher.pos = {TP("t", 0): 3}
    clock[0] = 1.0
    gc.heartbeat_if_due()
    assert coord.commits == [] and fetcher.assigned == []
    assert coord.heartbeats[-1].member_epoch == 0 and gc.membership.member_id == "m2"
