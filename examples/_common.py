"""Shared by the examples: use the broker at --bootstrap, or start one for the run (and stop it)."""

from __future__ import annotations

import argparse
import signal
import time
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")


def parser(doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--bootstrap", help="a running broker (default: start one for this run)")
    return p


@contextmanager
def broker(bootstrap: str | None, workers: int = 3, extra_args: tuple[str, ...] = ()) -> Iterator[str]:
    """The bootstrap address of ``bootstrap``, or of a broker started now (stopped afterwards)."""
    if bootstrap:
        yield bootstrap
        return
    from kbroker.cli.bench.broker import LocalBroker

    def _terminated(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # SIGTERM (e.g. `timeout`): run the finally, stop the broker

    previous = signal.signal(signal.SIGTERM, _terminated)
    local = LocalBroker(workers, extra_args=extra_args)
    try:
        print(f"started a {workers}-worker broker at {local.bootstrap}")
        yield local.bootstrap
    finally:
        local.stop()
        signal.signal(signal.SIGTERM, previous)


def wait_for(what: str, check: Callable[[], T], timeout: float = 60.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what} after {timeout:g} s")
        time.sleep(0.05)
