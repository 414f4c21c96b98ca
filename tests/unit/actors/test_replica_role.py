"""The replica's role and follower-phase tables, on their own (STYLE habit 5)."""

from __future__ import annotations

import pytest

from kbroker.actors.replica_role import (
    PHASE_TRANSITIONS,
    ROLE_TRANSITIONS,
    FollowerPhase,
    IllegalTransition,
    Role,
    check_phase,
    check_role,
)


def test_every_role_and_phase_has_a_row() -> None:
    assert set(ROLE_TRANSITIONS) == set(Role)
    assert set(PHASE_TRANSITIONS) == set(FollowerPhase)


@pytest.mark.parametrize("old", [Role.OFFLINE, Role.LEADER, Role.FOLLOWER])
@pytest.mark.parametrize("new", list(Role))
def test_live_roles_may_go_anywhere(old: Role, new: Role) -> None:
    assert check_role(old, new) is new


@pytest.mark.parametrize("new", list(Role))
def test_deleted_is_terminal(new: Role) -> None:
    with pytest.raises(IllegalTransition, match="deleted"):
        check_role(Role.DELETED, new)


def test_follower_phases_go_forward_only() -> None:
    assert check_phase(FollowerPhase.TRUNCATING, FollowerPhase.FETCHING) is FollowerPhase.FETCHING
    assert check_phase(FollowerPhase.TRUNCATING, FollowerPhase.TRUNCATING) is FollowerPhase.TRUNCATING  # KIP-279 round
    assert check_phase(FollowerPhase.FETCHING, FollowerPhase.FETCHING) is FollowerPhase.FETCHING
    with pytest.raises(IllegalTransition, match="fetching to truncating"):
        check_phase(FollowerPhase.FETCHING, FollowerPhase.TRUNCATING)
