"""``kbroker start`` on a terminal: a compact live panel (workers, leaders, rates) above the log lines.

    fd 2 (stderr) ──dup2──▶ pipe ──reader thread──▶ LogTail (last lines)    every process of the
                                                      │                      broker logs to fd 2;
    poller thread: every second, collect(Admin(own    │                      workers inherit the pipe
      bootstrap)) ──▶ Frame ─┐                        │
                             ▼                        ▼
           rich Live (full screen, on the saved terminal): panel on top, log tail below

The bootstrap address is read from the supervisor's own "listening on tcp://..." line. When the
broker stops, the terminal is given back and the last log lines are printed on it as plain text,
so what happened stays in the scrollback. Only used when stdout is a terminal and not ``--no-ui``.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections import deque
from typing import Any, TextIO

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.text import Text

__all__ = ["LogTail", "StartPanel", "compact_log_line", "panel_renderable"]

_LISTENING = re.compile(r"\[supervisor\].* listening on (tcp://\S+)")
_KEEP = 2000


class LogTail:
    """The last ``keep`` log lines, and the broker's bootstrap address once it was logged. Thread-safe."""

    def __init__(self, keep: int = _KEEP) -> None:
        self._lines: deque[str] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self.bootstrap: str | None = None
        self.version = 0

    def add(self, line: str) -> None:
        with self._lock:
            self._lines.append(line)
            self.version += 1
            if self.bootstrap is None and (match := _LISTENING.search(line)):
                self.bootstrap = match.group(1)

    def last(self, n: int) -> list[str]:
        with self._lock:
            return list(self._lines)[-n:] if n > 0 else []


_LOG_LINE = re.compile(r"^(\d\d:\d\d:\d\d)\.\d{3} (\w+)\s+\[([^\]]+)\] [\w.]+: (.*)$")
_LEVEL_STYLE = {"WARNING": "yellow", "ERROR": "bold red", "CRITICAL": "bold red", "DEBUG": "dim"}


def compact_log_line(line: str) -> Text:
    """``12:00:01.123 INFO    [worker-1] kbroker.actors.worker: msg`` -> ``12:00:01 worker-1: msg``
    (the level only when it is not INFO, in colour); lines in another shape are kept as they are.
    The panel has little room; the full lines are printed when the broker stops."""
    match = _LOG_LINE.match(line)
    if match is None:
        return Text(line)
    clock, level, process, message = match.groups()
    text = Text(f"{clock} ", style="dim")
    text.append(f"{process}: ", style="cyan")
    if level != "INFO":
        text.append(f"{level} ", style=_LEVEL_STYLE.get(level, "bold"))
    text.append(message)
    return text


def panel_renderable(frame: Any | None, bootstrap: str | None, width: int, error: str | None = None) -> RenderableType:
    """The compact panel: one summary line, the workers table, and the partitions that are not ok."""
    from kbroker.cli.top_model import OK
    from kbroker.cli.top_render import workers_table

    if frame is None:
        body: RenderableType = Text(error or "starting…", style="dim")
        return Panel(body, title="kbroker", title_align="left", height=3)
    alive = sum(w.state != "dead" for w in frame.workers)
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(f"{bootstrap}  ", style="bold")
    line.append(f"workers {alive}/{len(frame.workers)} alive", style="green" if alive == len(frame.workers) else "bold red")
    line.append(f"  topics {len(frame.topics)}  partitions {len(frame.partitions)}  leaders ")
    leaders = ", ".join(f"{w.id}:{w.partitions_led}" for w in frame.workers)
    line.append(leaders or "-")
    problems = [p for p in frame.partitions if p.state != OK]
    parts: list[RenderableType] = [line, workers_table(frame, width - 4, compact=True)]
    if problems:
        shown = ", ".join(f"{p.topic}-{p.partition} {p.state}" for p in problems[:8])
        parts.append(Text(shown + (f" (+{len(problems) - 8})" if len(problems) > 8 else ""), style="yellow", no_wrap=True, overflow="ellipsis"))
    if error:
        parts.append(Text(error, style="bold red", no_wrap=True, overflow="ellipsis"))
    return Panel(Group(*parts), title="kbroker start (Ctrl-C stops)", title_align="left")


class StartPanel:
    """Owns fd 2 while the broker runs; see the module docstring. ``start()`` / ``stop()``, main thread."""

    def __init__(self, interval: float = 1.0) -> None:
        self.tail = LogTail()
        self._interval = interval
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._saved_stderr: int | None = None
        self._terminal: TextIO | None = None
        self._frame: Any | None = None
        self._error: str | None = None
        self._live: Any | None = None

    def start(self) -> None:
        from rich.live import Live

        sys.stderr.flush()
        read_fd, write_fd = os.pipe()
        self._saved_stderr = os.dup(2)
        os.dup2(write_fd, 2)  # this process and every worker spawned from now on log into the pipe
        os.close(write_fd)
        self._terminal = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8", errors="replace")
        console = Console(file=self._terminal, force_terminal=True)
        self._console = console
        self._live = Live(self._render(), console=console, screen=True, auto_refresh=False, redirect_stdout=False, redirect_stderr=False)
        self._live.start()
        reader = threading.Thread(target=self._read, args=(read_fd,), name="kbroker-start-logs", daemon=True)
        poller = threading.Thread(target=self._poll, name="kbroker-start-panel", daemon=True)
        self._threads = [reader, poller]
        for thread in self._threads:
            thread.start()

    def _render(self) -> RenderableType:
        console = self._console
        panel = panel_renderable(self._frame, self.tail.bootstrap, console.width, self._error)
        used = len(console.render_lines(panel, console.options, pad=False))
        logs = Text(no_wrap=True, overflow="ellipsis")
        for i, line in enumerate(self.tail.last(max(0, console.height - used))):
            if i:
                logs.append("\n")
            logs.append_text(compact_log_line(line))
        return Group(panel, logs)

    def _read(self, fd: int) -> None:
        with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as stream:
            for line in stream:
                self.tail.add(line.rstrip("\n"))

    def _poll(self) -> None:
        from kbroker.cli.top_model import build_frame, collect
        from kbroker.errors import KBrokerError
        from kbroker.transport.client.admin import Admin

        admin = None
        previous = None
        seen_version = -1
        try:
            while not self._stop.wait(0.2):
                if admin is None and self.tail.bootstrap is not None:
                    admin = Admin(self.tail.bootstrap.replace("://*:", "://127.0.0.1:").replace("0.0.0.0", "127.0.0.1"), timeout=2.0)
                if admin is not None and (previous is None or time.monotonic() - previous.at >= self._interval):
                    try:
                        current = collect(admin, time.monotonic())
                        self._frame, self._error = build_frame(previous, current), None
                        previous = current
                    except KBrokerError as exc:
                        self._error = exc.message
                if self.tail.version != seen_version or admin is not None:
                    seen_version = self.tail.version
                    self._refresh()
        finally:
            if admin is not None:
                admin.close()

    def _refresh(self) -> None:
        live = self._live
        if live is not None:
            try:
                live.update(self._render(), refresh=True)
            except Exception:  # a resize mid-render, a closed terminal: the next refresh tries again
                pass

    def stop(self, show_last: int = 200) -> None:
        """Give the terminal back and print the last log lines there (plain text)."""
        self._stop.set()
        for thread in self._threads[1:]:
            thread.join(timeout=5)
        if self._live is not None:
            self._live.stop()
            self._live = None
        sys.stderr.flush()
        if self._saved_stderr is not None:
            os.dup2(self._saved_stderr, 2)  # the pipe's last writer closes here: the reader ends
            os.close(self._saved_stderr)
            self._saved_stderr = None
        self._threads[0].join(timeout=5)
        if self._terminal is not None:
            for line in self.tail.last(show_last):
                self._terminal.write(line + "\n")
            self._terminal.flush()
            self._terminal.close()
            self._terminal = None
