"""Tests for kbroker.storage.epoch_cache: leader epoch history (KIP-101), checked against Kafka's
LeaderEpochFileCache semantics."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kbroker.storage.checkpoint import read_checkpoint
from kbroker.storage.epoch_cache import UNDEFINED_EPOCH, UNDEFINED_OFFSET, EpochEntry, LeaderEpochCache

UNDEFINED = (UNDEFINED_EPOCH, UNDEFINED_OFFSET)


def cache_with(*entries: tuple[int, int], path: Path | None = None) -> LeaderEpochCache:
    cache = LeaderEpochCache(path)
    for epoch, start in entries:
        assert cache.assign(epoch, start)
    return cache


def test_undefined_values_are_kafkas() -> None:
    assert UNDEFINED == (-1, -1)


# --- assign -----------------------------------------------------------------------------------


def test_empty_cache() -> None:
    cache = LeaderEpochCache(None)
    assert cache.entries == []
    assert cache.latest_epoch == UNDEFINED_EPOCH
    assert cache.start_offset_of(0) is None


def test_assign_appends_new_epochs() -> None:
    cache = LeaderEpochCache(None)
    assert cache.assign(0, 0) is True
    assert cache.assign(2, 15) is True
    assert cache.entries == [EpochEntry(0, 0), EpochEntry(2, 15)]
    assert cache.latest_epoch == 2
    assert (cache.start_offset_of(0), cache.start_offset_of(1), cache.start_offset_of(2)) == (0, None, 15)


@pytest.mark.parametrize("start", [5, 10, 100])
def test_assign_of_the_latest_epoch_again_is_ignored(start: int) -> None:
    cache = cache_with((1, 0), (2, 10))
    assert cache.assign(2, start) is False
    assert cache.entries == [EpochEntry(1, 0), EpochEntry(2, 10)]


def test_assign_of_an_older_epoch_is_an_error() -> None:
    cache = cache_with((1, 0), (3, 10))
    with pytest.raises(ValueError, match="older than the latest epoch 3"):
        cache.assign(2, 20)
    assert cache.entries == [EpochEntry(1, 0), EpochEntry(3, 10)]


def test_assign_of_a_negative_epoch_is_ignored() -> None:
    cache = cache_with((1, 0))
    assert cache.assign(UNDEFINED_EPOCH, 50) is False
    assert cache.entries == [EpochEntry(1, 0)]


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        ((5, 20), [(0, 0), (1, 10), (5, 20)]),  # drops the entry starting at 20 itself
        ((5, 10), [(0, 0), (5, 10)]),
        ((5, 11), [(0, 0), (1, 10), (5, 11)]),
        ((5, 0), [(5, 0)]),
        ((5, 30), [(0, 0), (1, 10), (2, 20), (5, 30)]),
    ],
)
def test_assign_drops_entries_starting_at_or_after_the_new_start(new: tuple[int, int], expected: list) -> None:
    cache = cache_with((0, 0), (1, 10), (2, 20))
    assert cache.assign(*new) is True
    assert cache.entries == [EpochEntry(*e) for e in expected]


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 50)), max_size=30))
def test_entries_stay_strictly_increasing_in_epoch_and_start(steps: list[tuple[int, int]]) -> None:
    cache = LeaderEpochCache(None)
    epoch = -1
    for bump, start in steps:
        epoch += bump
        before = cache.entries
        changed = cache.assign(epoch, start)
        entries = cache.entries
        assert changed == (entries != before)
        assert all(a.epoch < b.epoch and a.start_offset < b.start_offset for a, b in zip(entries, entries[1:]))
        if changed:
            assert entries[-1] == EpochEntry(epoch, start)


# --- end_offset_for, as Kafka's LeaderEpochFileCache.endOffsetFor --------------------------------

LEO = 30


@pytest.fixture
def history() -> LeaderEpochCache:
    return cache_with((1, 0), (3, 10), (5, 20))


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        (UNDEFINED_EPOCH, UNDEFINED),  # a bootstrapping follower
        (5, (5, LEO)),  # latest epoch: the log end offset
        (3, (3, 20)),  # a known epoch ends where the next one starts
        (1, (1, 10)),
        (4, (3, 20)),  # unknown, between epochs: the largest epoch below, the start of the next above
        (2, (1, 10)),
        (0, (0, 0)),  # below the first: the requested epoch, the first start offset
        (-2, (-2, 0)),
        (6, UNDEFINED),  # above the latest
        (1000, UNDEFINED),
    ],
)
def test_end_offset_for(history: LeaderEpochCache, requested: int, expected: tuple[int, int]) -> None:
    assert history.end_offset_for(requested, LEO) == expected


@pytest.mark.parametrize("requested", [UNDEFINED_EPOCH, 0, 1, 7])
def test_end_offset_for_on_an_empty_cache_is_undefined(requested: int) -> None:
    assert LeaderEpochCache(None).end_offset_for(requested, LEO) == UNDEFINED


def test_end_offset_for_a_single_epoch() -> None:
    cache = cache_with((4, 7))
    assert cache.end_offset_for(4, 12) == (4, 12)
    assert cache.end_offset_for(3, 12) == (3, 7)
    assert cache.end_offset_for(5, 12) == UNDEFINED


# --- truncation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("end", "expected"),
    [
        (100, [(1, 0), (3, 10), (5, 20)]),
        (21, [(1, 0), (3, 10), (5, 20)]),
        (20, [(1, 0), (3, 10)]),
        (15, [(1, 0), (3, 10)]),
        (10, [(1, 0)]),
        (0, []),
    ],
)
def test_truncate_from_end(history: LeaderEpochCache, end: int, expected: list) -> None:
    history.truncate_from_end(end)
    assert history.entries == [EpochEntry(*e) for e in expected]


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (0, [(1, 0), (3, 10), (5, 20)]),
        (5, [(1, 5), (3, 10), (5, 20)]),  # the spanning epoch is clamped to the new start
        (10, [(3, 10), (5, 20)]),
        (15, [(3, 15), (5, 20)]),
        (25, [(5, 25)]),
        (1000, [(5, 1000)]),
    ],
)
def test_truncate_from_start(history: LeaderEpochCache, start: int, expected: list) -> None:
    history.truncate_from_start(start)
    assert history.entries == [EpochEntry(*e) for e in expected]


def test_truncate_from_start_before_the_first_epoch_changes_nothing() -> None:
    cache = cache_with((2, 50), (4, 60))
    cache.truncate_from_start(10)
    assert cache.entries == [EpochEntry(2, 50), EpochEntry(4, 60)]


def test_clear(history: LeaderEpochCache) -> None:
    history.clear()
    assert history.entries == []
    assert history.latest_epoch == UNDEFINED_EPOCH


# --- persistence ------------------------------------------------------------------------------


def test_every_change_is_persisted_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "leader-epoch-checkpoint"
    cache = cache_with((0, 0), (2, 10), (3, 25), path=path)
    assert read_checkpoint(path) == [["0", "0"], ["2", "10"], ["3", "25"]]
    assert LeaderEpochCache.load(path).entries == cache.entries

    cache.truncate_from_end(25)
    assert LeaderEpochCache.load(path).entries == [EpochEntry(0, 0), EpochEntry(2, 10)]
    cache.truncate_from_start(5)
    assert LeaderEpochCache.load(path).entries == [EpochEntry(0, 5), EpochEntry(2, 10)]
    cache.assign(7, 8)
    assert LeaderEpochCache.load(path).entries == [EpochEntry(0, 5), EpochEntry(7, 8)]
    cache.clear()
    assert LeaderEpochCache.load(path).entries == []


def test_loaded_cache_keeps_persisting(tmp_path: Path) -> None:
    path = tmp_path / "leader-epoch-checkpoint"
    cache_with((1, 0), path=path)
    loaded = LeaderEpochCache.load(path)
    loaded.assign(2, 40)
    assert LeaderEpochCache.load(path).entries == [EpochEntry(1, 0), EpochEntry(2, 40)]


def test_unchanged_history_is_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "leader-epoch-checkpoint"
    cache = cache_with((1, 0), (2, 10), path=path)
    path.unlink()
    cache.assign(2, 15)  # same epoch: ignored
    cache.assign(-1, 15)
    cache.truncate_from_end(50)
    cache.truncate_from_start(0)
    assert not path.exists()


def test_missing_file_loads_empty(tmp_path: Path) -> None:
    assert LeaderEpochCache.load(tmp_path / "leader-epoch-checkpoint").entries == []


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"garbage",
        b"0\n2\n1 0\n",
        b"7\n1\n1 0\n",
        b"0\n1\n1 0 9\n",
        b"0\n1\n1\n",
        b"0\n1\none zero\n",
        b"\x00\xff\x10",
    ],
    ids=["empty", "text", "truncated", "version", "three-fields", "one-field", "not-numbers", "binary"],
)
def test_damaged_file_loads_empty(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "leader-epoch-checkpoint"
    path.write_bytes(content)
    cache = LeaderEpochCache.load(path)
    assert cache.entries == []
    assert cache.assign(3, 0)  # and is usable: the log rebuilds it
    assert LeaderEpochCache.load(path).entries == [EpochEntry(3, 0)]


def test_in_memory_cache_writes_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cache = cache_with((1, 0), (2, 5))
    cache.truncate_from_start(1)
    cache.clear()
    assert list(tmp_path.iterdir()) == []
