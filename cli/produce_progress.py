"""``kbroker produce``'s progress bar: records/s and bytes read, for large inputs on a terminal.

Shown on stderr only when stderr is a terminal and the input is large: a file of at least
``LARGE_FILE`` bytes (a bar with the share read), or stdin once ``LARGE_STREAM`` records went
by (a running count, no total). Otherwise every method does nothing, so pipes and tests see
only the summary line.
"""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["ProduceProgress", "LARGE_FILE", "LARGE_STREAM"]

LARGE_FILE = 1 << 20
LARGE_STREAM = 10_000
_EVERY = 0.1  # seconds between redraws


class ProduceProgress:
    def __init__(self, total_bytes: int | None, *, enabled: bool | None = None) -> None:
        self._enabled = sys.stderr.isatty() if enabled is None else enabled
        self._total = total_bytes
        self._progress: Any | None = None
        self._task: Any = None
        self._records = 0
        self._bytes = 0
        self._started = time.monotonic()
        self._drawn = 0.0

    def _begin(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        columns = [TextColumn("[bold]producing"), BarColumn() if self._total else TextColumn(""),
                   TextColumn("{task.fields[records]} records  {task.fields[rate]}/s"), TimeElapsedColumn()]  # fmt: skip
        self._progress = Progress(*columns, console=Console(stderr=True), transient=True)
        self._progress.start()
        self._task = self._progress.add_task("produce", total=self._total, records=0, rate="0")

    def advance(self, line_bytes: int) -> None:
        self._records += 1
        self._bytes += line_bytes + 1
        if not self._enabled:
            return
        if self._progress is None:
            large = (self._total or 0) >= LARGE_FILE or (self._total is None and self._records >= LARGE_STREAM)
            if not large:
                return
            self._begin()
        now = time.monotonic()
        if now - self._drawn >= _EVERY:
            self._drawn = now
            rate = self._records / max(now - self._started, 1e-6)
            assert self._progress is not None
            self._progress.update(self._task, completed=self._bytes, records=self._records, rate=f"{rate:,.0f}")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
