"""Log.append_is_quick: whether an append is only a page-cache write (no roll, no flush due)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbroker.storage.config import TopicConfig
from kbroker.storage.log import Log
from kbroker.storage.records import build_batch

pytestmark = pytest.mark.timeout(30)

NOW = 1_700_000_000_000


def _log(path: Path, clock: list[int], **config: str) -> Log:
    return Log.open(path, TopicConfig.from_dict(config), lambda: clock[0])


def test_with_the_default_configs_appends_are_quick_until_the_segment_is_full(tmp_path: Path) -> None:
    clock = [NOW]
    log = _log(tmp_path / "a", clock, **{"segment.bytes": "1000"})
    data = build_batch([(b"x" * 100,)])
    assert log.append_is_quick(len(data), NOW)
    while log.active_segment.size + len(data) <= 1000:
        assert log.append_is_quick(len(data), NOW)
        log.append(data, now_ms=NOW)
    assert not log.append_is_quick(len(data), NOW)  # this one rolls: the old segment is fsynced
    log.close()


def test_segment_ms_makes_an_append_slow_once_the_segment_is_old(tmp_path: Path) -> None:
    clock = [NOW]
    log = _log(tmp_path / "a", clock, **{"segment.ms": "60000"})
    log.append(build_batch([(b"x",)]), now_ms=NOW)
    assert log.append_is_quick(100, NOW + 59_000)
    assert not log.append_is_quick(100, NOW + 60_000)
    log.close()


def test_a_flush_policy_keeps_appends_that_may_flush_off_the_quick_path(tmp_path: Path) -> None:
    clock = [NOW]
    by_count = _log(tmp_path / "a", clock, **{"flush.messages": "1000"})
    assert by_count.append_is_quick(500, NOW)  # at most 500 records: no flush
    assert not by_count.append_is_quick(1000, NOW)  # may hold 1000 records: may flush
    by_count.close()
    by_time = _log(tmp_path / "b", clock, **{"flush.ms": "1000"})
    assert by_time.append_is_quick(100, NOW + 500)
    assert not by_time.append_is_quick(100, NOW + 950)  # within the margin of a due flush
    by_time.close()
