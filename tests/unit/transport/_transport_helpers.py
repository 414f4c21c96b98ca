"""Helpers shared by the transport tests (a uniquely named module: tests import it by name)."""

from __future__ import annotations

import threading
import time
from typing import Callable

import pytest

from kbroker.transport.envelope import Envelope

IO_THREAD_PREFIX = "test-io"


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it holds; fail the test at the deadline (never a bare sleep)."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        pause.wait(0.002)


class Inbox:
    """A handler (run in the I/O thread) that keeps what it receives; tests wait on it."""

    def __init__(self, on_message: Callable[[Envelope], None] | None = None) -> None:
        self.envelopes: list[Envelope] = []
        self._cond = threading.Condition()
        self._on_message = on_message

    def __call__(self, envelope: Envelope) -> None:
        if self._on_message is not None:
            self._on_message(envelope)
        with self._cond:
            self.envelopes.append(envelope)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Envelope]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.envelopes) >= count, timeout):
                pytest.fail(f"expected {count} envelopes within {timeout}s, got {len(self.envelopes)}")
            return list(self.envelopes)
