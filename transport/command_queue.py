"""How other threads hand work to the I/O thread: a deque plus a wake-up byte on a pipe.

Any thread may ``submit``; the I/O thread polls ``fileno`` together with its sockets, calls
``clear_wakeup`` when it is readable and then ``pop``s until empty. No ZeroMQ socket is shared
between threads and none is created per thread, so nothing per-thread has to be closed before
the context can end (a thread-local inproc PUSH would have to be).

Invariants:
- A command submitted before ``close`` is either popped by the I/O thread or returned by
  ``close``; a command submitted after ``close`` is refused (``submit`` returns False).
- At most one wake-up byte is outstanding per drain (``_wake_pending``): bursts of submits cost
  one ``write`` between two polls. A submit that races with ``clear_wakeup`` either lands before
  it (and is popped after it) or writes a fresh byte, so no command waits for a later wake-up.
- The pipe is written and closed under the same lock, so no write ever hits a closed (or reused)
  file descriptor.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from typing import Any

__all__ = ["CommandQueue"]


class CommandQueue:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._commands: deque[Any] = deque()
        self._closed = False
        self._wake_pending = False
        self._owner: int | None = None  # thread ident of the consumer: it never needs waking
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)

    def fileno(self) -> int:
        """The fd to poll for POLLIN (readable when commands may be waiting)."""
        return self._read_fd

    def set_owner(self, ident: int) -> None:
        self._owner = ident

    def __bool__(self) -> bool:
        return bool(self._commands)

    def submit(self, command: Any) -> bool:
        """Queue ``command`` and wake the I/O thread; False if the queue is closed."""
        with self._lock:
            if self._closed:
                return False
            self._commands.append(command)
            if not self._wake_pending and threading.get_ident() != self._owner:
                self._wake_pending = True
                try:
                    os.write(self._write_fd, b"\0")
                except BlockingIOError:  # the pipe is full of wake-ups already
                    pass
        return True

    def clear_wakeup(self) -> None:
        with self._lock:
            self._wake_pending = False
            try:
                while os.read(self._read_fd, 4096):
                    pass
            except BlockingIOError:
                pass

    def pop(self) -> Any:
        """The oldest command; IndexError when empty."""
        return self._commands.popleft()

    def close(self) -> list[Any]:
        """Refuse further submits, close the pipe, and return the commands never popped."""
        with self._lock:
            if self._closed:
                return []
            self._closed = True
            leftover = list(self._commands)
            self._commands.clear()
            os.close(self._read_fd)
            os.close(self._write_fd)
        return leftover

    @property
    def closed(self) -> bool:
        return self._closed
