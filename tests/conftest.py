"""Suite-wide safety nets: nothing a test leaves behind may keep the test process alive.

pykka actors run on non-daemon threads, so one actor a failing test forgot to stop would make the
interpreter wait forever at exit, after every per-test timeout has stopped counting. At the end of
the session every actor still registered is stopped (and named, so the leak gets fixed); a
non-daemon thread that still will not stop fails the run instead of hanging it.
"""

from __future__ import annotations

import os
import sys
import threading
import time


def pytest_sessionfinish(session, exitstatus) -> None:  # noqa: ARG001 - pytest's hook signature
    pykka = sys.modules.get("pykka")
    if pykka is None:
        return
    leftovers = pykka.ActorRegistry.get_all()
    if leftovers:
        names = ", ".join(sorted({ref.actor_class.__name__ for ref in leftovers}))
        sys.stderr.write(f"\nconftest: stopping {len(leftovers)} pykka actor(s) left running by tests: {names}\n")
        pykka.ActorRegistry.stop_all(block=True, timeout=10)


def pytest_unconfigure(config) -> None:  # noqa: ARG001 - pytest's hook signature
    """A non-daemon thread still alive here would hang the interpreter's exit (and CI) silently:
    give such threads a moment, then name them and exit with a failure instead of hanging."""
    deadline = time.monotonic() + 10
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if stuck:
        sys.stderr.write(f"conftest: non-daemon threads still alive at exit, failing the run: {', '.join(stuck)}\n")
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(3)
