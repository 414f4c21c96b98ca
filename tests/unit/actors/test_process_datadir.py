"""DirLock (one owner per directory) and cluster.json."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from kbroker.actors.datadir import CLUSTER_FILE, DataDirInUseError, DirLock, load_cluster_identity, worker_dir


def test_a_lock_records_the_holder_and_excludes_a_second_one(tmp_path: Path) -> None:
    with DirLock(tmp_path / "data") as first:
        assert first.held
        assert (tmp_path / "data" / ".lock").read_text().strip() == str(os.getpid())
        with pytest.raises(DataDirInUseError) as caught:
            DirLock(tmp_path / "data").acquire()  # another open file description: refused like another process
        assert caught.value.holder_pid == os.getpid()
        assert f"pid {os.getpid()}" in str(caught.value) and str((tmp_path / "data").resolve()) in str(caught.value)
    DirLock(tmp_path / "data").acquire()  # released: free again (and left to the garbage collector)


def test_release_empties_the_pid_but_keeps_the_file(tmp_path: Path) -> None:
    lock = DirLock(tmp_path)
    lock.acquire()
    lock.release()
    lock.release()  # idempotent
    assert (tmp_path / ".lock").exists() and (tmp_path / ".lock").read_text() == ""


def test_acquire_can_wait_for_the_previous_owner(tmp_path: Path) -> None:
    holder = DirLock(tmp_path)
    holder.acquire()
    waiting_started = threading.Event()
    release = threading.Thread(target=lambda: (waiting_started.wait(10), holder.release()))
    release.start()
    seen: list[int | None] = []
    try:
        DirLock(tmp_path).acquire(wait=10, poll_interval=0.01, on_wait=lambda pid: (seen.append(pid), waiting_started.set()))
    finally:
        release.join(10)
    assert seen == [os.getpid()]


def test_acquire_gives_up_after_its_wait(tmp_path: Path) -> None:
    with DirLock(tmp_path):
        with pytest.raises(DataDirInUseError, match="worker 3 directory"):
            DirLock(tmp_path, what="worker 3 directory").acquire(wait=0.05, poll_interval=0.01)


def test_cluster_identity_keeps_its_id_and_bumps_the_epoch(tmp_path: Path) -> None:
    first = load_cluster_identity(tmp_path)
    second = load_cluster_identity(tmp_path)
    assert len(first.cluster_id) == 22
    assert second.cluster_id == first.cluster_id
    assert (first.controller_epoch, second.controller_epoch) == (1, 2)
    assert load_cluster_identity(tmp_path, bump_epoch=False).controller_epoch == 2
    assert json.loads((tmp_path / CLUSTER_FILE).read_text())["controller_epoch"] == 2


def test_a_damaged_cluster_file_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / CLUSTER_FILE).write_text("{not json")
    with pytest.raises(ValueError, match=CLUSTER_FILE):
        load_cluster_identity(tmp_path)
    assert (tmp_path / CLUSTER_FILE).read_text() == "{not json"  # never replaced silently


def test_worker_dirs_are_named_by_id(tmp_path: Path) -> None:
    assert worker_dir(tmp_path, 7) == tmp_path / "worker-7"
