"""Plain log lines for the supervisor and its workers, all on the inherited stderr.

Every process of one broker writes to the same stderr (spawned workers inherit it), one line per
record, prefixed with the process name ("supervisor", "worker-2"), so ``kbroker start 2>log``
interleaves them readably. ``logging.shutdown()`` in each process's ``finally`` flushes them.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys

__all__ = ["configure_logging", "LOG_FORMAT"]

LOG_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)-7s [%(processName)s] %(name)s: %(message)s"
_DATE_FORMAT = "%H:%M:%S"


def configure_logging(level: int | str, process_name: str) -> None:
    """Name this process in log lines and send records at ``level`` and above to stderr."""
    multiprocessing.current_process().name = process_name
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, _DATE_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
