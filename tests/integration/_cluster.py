"""A real ``kbroker start`` in a subprocess, for integration tests (used by conftest.py).

``launch`` runs the broker in its own session (process group) with ``--port 0``, reads the port
from the "listening on" line and waits for "ready". ``Cluster`` looks at it (DescribeCluster over
a ``Connection``, the pids it started, its output) and stops it. Everything waits on a condition
with a deadline (``wait_for_line``, ``wait_until``), never on a fixed sleep.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

from kbroker.transport.connection import Connection
from kbroker.transport.messages_admin import DescribeCluster, DescribeClusterResponse

__all__ = [
    "Cluster", "OutputLog", "broker_command", "launch", "force_cleanup", "process_gone", "wait_until",
    "READY_TIMEOUT", "STOP_TIMEOUT", "EXIT_TIMEOUT", "LISTENING", "READY", "WORKER_STARTED",
]  # fmt: skip

READY_TIMEOUT = 30.0  # two busy cores, N interpreters starting: generous, but bounded
STOP_TIMEOUT = 20.0
EXIT_TIMEOUT = 10.0  # for worker processes to disappear
HEARTBEAT_INTERVAL_MS = 100  # fast heartbeats keep the tests short; session timeout stays at its default
LISTENING = re.compile(r"listening on (tcp://\S+)")
READY = re.compile(r"\bready in (\d+\.\d+) s\b")
WORKER_STARTED = re.compile(r"worker (\d+) started \(pid (\d+)\)")

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.01) -> T:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def process_gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie waiting to be reaped counts as exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # exists, owned by someone else (a reused pid): not ours, but not gone either
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] in "ZX"


class OutputLog:
    """Collects the broker's merged stdout/stderr lines in a thread; waits for patterns."""

    def __init__(self, stream: object) -> None:
        self._lines: list[str] = []
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), name="broker-output", daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            with self._cond:
                self._lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def lines(self) -> list[str]:
        with self._cond:
            return list(self._lines)

    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, pattern: re.Pattern[str], timeout: float, start: int = 0) -> re.Match[str]:
        """The first line (from index ``start``) matching ``pattern``; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            index = start
            while True:
                for index in range(index, len(self._lines)):
                    match = pattern.search(self._lines[index])
                    if match:
                        return match
                index = len(self._lines)
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    why = "the broker's output ended" if self._closed else f"{timeout:g} s passed"
                    raise AssertionError(f"{why} without a line matching {pattern.pattern!r}; output:\n{self.text()}")
                self._cond.wait(remaining)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


@dataclass
class Cluster:
    """A running ``kbroker start`` and ways to look at it."""

    process: subprocess.Popen[str]
    data_dir: Path
    workers: int
    output: OutputLog
    bootstrap: str = ""
    startup_s: float = 0.0  # from Popen to the "ready" line
    _connections: list[Connection] = field(default_factory=list)
    _admin: Connection | None = None  # to the bootstrap endpoint, for describe()

    @property
    def pid(self) -> int:
        return self.process.pid

    def connection(self, endpoint: str | None = None, timeout: float = 5.0) -> Connection:
        conn = Connection(endpoint or self.bootstrap, timeout=timeout)
        self._connections.append(conn)
        return conn

    def describe(self, timeout: float = 5.0) -> DescribeClusterResponse:
        if self._admin is None:
            self._admin = self.connection(timeout=timeout)
        reply = self._admin.request(DescribeCluster(), timeout=timeout)
        assert isinstance(reply, DescribeClusterResponse), reply
        return reply

    def alive_pids(self) -> dict[int, int]:
        """Worker id -> pid of the workers the controller reports alive."""
        return {w.worker_id: w.pid for w in self.describe().workers if w.alive}

    def started_pids(self) -> list[int]:
        """Every worker pid this broker has started, from its log ("worker N started (pid P)")."""
        return [int(m.group(2)) for line in self.output.lines if (m := WORKER_STARTED.search(line))]

    def wait_all_alive(self, timeout: float = READY_TIMEOUT) -> dict[int, int]:
        def all_alive() -> dict[int, int] | None:
            pids = self.alive_pids()
            return pids if len(pids) == self.workers else None

        return wait_until(all_alive, timeout, f"{self.workers} live workers")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Signal the supervisor and wait for it to exit; returns its exit code."""
        self.close_connections()
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the broker did not exit within {timeout:g} s of {signal.Signals(sig).name}; output:\n{self.output.text()}")

    def close_connections(self) -> None:
        for conn in self._connections:
            conn.close()
        self._connections.clear()
        self._admin = None

    def assert_no_orphans(self, timeout: float = EXIT_TIMEOUT) -> None:
        """Every worker process this broker started has exited (within ``timeout``)."""
        pids = self.started_pids()
        assert pids, f"no worker was ever started; output:\n{self.output.text()}"
        deadline = time.monotonic() + timeout
        while (left := [pid for pid in pids if not process_gone(pid)]) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not left, f"worker processes still running: {left}; output:\n{self.output.text()}"


def broker_command(data_dir: Path, workers: int, args: tuple[str, ...] | list[str] = ()) -> list[str]:
    return [
        sys.executable, "-m", "kbroker.cli.main", "start",
        "--workers", str(workers),
        "--data-dir", str(data_dir),
        "--host", "127.0.0.1",
        "--port", "0",
        "--heartbeat-interval-ms", str(HEARTBEAT_INTERVAL_MS),
        *args,
    ]  # fmt: skip


def launch(data_dir: Path, workers: int, args: tuple[str, ...] | list[str] = (), ready: bool = True) -> Cluster:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    started = time.monotonic()
    process = subprocess.Popen(
        broker_command(data_dir, workers, args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        env=env,
        start_new_session=True,  # its own process group: the fixture can always clean up after it
    )
    cluster = Cluster(process, data_dir, workers, OutputLog(process.stdout))
    try:
        cluster.bootstrap = cluster.output.wait_for_line(LISTENING, READY_TIMEOUT).group(1)
        if ready:
            cluster.output.wait_for_line(READY, READY_TIMEOUT)
            cluster.startup_s = time.monotonic() - started
    except BaseException:
        force_cleanup(cluster)
        raise
    return cluster


def force_cleanup(cluster: Cluster) -> None:
    cluster.close_connections()
    try:  # the supervisor and its workers form the process group this fixture created
        os.killpg(cluster.process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # nothing left: the normal case
    cluster.process.wait(STOP_TIMEOUT)
    cluster.output.join(STOP_TIMEOUT)
    if cluster.process.stdout is not None:
        cluster.process.stdout.close()
