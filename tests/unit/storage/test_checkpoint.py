"""Tests for kbroker.storage.checkpoint: small text files replaced atomically."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import kbroker.storage.checkpoint as checkpoint_module
from kbroker.storage.checkpoint import read_checkpoint, write_checkpoint


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "replication-offset-checkpoint"
    write_checkpoint(path, [("topic-a", 0, 42), ("topic-b", 3, 7)])
    assert read_checkpoint(path) == [["topic-a", "0", "42"], ["topic-b", "3", "7"]]


def test_file_format_is_version_count_then_entries(tmp_path: Path) -> None:
    path = tmp_path / "cp"
    write_checkpoint(path, [(0, 5), (3, 100)])
    assert path.read_bytes() == b"0\n2\n0 5\n3 100\n"


def test_no_entries(tmp_path: Path) -> None:
    path = tmp_path / "cp"
    write_checkpoint(path, [])
    assert path.read_bytes() == b"0\n0\n"
    assert read_checkpoint(path) == []


def test_rewrite_replaces_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "cp"
    write_checkpoint(path, [(1, 1), (2, 2), (3, 3)])
    write_checkpoint(path, [(9, 9)], sync=False)
    assert read_checkpoint(path) == [["9", "9"]]


def test_missing_file_reads_as_none(tmp_path: Path) -> None:
    assert read_checkpoint(tmp_path / "never-written") is None


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"0\n",
        b"1\n0\n",  # unknown version
        b"0\n3\n1 2\n",  # fewer entries than declared
        b"0\n1\n1 2\n3 4\n",  # more entries than declared
        b"0\nx\n",  # count is not a number
        b"0\n-1\n",
        b"\xff\xfe\n1\n",  # not text
    ],
    ids=["empty", "version-only", "unknown-version", "short", "long", "bad-count", "negative-count", "binary"],
)
def test_malformed_file_raises_value_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "cp"
    path.write_bytes(content)
    with pytest.raises(ValueError):
        read_checkpoint(path)


def test_no_temp_file_is_left_behind(tmp_path: Path) -> None:
    path = tmp_path / "cp"
    for sync in (True, False):
        write_checkpoint(path, [(1, 2)], sync=sync)
        assert sorted(os.listdir(tmp_path)) == ["cp"]


def test_stale_temp_file_from_a_crash_is_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "cp"
    (tmp_path / "cp.tmp").write_bytes(b"half a checkpoint from before a crash, much longer than the new one")
    write_checkpoint(path, [(1, 2)])
    assert sorted(os.listdir(tmp_path)) == ["cp"]
    assert read_checkpoint(path) == [["1", "2"]]


def test_a_failed_write_leaves_the_old_file_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cp"
    write_checkpoint(path, [(1, 10), (2, 20)])

    def crash_before_rename(src: object, dst: object) -> None:
        raise OSError("crashed before the rename")

    monkeypatch.setattr(checkpoint_module.os, "replace", crash_before_rename)
    with pytest.raises(OSError, match="crashed"):
        write_checkpoint(path, [(3, 30)])
    monkeypatch.undo()
    assert read_checkpoint(path) == [["1", "10"], ["2", "20"]]  # never a half-written mix


def test_sync_fsyncs_the_file_and_its_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(checkpoint_module.os, "fsync", recording_fsync)
    path = tmp_path / "cp"
    write_checkpoint(path, [(1, 2)], sync=False)
    assert synced == []
    write_checkpoint(path, [(1, 2)])
    assert synced == [str(tmp_path / "cp.tmp"), str(tmp_path)]
