"""Segment.find_position near the end comes from what was appended, and agrees with a walk of the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbroker.storage.log import Log
from kbroker.storage.config import TopicConfig
from kbroker.storage.records import build_batch
from kbroker.storage.segment import Segment

pytestmark = pytest.mark.timeout(60)

NOW = 1_700_000_000_000


def _walked(segment: Segment, offset: int) -> int | None:
    _, position = segment.offset_index.lookup(offset)
    for pos, header in segment._walk_headers(position):
        if header.last_offset >= offset:
            return pos
    return None


def _check_every_offset(segment: Segment) -> None:
    for offset in range(segment.base_offset, segment.next_offset + 3):
        assert segment.find_position(offset) == _walked(segment, offset), offset


def _log(path: Path) -> Log:
    return Log.open(path, TopicConfig.from_dict({"index.interval.bytes": "600"}), lambda: NOW)


def test_positions_after_appends_match_a_walk_of_the_file(tmp_path: Path) -> None:
    log = _log(tmp_path / "a")
    for i in range(60):
        log.append(build_batch([(b"v" * (i % 7 * 40),)] * (1 + i % 3)), now_ms=NOW)
    segment = log.active_segment
    assert segment._tail_base >= 0 and 1 < len(segment._tail_pos) < 60  # the index has entries, the tail is short
    _check_every_offset(segment)
    assert segment.find_position(segment.next_offset) is None
    log.close()


def test_after_reopen_and_truncation_positions_still_match_a_walk_of_the_file(tmp_path: Path) -> None:
    log = _log(tmp_path / "a")
    for _ in range(40):
        log.append(build_batch([(b"x" * 100,)]), now_ms=NOW)
    log.close()
    log = _log(tmp_path / "a")  # reopened: the tail is not known (unless an index rebuild walked the file)
    segment = log.active_segment
    _check_every_offset(segment)
    log.truncate_to(25)  # forgotten, or rebuilt from the cut file by an index rebuild
    _check_every_offset(segment)
    for _ in range(20):
        log.append(build_batch([(b"y" * 100,)]), now_ms=NOW)
    assert segment._tail_base >= 0  # an index entry was written since: known again
    _check_every_offset(segment)
    got = log.read(25, 1 << 20)
    assert got.data and got.next_offset == 45
    log.close()
