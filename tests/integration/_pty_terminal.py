"""Run a command under a real pseudo-terminal (the ``pty`` module) of a given size, for CLI tests.

``PtyProcess`` starts the command with a pty as its stdin, stdout and stderr (its own session, so
the pty is its controlling terminal), collects everything it draws in a thread, and waits for
text to appear in it (ANSI escape sequences removed) with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import termios
import threading
import time

__all__ = ["PtyProcess", "strip_ansi"]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78]")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


class PtyProcess:
    def __init__(self, command: list[str], *, columns: int = 100, rows: int = 30, env: dict[str, str] | None = None) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        environment = dict(env or os.environ, TERM="xterm-256color", COLUMNS=str(columns), LINES=str(rows))
        self.process = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, env=environment, start_new_session=True)
        os.close(slave)
        self._master = master
        self._chunks: list[str] = []
        self._cond = threading.Condition()
        self._closed = False
        self._reader = threading.Thread(target=self._read, name="pty-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self._master, 65536)
            except OSError:  # EIO: every writer closed (the process exited)
                data = b""
            with self._cond:
                if not data:
                    self._closed = True
                    self._cond.notify_all()
                    return
                self._chunks.append(data.decode("utf-8", "replace"))
                self._cond.notify_all()

    def text(self) -> str:
        with self._cond:
            return strip_ansi("".join(self._chunks))

    def mark(self) -> int:
        """A position in the output; ``wait_for(..., since=mark)`` only looks after it."""
        return len(self.text())

    def wait_for(self, pattern: str, timeout: float, since: int = 0) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                match = regex.search(strip_ansi("".join(self._chunks)), since)
                if match:
                    return match
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    tail = strip_ansi("".join(self._chunks))[-3000:]
                    raise AssertionError(f"no {pattern!r} on the terminal within {timeout:g} s; it shows:\n{tail}")
                self._cond.wait(min(remaining, 0.5))

    def send(self, keys: str) -> None:
        os.write(self._master, keys.encode())

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(10)
        self._reader.join(5)
        try:
            os.close(self._master)
        except OSError:
            pass
