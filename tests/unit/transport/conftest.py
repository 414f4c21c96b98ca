"""Fixtures for transport tests: I/O threads on ephemeral 127.0.0.1 ports, stopped after each test."""

from __future__ import annotations

import threading
from typing import Callable, Iterator

import pytest

from _transport_helpers import IO_THREAD_PREFIX
from kbroker.transport.io_thread import IOThread


@pytest.fixture
def make_io() -> Iterator[Callable[..., IOThread]]:
    """Start I/O threads on ephemeral ports; all of them are stopped when the test ends."""
    started: list[IOThread] = []

    def make(**kwargs: object) -> IOThread:
        io = IOThread(name=f"{IO_THREAD_PREFIX}-{len(started)}", **kwargs)  # type: ignore[arg-type]
        io.start()
        started.append(io)
        return io

    try:
        yield make
    finally:
        for io in started:
            io.stop()


@pytest.fixture(autouse=True)
def no_io_threads_left() -> Iterator[None]:
    yield
    leftover = [t.name for t in threading.enumerate() if t.name.startswith(IO_THREAD_PREFIX)]
    assert not leftover, f"I/O threads still running after the test: {leftover}"
