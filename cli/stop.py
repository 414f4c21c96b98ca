"""``kbroker stop --data-dir DIR``: stop the broker that runs on a data directory (e.g. in the background).

The supervisor holds an exclusive ``flock`` on ``DIR/.lock`` for its whole life and writes its
pid there (``actors/datadir.py``); the lock is what says whether it still runs, so a stale pid
left by a crash is never signalled. ``stop`` sends SIGTERM to that pid and waits, up to
``--timeout``, until the lock is free (the broker has stopped its workers and released the
directory). Exit codes: 0 stopped, 1 no broker runs there or it did not stop in time, 2 bad usage.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import time
from pathlib import Path

import typer

from kbroker.cli.output import fail

__all__ = ["stop", "broker_pid"]

_LOCK = ".lock"


def broker_pid(data_dir: Path) -> int | None:
    """The pid of the broker holding ``data_dir``'s lock; None when no process holds it."""
    path = Path(data_dir) / _LOCK
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else -1  # held, pid not written yet
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def stop(
    data_dir: Path = typer.Option(Path("kbroker-data"), "--data-dir", help="The data directory of the broker to stop."),
    timeout: float = typer.Option(30.0, "--timeout", min=0.1, help="Seconds to wait for the broker to stop."),
) -> None:
    """Stop a running broker (SIGTERM to its supervisor) and wait until it has released its data directory.

    Example: kbroker start --data-dir ./data --no-ui > broker.log 2>&1 &  ...  kbroker stop --data-dir ./data
    """
    if not data_dir.is_dir():
        raise fail(f"{data_dir} is not a directory; give the --data-dir the broker was started with", 2)
    pid = broker_pid(data_dir)
    if pid is None:
        raise fail(f"no broker is running on {data_dir}")
    if pid <= 0:
        raise fail(f"a broker is starting on {data_dir} but has not written its pid yet; try again")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass  # it is exiting already: wait for the lock below
    except PermissionError:
        raise fail(f"not allowed to signal the broker (pid {pid}) on {data_dir}; run as its user") from None
    deadline = time.monotonic() + timeout
    while broker_pid(data_dir) is not None:
        if time.monotonic() >= deadline:
            raise fail(f"the broker (pid {pid}) did not stop within {timeout:g} s; it may still be stopping its workers")
        time.sleep(0.05)  # flock has no timeout: poll the non-blocking form
    typer.echo(f"Stopped the broker on {data_dir} (pid {pid}).")
