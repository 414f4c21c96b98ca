"""Tests for kbroker.storage.index: the sparse offset and time indexes of a segment."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import pytest

from kbroker.storage.index import OffsetIndex, TimeIndex

BASE = 100
Index = TypeVar("Index", OffsetIndex, TimeIndex)


@pytest.fixture
def opened() -> Iterator[Callable[[Index], Index]]:
    """Register an index so its file descriptor is closed after the test."""
    indexes: list[OffsetIndex | TimeIndex] = []

    def keep(index: Index) -> Index:
        indexes.append(index)
        return index

    yield keep
    for index in indexes:
        index.close()


@pytest.fixture
def offset_index(tmp_path: Path, opened: Callable) -> OffsetIndex:
    index = opened(OffsetIndex(tmp_path / "00000000000000000100.index", BASE))
    for offset, position in [(100, 0), (110, 4096), (125, 9000)]:
        index.append(offset, position)
    return index


@pytest.fixture
def time_index(tmp_path: Path, opened: Callable) -> TimeIndex:
    index = opened(TimeIndex(tmp_path / "00000000000000000100.timeindex", BASE))
    for timestamp, offset in [(1_000, 100), (2_000, 110), (3_000, 125)]:
        index.append(timestamp, offset)
    return index


# --- OffsetIndex ------------------------------------------------------------------------------


def test_offset_index_file_format(offset_index: OffsetIndex) -> None:
    offset_index.flush()
    assert offset_index.path.read_bytes() == b"".join(
        struct.pack(">ii", rel, pos) for rel, pos in [(0, 0), (10, 4096), (25, 9000)]
    )


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (0, (100, 0)),  # below the segment
        (99, (100, 0)),
        (100, (100, 0)),
        (109, (100, 0)),
        (110, (110, 4096)),
        (124, (110, 4096)),
        (125, (125, 9000)),
        (10**9, (125, 9000)),
    ],
)
def test_offset_lookup_finds_the_largest_entry_at_or_below(
    offset_index: OffsetIndex, offset: int, expected: tuple
) -> None:
    assert offset_index.lookup(offset) == expected


def test_empty_offset_index_points_at_the_segment_start(tmp_path: Path, opened: Callable) -> None:
    index = opened(OffsetIndex(tmp_path / "x.index", BASE))
    assert len(index) == 0
    assert index.lookup(150) == (BASE, 0)
    assert index.last() == (BASE, 0)
    assert index.sane(0)


def test_offset_index_last_and_len(offset_index: OffsetIndex) -> None:
    assert len(offset_index) == 3
    assert offset_index.last() == (125, 9000)


def test_offset_index_ignores_offsets_that_do_not_grow(offset_index: OffsetIndex) -> None:
    offset_index.append(125, 9500)
    offset_index.append(120, 9600)
    assert len(offset_index) == 3
    assert offset_index.path.stat().st_size == 3 * 8


def test_offset_index_loads_what_was_written(offset_index: OffsetIndex, opened: Callable) -> None:
    offset_index.close()
    loaded = opened(OffsetIndex.load(offset_index.path, BASE))
    assert len(loaded) == 3
    assert list(loaded.rel_offsets) == [0, 10, 25]
    assert list(loaded.positions) == [0, 4096, 9000]
    assert loaded.lookup(111) == (110, 4096)
    assert loaded.sane(log_size=9001)
    loaded.append(130, 9500)  # appends after loading go to the end of the same file
    assert opened(OffsetIndex.load(offset_index.path, BASE)).last() == (130, 9500)


def test_missing_offset_index_file_loads_empty(tmp_path: Path, opened: Callable) -> None:
    index = opened(OffsetIndex.load(tmp_path / "absent.index", BASE))
    assert len(index) == 0
    assert index.sane(0)


@pytest.mark.parametrize(
    ("position", "kept"), [(9001, 3), (9000, 2), (5000, 2), (4096, 1), (1, 1), (0, 0)]
)
def test_offset_index_truncate_to_position(
    offset_index: OffsetIndex, opened: Callable, position: int, kept: int
) -> None:
    offset_index.truncate_to_position(position)
    assert len(offset_index) == kept
    assert all(p < position for p in offset_index.positions)
    assert offset_index.path.stat().st_size == kept * 8
    assert len(opened(OffsetIndex.load(offset_index.path, BASE))) == kept
    offset_index.append(200, 20_000)  # the index is still appendable after truncation
    assert offset_index.last() == (200, 20_000)


def test_offset_index_reset(offset_index: OffsetIndex, opened: Callable) -> None:
    offset_index.reset()
    assert len(offset_index) == 0
    assert offset_index.lookup(200) == (BASE, 0)
    assert offset_index.path.stat().st_size == 0
    offset_index.append(105, 50)
    assert opened(OffsetIndex.load(offset_index.path, BASE)).last() == (105, 50)


def test_offset_index_delete(offset_index: OffsetIndex) -> None:
    offset_index.delete()
    assert not offset_index.path.exists()


# --- OffsetIndex.sane -------------------------------------------------------------------------


def write_offset_entries(path: Path, entries: list[tuple[int, int]], tail: bytes = b"") -> None:
    path.write_bytes(b"".join(struct.pack(">ii", rel, pos) for rel, pos in entries) + tail)


def test_sane_offset_index(tmp_path: Path, opened: Callable) -> None:
    path = tmp_path / "i.index"
    write_offset_entries(path, [(0, 0), (5, 100), (9, 300)])
    assert opened(OffsetIndex.load(path, BASE)).sane(log_size=301)


@pytest.mark.parametrize("tail", [b"\x00", b"\x00" * 4, b"\x00" * 7])
def test_torn_offset_index_is_not_sane(tmp_path: Path, opened: Callable, tail: bytes) -> None:
    path = tmp_path / "i.index"
    write_offset_entries(path, [(0, 0), (5, 100)], tail)
    index = opened(OffsetIndex.load(path, BASE))
    assert len(index) == 2  # whole entries are still read
    assert not index.sane(log_size=10_000)
    index.reset()
    assert index.sane(log_size=10_000)


@pytest.mark.parametrize(
    "entries",
    [
        [(0, 0), (5, 100), (5, 200)],  # offsets repeat
        [(0, 0), (9, 100), (5, 200)],  # offsets go back
        [(0, 0), (5, 100), (9, 100)],  # positions repeat
        [(0, 0), (5, 300), (9, 200)],  # positions go back
        [(-1, 0)],
        [(0, -8)],
    ],
    ids=["offset-repeat", "offset-back", "position-repeat", "position-back", "negative-offset", "negative-position"],
)
def test_non_monotonic_or_negative_offset_index_is_not_sane(tmp_path: Path, opened: Callable, entries: list) -> None:
    path = tmp_path / "i.index"
    write_offset_entries(path, entries)
    assert not opened(OffsetIndex.load(path, BASE)).sane(log_size=10_000)


@pytest.mark.parametrize(("log_size", "sane"), [(301, True), (300, False), (200, False), (0, False)])
def test_offset_index_positions_must_lie_inside_the_log(
    tmp_path: Path, opened: Callable, log_size: int, sane: bool
) -> None:
    path = tmp_path / "i.index"
    write_offset_entries(path, [(0, 0), (5, 100), (9, 300)])
    assert opened(OffsetIndex.load(path, BASE)).sane(log_size) is sane


# --- TimeIndex --------------------------------------------------------------------------------


def test_time_index_file_format(time_index: TimeIndex) -> None:
    assert time_index.path.read_bytes() == b"".join(
        struct.pack(">qi", ts, rel) for ts, rel in [(1_000, 0), (2_000, 10), (3_000, 25)]
    )


def test_time_index_appends_only_when_the_timestamp_grows(time_index: TimeIndex) -> None:
    time_index.append(3_000, 130)
    time_index.append(2_500, 131)
    assert len(time_index) == 3
    assert time_index.max_timestamp == 3_000
    time_index.append(3_001, 131)
    assert len(time_index) == 4
    assert time_index.max_timestamp == 3_001
    assert time_index.path.stat().st_size == 4 * 12


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [(0, None), (1_000, None), (1_001, 100), (2_000, 100), (2_001, 110), (3_000, 110), (3_001, 125), (10**12, 125)],
)
def test_last_offset_before(time_index: TimeIndex, timestamp: int, expected: int | None) -> None:
    assert time_index.last_offset_before(timestamp) == expected


def test_empty_time_index(tmp_path: Path, opened: Callable) -> None:
    index = opened(TimeIndex(tmp_path / "x.timeindex", BASE))
    assert len(index) == 0
    assert index.max_timestamp == -1
    assert index.last_offset_before(10**12) is None
    assert index.sane(BASE)


def test_time_index_loads_what_was_written(time_index: TimeIndex, opened: Callable) -> None:
    time_index.close()
    loaded = opened(TimeIndex.load(time_index.path, BASE))
    assert (loaded.timestamps, loaded.rel_offsets) == ([1_000, 2_000, 3_000], [0, 10, 25])
    assert loaded.max_timestamp == 3_000
    assert loaded.sane(next_offset=126)
    loaded.append(4_000, 140)
    assert opened(TimeIndex.load(time_index.path, BASE)).max_timestamp == 4_000


@pytest.mark.parametrize(("next_offset", "kept"), [(126, 3), (125, 2), (111, 2), (110, 1), (101, 1), (100, 0)])
def test_time_index_truncate_to_offset(time_index: TimeIndex, opened: Callable, next_offset: int, kept: int) -> None:
    time_index.truncate_to_offset(next_offset)
    assert len(time_index) == kept
    assert time_index.path.stat().st_size == kept * 12
    assert len(opened(TimeIndex.load(time_index.path, BASE))) == kept
    assert time_index.sane(next_offset)


def test_time_index_reset(time_index: TimeIndex, opened: Callable) -> None:
    time_index.reset()
    assert (len(time_index), time_index.max_timestamp) == (0, -1)
    assert time_index.path.stat().st_size == 0
    time_index.append(500, 100)  # after a reset any timestamp is the largest so far
    assert opened(TimeIndex.load(time_index.path, BASE)).timestamps == [500]


# --- TimeIndex.sane ---------------------------------------------------------------------------


def write_time_entries(path: Path, entries: list[tuple[int, int]], tail: bytes = b"") -> None:
    path.write_bytes(b"".join(struct.pack(">qi", ts, rel) for ts, rel in entries) + tail)


@pytest.mark.parametrize("tail", [b"\x00", b"\x00" * 8, b"\x00" * 11])
def test_torn_time_index_is_not_sane(tmp_path: Path, opened: Callable, tail: bytes) -> None:
    path = tmp_path / "t.timeindex"
    write_time_entries(path, [(1_000, 0), (2_000, 5)], tail)
    index = opened(TimeIndex.load(path, BASE))
    assert len(index) == 2
    assert not index.sane(next_offset=200)
    index.reset()
    assert index.sane(next_offset=200)


@pytest.mark.parametrize(
    "entries",
    [
        [(1_000, 0), (1_000, 5)],  # timestamps repeat
        [(2_000, 0), (1_000, 5)],  # timestamps go back
        [(1_000, 5), (2_000, 4)],  # offsets go back
        [(1_000, -1)],
    ],
    ids=["ts-repeat", "ts-back", "offset-back", "negative-offset"],
)
def test_non_monotonic_time_index_is_not_sane(tmp_path: Path, opened: Callable, entries: list) -> None:
    path = tmp_path / "t.timeindex"
    write_time_entries(path, entries)
    assert not opened(TimeIndex.load(path, BASE)).sane(next_offset=200)


@pytest.mark.parametrize(("next_offset", "sane"), [(126, True), (125, False), (100, False)])
def test_time_index_offsets_must_lie_inside_the_segment(
    tmp_path: Path, opened: Callable, next_offset: int, sane: bool
) -> None:
    path = tmp_path / "t.timeindex"
    write_time_entries(path, [(1_000, 0), (2_000, 25)])
    assert opened(TimeIndex.load(path, BASE)).sane(next_offset) is sane
