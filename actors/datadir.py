"""The data directory: who may use it (an exclusive lock) and the cluster's identity file.

    DATA/
      .lock              flock(LOCK_EX) held by the supervisor for its whole life; holds its pid
      cluster.json       {"version": 1, "cluster_id": "...", "controller_epoch": N}
      worker-<id>/
        .lock            flock(LOCK_EX) held by the worker process that owns this directory
        ...              that worker's replicas (storage/)

Invariants:
- At most one live process holds a given ``.lock`` (``fcntl.flock`` on an open file description;
  the kernel releases it when the holder dies, even by SIGKILL, so a crash never leaves the
  directory locked). The lock file is never deleted: deleting it would let two processes lock two
  different inodes under one name.
- Lock file descriptors are not inheritable (``os.open`` default), so no spawned child can keep
  its parent's lock alive after the parent died.
- ``cluster.json`` is replaced atomically (temp file, fsync, rename, fsync of the directory): a
  reader sees the old identity or the new one. ``cluster_id`` never changes once written;
  ``controller_epoch`` grows by one on every supervisor start.

Seam: the controller's metadata log will own the controller epoch once it exists; the cluster id
stays here (it names the data directory, as Kafka's meta.properties does).
"""

from __future__ import annotations

import base64
import errno
import fcntl
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from kbroker.storage.checkpoint import fsync_dir

__all__ = [
    "DataDirInUseError",
    "ClusterFileError",
    "DirLock",
    "ClusterIdentity",
    "load_cluster_identity",
    "worker_dir",
    "LOCK_FILE",
    "CLUSTER_FILE",
]

LOCK_FILE = ".lock"
CLUSTER_FILE = "cluster.json"
_CLUSTER_FILE_VERSION = 1


class DataDirInUseError(RuntimeError):
    """Another live process holds the directory's lock."""

    def __init__(self, path: Path, holder_pid: int | None, what: str) -> None:
        self.path = path
        self.holder_pid = holder_pid
        holder = f"pid {holder_pid}" if holder_pid is not None else "a process whose pid is not recorded yet"
        super().__init__(f"{what} {path} is in use by {holder}; stop that process first or choose another directory")


class ClusterFileError(ValueError):
    """``cluster.json`` exists but cannot be read; it is never replaced silently."""


def worker_dir(data_dir: Path, worker_id: int) -> Path:
    """Where worker ``worker_id`` keeps its replicas."""
    return data_dir / f"worker-{worker_id}"


class DirLock:
    """An exclusive ``flock`` on ``DIR/.lock`` that records the holder's pid.

    ``acquire()`` fails at once with ``DataDirInUseError``; ``acquire(wait=s)`` keeps trying for up
    to ``s`` seconds (a previous owner may still be shutting down). Usable as a context manager.
    """

    def __init__(self, directory: Path, *, what: str = "data directory") -> None:
        self.directory = Path(directory).resolve()
        self.path = self.directory / LOCK_FILE
        self._what = what
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(
        self,
        *,
        wait: float = 0.0,
        poll_interval: float = 0.05,
        on_wait: Callable[[int | None], None] | None = None,
    ) -> None:
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already locked by this process")
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait
        told = False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        raise
                holder = _read_pid(fd)
                if time.monotonic() >= deadline:
                    raise DataDirInUseError(self.directory, holder, self._what)
                if on_wait is not None and not told:
                    on_wait(holder)
                    told = True
                time.sleep(poll_interval)  # flock has no timeout: poll the non-blocking form
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # no stale pid for the next reader; the file itself stays
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> DirLock:
        if self._fd is None:
            self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class ClusterIdentity:
    cluster_id: str
    controller_epoch: int


def load_cluster_identity(data_dir: Path, *, bump_epoch: bool = True) -> ClusterIdentity:
    """Read (or create) ``cluster.json``; with ``bump_epoch``, store and return the next epoch.

    Call only while holding the data directory's lock. A damaged file is an error naming it: the
    cluster id must never be replaced silently.
    """
    path = Path(data_dir) / CLUSTER_FILE
    try:
        raw = path.read_text("utf-8")
    except FileNotFoundError:
        identity = ClusterIdentity(_new_cluster_id(), 0)
    else:
        try:
            doc = json.loads(raw)
            if doc.get("version") != _CLUSTER_FILE_VERSION:
                raise ValueError(f"unknown version {doc.get('version')!r}")
            identity = ClusterIdentity(str(doc["cluster_id"]), int(doc["controller_epoch"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ClusterFileError(f"{path} is damaged ({exc}); restore it or move the data directory aside") from None
    if bump_epoch:
        identity = ClusterIdentity(identity.cluster_id, identity.controller_epoch + 1)
    if bump_epoch or not path.exists():
        _write_atomically(path, identity)
    return identity


def _new_cluster_id() -> str:
    """22 characters of URL-safe base64 over a random UUID, as Kafka's cluster ids."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")


def _write_atomically(path: Path, identity: ClusterIdentity) -> None:
    doc = {"version": _CLUSTER_FILE_VERSION, "cluster_id": identity.cluster_id, "controller_epoch": identity.controller_epoch}
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, (json.dumps(doc) + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)
