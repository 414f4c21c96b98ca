"""``kbroker top``: a live dashboard of workers, partitions and consumer groups.

    collector thread: every --interval, collect(admin) -> latest Snapshot (or the error)
    main thread:      keys (cbreak stdin) + new snapshots -> build_frame -> render -> rich Live

The collector runs apart from the screen, so the screen keeps answering keys while the broker
is slow (a worker that died answers nothing; its stats request gives up after ``--timeout``).
Until the next snapshot arrives the last frame stays on screen, with the error, if any, in red.

``--once`` (or a stdout that is not a terminal) prints one frame and exits: two snapshots
``--interval`` apart, so that rates are real. ``--output json`` with it prints the frame as
JSON. Exit codes: 0, 1 when the broker does not answer the first snapshot, 2 bad usage.
"""

from __future__ import annotations

import os
import select
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

import typer
from rich.console import Console
from rich.live import Live

from kbroker.cli.output import BOOTSTRAP, OUTPUT, OutputFormat, admin_session, broker_errors, emit
from kbroker.cli.top_groups import LagHistory
from kbroker.cli.top_model import Snapshot, build_frame, collect
from kbroker.cli.top_render import VIEWS, ViewState, render

__all__ = ["top"]


def top(
    bootstrap: str | None = BOOTSTRAP,
    once: bool = typer.Option(False, "--once", help="Print one frame and exit (for scripts and pipes)."),
    interval: float = typer.Option(1.0, "--interval", "-i", min=0.05, max=60, help="Seconds between refreshes."),
    view: str = typer.Option("overview", "--view", help=f"First view: {', '.join(VIEWS)}."),
    topic: str | None = typer.Option(None, "--topic", "-t", help="Show only this topic (and the groups reading it)."),
    internal: bool = typer.Option(False, "--internal", help="Include internal topics (__consumer_offsets)."),
    timeout: float = typer.Option(5.0, "--timeout", min=0.1, help="Seconds to wait for the broker each refresh."),
    output: OutputFormat = OUTPUT,
) -> None:
    """Live dashboard: workers, partitions (leaders, ISR, rates) and consumer group lag.

    Workers: alive, pid, partitions led, bytes in/out per second. Partitions: leader, ISR
    (out-of-sync replicas marked *), under-replicated or offline, high watermark, records/s.
    Consumer groups: members, lag per partition, total lag and its trend.

    Keys: a/w/p/g switch views, / filters a topic (Enter to apply, Esc to clear), q quits.

    Examples: kbroker top  |  kbroker top --topic orders  |  kbroker top --once --output json
    """
    if view not in VIEWS:
        raise typer.BadParameter(f"expected one of {', '.join(VIEWS)}", param_hint="--view")
    state = ViewState(view=view, topic=topic)
    console = Console()
    with admin_session(bootstrap, timeout) as admin:
        first = collect(admin, time.monotonic(), include_internal=internal)  # fails fast: broker not running
        if once or not console.is_terminal or output == OutputFormat.json:
            _print_once(admin, first, state, interval, internal, output)
            return
        with broker_errors():
            _live(admin, first, state, interval, internal, console)


def _print_once(admin: Any, first: Snapshot, state: ViewState, interval: float, internal: bool, output: OutputFormat) -> None:
    time.sleep(interval)  # a second snapshot, so that the frame has rates
    second = collect(admin, time.monotonic(), include_internal=internal)
    frame = build_frame(first, second)
    history = LagHistory()
    history.update(first.groups.groups)
    history.update(second.groups.groups)

    def screen() -> Any:
        console = Console()
        width = console.width if console.is_terminal else 120  # a pipe: the wide layout
        return render(frame, bootstrap=admin.bootstrap, view=state, width=width, history=history, keys_help=False)

    emit(output, frame, screen)


class _Collector(threading.Thread):
    def __init__(self, admin: Any, interval: float, internal: bool) -> None:
        super().__init__(name="kbroker-top-collector", daemon=True)
        self._admin, self._interval, self._internal = admin, interval, internal
        self.stop = threading.Event()
        self.changed = threading.Event()
        self._lock = threading.Lock()
        self._latest: Snapshot | None = None
        self.error: str | None = None

    def run(self) -> None:
        from kbroker.errors import KBrokerError

        while not self.stop.wait(self._interval):
            try:
                snapshot = collect(self._admin, time.monotonic(), include_internal=self._internal)
            except KBrokerError as exc:
                with self._lock:
                    self.error = f"broker: {exc.message}"
            except Exception as exc:  # keep the screen alive; show what went wrong
                with self._lock:
                    self.error = f"{type(exc).__name__}: {exc}"
            else:
                with self._lock:
                    self._latest, self.error = snapshot, None
            self.changed.set()

    def take(self) -> tuple[Snapshot | None, str | None]:
        with self._lock:
            latest, self._latest = self._latest, None
            return latest, self.error


@contextmanager
def _cbreak() -> Iterator[bool]:
    """Keys one at a time without echo, when stdin is a terminal; yields whether keys can be read."""
    if not sys.stdin.isatty():
        yield False
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield True
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _read_key(wait: float, keys: bool) -> str | None:
    if not keys:
        time.sleep(wait)
        return None
    ready, _, _ = select.select([sys.stdin], [], [], wait)
    if not ready:
        return None
    fd = sys.stdin.fileno()
    data = os.read(fd, 1)
    if data == b"\x1b" and select.select([sys.stdin], [], [], 0.02)[0]:
        os.read(fd, 16)  # an arrow or function key's escape sequence: not ours, ignored whole
        return None
    return data.decode("utf-8", "replace") if data else "q"


def _live(admin: Any, first: Snapshot, state: ViewState, interval: float, internal: bool, console: Console) -> None:
    history = LagHistory()
    history.update(first.groups.groups)
    previous, current, error = None, first, None
    collector = _Collector(admin, interval, internal)

    def screen() -> Any:
        frame = build_frame(previous, current)
        return render(frame, bootstrap=admin.bootstrap, view=state, width=console.width, height=console.height,
                      history=history, error=error)  # fmt: skip

    collector.start()
    try:
        with _cbreak() as keys, Live(screen(), console=console, screen=True, auto_refresh=False) as live:
            size = console.size
            while True:
                key = _read_key(0.1, keys)
                dirty = size != console.size
                size = console.size
                if key is not None:
                    if not state.key(key):
                        return
                    dirty = True
                if collector.changed.is_set():
                    collector.changed.clear()
                    latest, error = collector.take()
                    if latest is not None:
                        previous, current = current, latest
                        history.update(current.groups.groups)
                    dirty = True
                if dirty:
                    live.update(screen(), refresh=True)
    except KeyboardInterrupt:
        pass
    finally:
        collector.stop.set()
        collector.join(timeout=10)
