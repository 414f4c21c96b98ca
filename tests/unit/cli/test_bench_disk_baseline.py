"""The raw file append baseline of `kbroker bench compare`."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbroker.cli.bench.disk_baseline import append_bandwidth

pytestmark = pytest.mark.timeout(30)


def test_it_writes_exactly_the_bytes_asked_in_the_directory_and_leaves_nothing(tmp_path: Path) -> None:
    result = append_bandwidth(1_000_000 + 7, 65_536, tmp_path)
    assert result["bytes"] == 1_000_007 and result["chunk_bytes"] == 65_536
    assert result["seconds"] > 0 and result["mb_per_s"] == pytest.approx(1_000_007 / result["seconds"] / 1e6)
    assert list(tmp_path.iterdir()) == []


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        append_bandwidth(0, 10)
