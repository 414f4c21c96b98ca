"""Purgatory: a pure data structure of items waiting for a watermark or a deadline."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from kbroker.actors.purgatory import Purgatory


def test_ready_pops_items_whose_key_is_below_the_watermark_in_key_order() -> None:
    p: Purgatory[str] = Purgatory()
    p.watch(5, 100, "five")
    p.watch(2, 100, "two")
    p.watch(9, 100, "nine")
    assert p.ready(5) == ["two"]  # key 5 needs a watermark above 5
    assert p.ready(6) == ["five"]
    assert len(p) == 1
    assert p.ready(100) == ["nine"]
    assert p.ready(1000) == []


def test_expired_pops_by_deadline_and_ties_come_out_in_watch_order() -> None:
    p: Purgatory[str] = Purgatory()
    p.watch(0, 30, "late")
    p.watch(0, 10, "a")
    p.watch(0, 10, "b")
    assert p.next_deadline() == 10
    assert p.expired(9) == []
    assert p.expired(10) == ["a", "b"]
    assert p.next_deadline() == 30
    assert p.expired(31) == ["late"]
    assert p.next_deadline() is None


def test_an_item_comes_out_once_whichever_way() -> None:
    p: Purgatory[str] = Purgatory()
    p.watch(1, 10, "x")
    token = p.watch(1, 10, "y")
    assert p.remove(token) == "y"
    assert p.remove(token) is None
    assert p.ready(5) == ["x"]
    assert p.expired(100) == []  # "x" already came out through ready
    assert len(p) == 0


def test_drain_empties_it_in_watch_order() -> None:
    p: Purgatory[int] = Purgatory()
    for i in (3, 1, 2):
        p.watch(i, i, i)
    assert list(p) == [3, 1, 2]
    assert p.drain() == [3, 1, 2]
    assert len(p) == 0 and p.ready(10) == [] and p.expired(10) == []


def test_stale_heap_entries_are_compacted() -> None:
    p: Purgatory[int] = Purgatory()
    for i in range(1000):
        p.watch(i, 10_000 + i, i)
    assert len(p.ready(990)) == 990
    assert len(p._by_deadline) <= 2 * len(p) + 32


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32))
def test_random_operations_lose_nothing_and_duplicate_nothing(seed: int) -> None:
    rng = random.Random(seed)
    p: Purgatory[int] = Purgatory()
    model: dict[int, tuple[int, int]] = {}
    tokens: dict[int, int] = {}
    out: list[int] = []
    for n in range(200):
        op = rng.random()
        got: list[int] = []
        if op < 0.5:
            key, deadline = rng.randrange(50), rng.randrange(50)
            tokens[n] = p.watch(key, deadline, n)
            model[n] = (key, deadline)
        elif op < 0.7:
            w = rng.randrange(60)
            got = p.ready(w)
            assert sorted(got) == sorted(i for i, (k, _) in model.items() if k < w)
            assert [model[i][0] for i in got] == sorted(model[i][0] for i in got)
        elif op < 0.9:
            now = rng.randrange(60)
            got = p.expired(now)
            assert sorted(got) == sorted(i for i, (_, d) in model.items() if d <= now)
        else:
            if model:
                victim = rng.choice(list(model))
                assert p.remove(tokens[victim]) == victim
                got = [victim]
        for i in got:
            del model[i]
        out.extend(got)
        assert len(p) == len(model)
    out.extend(p.drain())
    assert sorted(out) == sorted(tokens)
