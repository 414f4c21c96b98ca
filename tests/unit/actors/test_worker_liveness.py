"""Tests for kbroker.actors.worker_liveness: the worker liveness machine, on its own."""

from __future__ import annotations

import itertools

import pytest

from kbroker.actors.worker_liveness import (
    TRANSITIONS,
    IllegalTransition,
    WorkerEvent,
    WorkerSession,
    WorkerState,
    next_state,
)

ALIVE, FENCED, DEAD = WorkerState.ALIVE, WorkerState.FENCED, WorkerState.DEAD
E = WorkerEvent


def test_the_table_is_the_documented_machine() -> None:
    assert TRANSITIONS == {
        (ALIVE, E.REGISTER): ALIVE,
        (ALIVE, E.HEARTBEAT): ALIVE,
        (ALIVE, E.SESSION_EXPIRED): FENCED,
        (ALIVE, E.PROCESS_EXITED): DEAD,
        (FENCED, E.REGISTER): ALIVE,
        (FENCED, E.PROCESS_EXITED): DEAD,
        (DEAD, E.REGISTER): ALIVE,
        (DEAD, E.PROCESS_EXITED): DEAD,
    }


ILLEGAL = [pair for pair in itertools.product(WorkerState, WorkerEvent) if pair not in TRANSITIONS]


@pytest.mark.parametrize(("state", "event"), ILLEGAL)
def test_every_missing_pair_is_illegal(state: WorkerState, event: WorkerEvent) -> None:
    with pytest.raises(IllegalTransition, match=f"{state.value} worker cannot take {event.value}"):
        next_state(state, event)


def test_register_always_revives_and_only_alive_workers_lead() -> None:
    for state in WorkerState:
        assert next_state(state, E.REGISTER) is ALIVE
    session = WorkerSession(0, "tcp://h:1", incarnation=1)
    assert session.state is DEAD and not session.alive
    assert session.apply(E.REGISTER) is ALIVE and session.alive
    assert session.apply(E.SESSION_EXPIRED) is FENCED and not session.alive
    with pytest.raises(IllegalTransition):
        session.apply(E.HEARTBEAT)
    assert session.state is FENCED  # a refused event changes nothing
    assert session.apply(E.PROCESS_EXITED) is DEAD
