"""The client's membership state machine: join, revoke-then-add, fencing, leaving (no I/O)."""

from __future__ import annotations

import pytest

from kbroker.errors import CoordinatorNotAvailableError, FencedMemberEpochError, UnknownMemberError
from kbroker.transport.client.group_membership import TRANSITIONS, MemberState, Membership
from kbroker.transport.client.types import TopicPartition as TP
from kbroker.transport.messages_groups import ConsumerGroupHeartbeatResponse as R
from kbroker.transport.messages_groups import GroupTopicPartitions as G


def member(instance: str | None = None) -> Membership:
    m = Membership(group_id="g", client_id="c", instance_id=instance, session_timeout_ms=3000, heartbeat_interval_ms=500)
    m.subscribe(("t",), None, 0.0)
    return m


def test_states_are_a_table() -> None:
    assert set(TRANSITIONS) == set(MemberState)


def test_join_then_heartbeat_on_schedule_reporting_owned() -> None:
    m = member()
    assert m.due(0.0)
    req = m.request(0.0)
    assert (req.member_id, req.member_epoch, req.owned_partitions) == ("", 0, ())
    change = m.on_response(R(0, None, "m-1", 3, (G("t", (0, 1)),), False), 0.0)
    assert change.added == {TP("t", 0), TP("t", 1)} and not change.revoked
    assert m.due(0.0)  # a change: report at once
    req = m.request(0.0)
    assert (req.member_id, req.member_epoch) == ("m-1", 3) and req.owned_partitions == (G("t", (0, 1)),)
    change = m.on_response(R(0, None, "m-1", 3, (G("t", (0, 1)),), False), 0.0)
    assert not change.added and not change.revoked
    assert not m.due(0.4) and m.due(0.5) and m.wait_s(0.2) == pytest.approx(0.3)
    change = m.on_response(R(0, None, "m-1", 4, (G("t", (1,)),), True), 1.0)
    assert change.revoked == {TP("t", 0)} and not change.lost


def test_pending_partitions_mean_an_early_heartbeat() -> None:
    m = member()
    m.request(0.0)
    m.on_response(R(0, None, "m", 1, (), False), 0.0)
    m.on_response(R(0, None, "m", 1, (), True), 0.0)
    assert m.due(0.1) and not m.due(0.05)


def test_fenced_or_unknown_member_loses_everything_and_joins_again() -> None:
    for error in (UnknownMemberError, FencedMemberEpochError):
        m = member()
        m.request(0.0)
        m.on_response(R(0, None, "m", 1, (G("t", (0,)),), False), 0.0)
        m.request(1.0)
        change = m.on_response(R(error.code, "gone", "m", -1, (), False), 1.0)
        assert change.lost and change.revoked == {TP("t", 0)}
        assert m.state is MemberState.UNJOINED and m.owned == frozenset()
        assert m.request(1.0).member_epoch == 0


def test_retriable_errors_back_off_and_are_raised() -> None:
    m = member()
    m.request(0.0)
    with pytest.raises(CoordinatorNotAvailableError):
        m.on_response(R(CoordinatorNotAvailableError.code, "loading", "", -1, (), False), 0.0)
    assert not m.due(0.0) and m.due(0.2)


def test_leave_is_epoch_minus_one_or_minus_two_for_static_members() -> None:
    for instance, epoch in ((None, -1), ("i", -2)):
        m = member(instance)
        m.request(0.0)
        m.on_response(R(0, None, "m", 1, (G("t", (0,)),), False), 0.0)
        req = m.leave_request()
        assert req is not None and req.member_epoch == epoch and req.instance_id == instance
        assert m.state is MemberState.LEFT and not m.due(99.0)
    never_joined = member()
    assert never_joined.leave_request() is None
