"""WorkerTable: the controller shell's pure record of workers and their liveness."""

from __future__ import annotations

import pytest

from kbroker.actors.controller import _TRANSITIONS, WorkerState, WorkerTable
from kbroker.errors import StaleMemberEpochError, UnknownMemberError


def table_with_worker(now: float = 0.0) -> WorkerTable:
    table = WorkerTable()
    table.register(1, "tcp://h:1", pid=100, incarnation=10, now=now)
    return table


def test_register_makes_a_worker_alive() -> None:
    table = table_with_worker()
    record = table.get(1)
    assert record is not None
    assert (record.state, record.pid, record.endpoint, record.incarnation) == (WorkerState.ALIVE, 100, "tcp://h:1", 10)
    assert record.describe().alive and record.describe().pid == 100
    assert table.alive_ids() == [1]


def test_records_are_listed_by_worker_id() -> None:
    table = WorkerTable()
    for worker_id in (2, 0, 1):
        table.register(worker_id, f"tcp://h:{worker_id}", worker_id + 100, 1, 0.0)
    assert [r.worker_id for r in table.records()] == [0, 1, 2]


def test_heartbeat_refreshes_the_session() -> None:
    table = table_with_worker()
    table.heartbeat(1, 10, now=5.0)
    assert table.expire(now=10.0, session_timeout=6.0) == []
    assert [r.worker_id for r in table.expire(now=11.5, session_timeout=6.0)] == [1]


def test_silent_worker_is_fenced_but_keeps_its_pid() -> None:
    table = table_with_worker()
    fenced = table.expire(now=7.0, session_timeout=6.0)
    assert [(r.worker_id, r.state) for r in fenced] == [(1, WorkerState.FENCED)]
    assert table.get(1).describe().pid == 100  # type: ignore[union-attr]
    assert table.expire(now=20.0, session_timeout=6.0) == []  # fenced once


def test_fenced_worker_is_told_to_register_again_and_may() -> None:
    table = table_with_worker()
    table.expire(now=7.0, session_timeout=6.0)
    with pytest.raises(UnknownMemberError, match="register again"):
        table.heartbeat(1, 10, now=7.5)
    table.register(1, "tcp://h:1", 100, 10, now=8.0)  # same incarnation: allowed after fencing
    assert table.get(1).state is WorkerState.ALIVE  # type: ignore[union-attr]


def test_death_of_the_recorded_pid_marks_the_worker_dead() -> None:
    table = table_with_worker()
    record = table.died(1, 100)
    assert record is not None and record.state is WorkerState.DEAD
    assert table.get(1).describe().pid == -1  # type: ignore[union-attr]
    assert table.died(1, 100) is None  # reported once
    assert table.expire(now=100.0, session_timeout=6.0) == []  # dead workers are not fenced


def test_death_of_another_pid_changes_nothing() -> None:
    table = table_with_worker()
    assert table.died(1, 99) is None
    assert table.died(7, 100) is None
    assert table.get(1).state is WorkerState.ALIVE  # type: ignore[union-attr]


def test_a_dead_incarnation_cannot_register_again_but_a_newer_one_can() -> None:
    table = table_with_worker()
    table.died(1, 100)
    with pytest.raises(StaleMemberEpochError):
        table.register(1, "tcp://h:1", 100, 10, now=1.0)
    table.register(1, "tcp://h:2", 101, 11, now=1.0)
    assert (table.get(1).pid, table.get(1).state) == (101, WorkerState.ALIVE)  # type: ignore[union-attr]


def test_older_incarnations_are_refused() -> None:
    table = table_with_worker()
    table.register(1, "tcp://h:2", 101, 11, now=1.0)
    with pytest.raises(StaleMemberEpochError, match="must exit"):
        table.register(1, "tcp://h:1", 100, 10, now=2.0)
    with pytest.raises(StaleMemberEpochError, match="replaced"):
        table.heartbeat(1, 10, now=2.0)


def test_heartbeat_from_an_unknown_worker_or_incarnation_asks_for_registration() -> None:
    table = table_with_worker()
    with pytest.raises(UnknownMemberError):
        table.heartbeat(2, 10, now=1.0)
    with pytest.raises(UnknownMemberError):
        table.heartbeat(1, 11, now=1.0)


def test_the_transition_table_has_every_state() -> None:
    assert set(_TRANSITIONS) == {None, *WorkerState}
    assert all(WorkerState.ALIVE in targets for targets in _TRANSITIONS.values())  # every state can recover
    assert WorkerState.FENCED not in _TRANSITIONS[WorkerState.DEAD]
