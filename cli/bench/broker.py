"""The benchmark's own broker: ``kbroker start`` in a subprocess on a free port, a temp data dir.

``LocalBroker(workers)`` starts it in its own process group (``--port 0``), reads the bootstrap
address from the "listening on" line and waits for the "ready in X s" line (the reader thread keeps
draining the pipe, so a chatty broker never blocks). ``startup_s`` is the wall time from spawning
the process to that line, as a user of ``kbroker start --workers N`` sees it. ``stop()`` sends
SIGTERM, waits, and SIGKILLs whatever is left of the process group; the data dir is removed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

__all__ = ["LocalBroker", "BrokerStartError"]

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
_LISTENING = re.compile(r"listening on (tcp://\S+)")
_READY = re.compile(r"\bready in (\d+\.\d+) s\b")
_WORKER_STARTED = re.compile(r"worker (\d+) started \(pid (\d+)\)")


class BrokerStartError(RuntimeError):
    """The broker exited or did not say "ready" in time (the message carries its last output)."""


class LocalBroker:
    """``kbroker start`` in its own process group on a free port; ``stop()`` takes it all down."""

    def __init__(self, workers: int, log_level: str = "info", extra_args: tuple[str, ...] = ()) -> None:
        self.workers = workers
        self._tmp = tempfile.TemporaryDirectory(prefix="kbroker-bench-")
        self._lines: list[str] = []
        self._cond = threading.Condition()
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kbroker.cli.main", "start", "--workers", str(workers),
             "--data-dir", str(Path(self._tmp.name) / "data"), "--host", "127.0.0.1", "--port", "0",
             "--log-level", log_level, *extra_args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            env=dict(os.environ, PYTHONUNBUFFERED="1"), start_new_session=True,
        )  # fmt: skip
        threading.Thread(target=self._read, name="bench-broker-output", daemon=True).start()
        try:
            self.bootstrap = self._wait(_LISTENING).group(1)
            self.reported_ready_s = float(self._wait(_READY).group(1))
            self.startup_s = time.perf_counter() - started
        except BaseException:
            self.stop()
            raise

    def __enter__(self) -> LocalBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._cond:
                self._lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _wait(self, pattern: re.Pattern[str]) -> re.Match[str]:
        deadline = time.monotonic() + READY_TIMEOUT_S
        with self._cond:
            while True:
                for line in self._lines:
                    if match := pattern.search(line):
                        return match
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.process.poll() is not None:
                    output = "\n".join(self._lines[-40:])
                    raise BrokerStartError(f"the broker did not start (waiting for {pattern.pattern!r}):\n{output}")
                self._cond.wait(min(remaining, 0.5))

    @property
    def scratch_dir(self) -> str:
        """A directory on the filesystem of the broker's data (removed with the broker)."""
        return self._tmp.name

    def worker_pids(self) -> dict[int, int]:
        """Worker id -> pid of the latest start of each worker, from the broker's log."""
        with self._cond:
            return {int(m.group(1)): int(m.group(2)) for line in self._lines if (m := _WORKER_STARTED.search(line))}

    def output(self) -> str:
        with self._cond:
            return "\n".join(self._lines)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                print("the benchmark's broker did not stop in time; killing it", file=sys.stderr)
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # whatever is left of its process group
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait(STOP_TIMEOUT_S)
        self._tmp.cleanup()
