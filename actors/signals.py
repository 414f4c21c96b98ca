"""Signals and wake-ups for a main thread that waits on file descriptors.

The supervisor and each worker park their main thread in ``multiprocessing.connection.wait`` on
process sentinels (and the parent's sentinel). ``Wakeup`` is a self-pipe that other threads and
signal handlers write to so that wait returns at once; ``ShutdownSignals`` turns SIGTERM / SIGINT
into such a wake-up plus a recorded reason.

Invariants:
- A signal handler only records the signal and writes one byte (non-blocking; a full pipe is
  already a pending wake-up), so it is safe at any point of the main thread.
- Both pipe ends are non-inheritable: spawned children never see them.
- While installed, the pipe is also Python's signal wake-up fd (``signal.set_wakeup_fd``): the
  kernel may hand a process-directed signal to any thread (an I/O or actor thread), and Python
  runs the handler only when the main thread next runs bytecode, so without it a main thread
  parked in ``wait`` with no timeout would never see a SIGTERM caught elsewhere.
- ``ignore_sigint_across_exec()`` makes a child started inside it begin life ignoring SIGINT
  (``SIG_IGN`` is the one disposition that survives exec), so Ctrl-C on a terminal, which reaches
  the whole foreground process group, stops workers only through the supervisor. A SIGINT that
  arrives during those few milliseconds is not seen by the supervisor either.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from types import FrameType
from typing import Any, Iterator

__all__ = ["Wakeup", "ShutdownSignals", "ignore_sigint_across_exec", "signal_name"]


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class Wakeup:
    """A self-pipe: ``wake()`` from any thread (or a signal handler) makes ``fileno()`` readable."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        self._closed = False

    def fileno(self) -> int:
        return self._r

    def write_fileno(self) -> int:
        """The write end, for ``signal.set_wakeup_fd`` (non-blocking)."""
        return self._w

    def wake(self) -> None:
        if self._closed:
            return
        try:
            os.write(self._w, b"!")
        except (BlockingIOError, OSError):
            pass  # full: a wake-up is already pending; closed: nobody waits any more

    def drain(self) -> None:
        try:
            while os.read(self._r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self._r)
            os.close(self._w)


class ShutdownSignals:
    """Records the first shutdown request (a signal or ``request(reason)``) and wakes the waiter.

    ``install`` must run in the main thread; ``restore`` puts the previous handlers back.
    """

    def __init__(self, wakeup: Wakeup) -> None:
        self.wakeup = wakeup
        self._lock = threading.Lock()
        self._reason: str | None = None
        self._by_signal = False
        self._count = 0
        self._previous: dict[int, Any] = {}
        self._previous_wakeup_fd: int | None = None  # set while our pipe is the signal wake-up fd

    @property
    def reason(self) -> str | None:
        """Why shutdown was requested (e.g. "SIGTERM"); None while nobody asked."""
        return self._reason

    @property
    def by_signal(self) -> bool:
        """True when the first request was a signal (an operator's stop), not ``request()``."""
        return self._by_signal

    @property
    def requested(self) -> bool:
        return self._reason is not None

    @property
    def count(self) -> int:
        """How many shutdown requests arrived (a second Ctrl-C, ...)."""
        return self._count

    def install(self, handled: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT), ignored: tuple[int, ...] = ()) -> None:
        for signum in handled:
            self._previous.setdefault(signum, signal.getsignal(signum))
            signal.signal(signum, self._on_signal)
        for signum in ignored:
            self._previous.setdefault(signum, signal.getsignal(signum))
            signal.signal(signum, signal.SIG_IGN)
        if handled and self._previous_wakeup_fd is None:
            self._previous_wakeup_fd = signal.set_wakeup_fd(self.wakeup.write_fileno(), warn_on_full_buffer=False)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()
        if self._previous_wakeup_fd is not None:  # before the pipe closes: no handler writes to a stale fd
            signal.set_wakeup_fd(self._previous_wakeup_fd)
            self._previous_wakeup_fd = None

    def request(self, reason: str) -> None:
        """Ask for shutdown from any thread (a lost controller, a fatal error, ...)."""
        with self._lock:
            self._count += 1
            if self._reason is None:
                self._reason = reason
        self.wakeup.wake()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # no lock here: a handler may interrupt the main thread while it holds self._lock
        self._count += 1
        if self._reason is None:
            self._reason = signal_name(signum)
            self._by_signal = True
        self.wakeup.wake()


@contextlib.contextmanager
def ignore_sigint_across_exec() -> Iterator[None]:
    """Within the block SIGINT is ignored, so a child spawned (exec'd) here starts ignoring it."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal dispositions can only be changed from the main thread
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
