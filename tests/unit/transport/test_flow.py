"""Tests for kbroker.transport.flow: pending asks with deadlines and the in-flight byte budget (pure)."""

from __future__ import annotations

from concurrent.futures import Future

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kbroker.transport.flow import InflightBudget, PendingRequests


def test_pop_hands_out_a_future_once() -> None:
    pending = PendingRequests()
    future: Future[int] = Future()
    pending.add(1, future, deadline=10.0, what="ask 1")
    assert 1 in pending and len(pending) == 1
    assert pending.pop(1) is future
    assert pending.pop(1) is None
    assert pending.expire(100.0) == []
    assert pending.next_deadline() is None


def test_expire_returns_due_entries_in_deadline_order() -> None:
    pending = PendingRequests()
    futures = {cid: Future() for cid in (1, 2, 3)}
    pending.add(1, futures[1], 5.0, "one")
    pending.add(2, futures[2], 1.0, "two")
    pending.add(3, futures[3], 9.0, "three")
    assert pending.next_deadline() == 1.0
    assert [(cid, what) for cid, _, what in pending.expire(5.0)] == [(2, "two"), (1, "one")]
    assert pending.next_deadline() == 9.0
    assert pending.pop(3) is futures[3]
    assert pending.next_deadline() is None


def test_duplicate_correlation_id_is_refused() -> None:
    pending = PendingRequests()
    pending.add(1, Future(), 1.0)
    with pytest.raises(ValueError, match="already pending"):
        pending.add(1, Future(), 2.0)


def test_drain_empties_everything() -> None:
    pending = PendingRequests()
    futures = [Future() for _ in range(3)]
    for cid, future in enumerate(futures):
        pending.add(cid, future, 1.0)
    assert set(map(id, pending.drain())) == set(map(id, futures))
    assert len(pending) == 0 and pending.next_deadline() is None


def test_heap_stays_bounded_when_replies_beat_deadlines() -> None:
    pending = PendingRequests()
    for cid in range(10_000):
        pending.add(cid, Future(), 1_000.0 + cid)
        assert pending.pop(cid) is not None
    assert len(pending._heap) <= 2 * len(pending) + 65


@given(st.lists(st.tuples(st.integers(0, 50), st.floats(0, 100), st.booleans()), max_size=60), st.floats(0, 100))
@settings(max_examples=200)
def test_every_future_comes_out_exactly_once(ops: list[tuple[int, float, bool]], now: float) -> None:
    pending = PendingRequests()
    added: dict[int, float] = {}
    handed_out: list[int] = []
    for cid, deadline, answer_now in ops:
        if cid in added:
            continue
        pending.add(cid, Future(), deadline)
        added[cid] = deadline
        if answer_now:
            assert pending.pop(cid) is not None
            handed_out.append(cid)
    expired = [cid for cid, _, _ in pending.expire(now)]
    assert all(added[cid] <= now for cid in expired)
    handed_out += expired
    handed_out += [cid for cid in list(added) if pending.pop(cid) is not None]
    assert sorted(handed_out) == sorted(added)


def test_budget_tracks_use_and_peak() -> None:
    budget = InflightBudget(100)
    assert budget.has_room
    budget.charge(60)
    budget.charge(50)
    assert not budget.has_room and budget.used == 110 and budget.peak == 110
    budget.release(60)
    assert budget.has_room and budget.used == 50 and budget.peak == 110
    with pytest.raises(ValueError, match="only 50 are charged"):
        budget.release(51)
    with pytest.raises(ValueError, match="must be positive"):
        InflightBudget(0)


@given(st.integers(1, 1000), st.lists(st.integers(0, 400), max_size=50))
def test_reading_only_while_room_keeps_peak_below_limit_plus_one_message(limit: int, sizes: list[int]) -> None:
    budget = InflightBudget(limit)
    for size in sizes:  # the I/O thread charges only while there is room
        if not budget.has_room:
            budget.release(budget.used)
        budget.charge(size)
    assert budget.peak < limit + max(sizes, default=0) + 1
