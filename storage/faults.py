"""Named fault points (in the manner of Redpanda's failure probes).

Storage code calls ``fault_point("segment.append")`` at the places where a disk can fail; tests arm
a point to raise an error or to run an action (crash the process, cut a file) when it is reached:

    with armed("segment.fsync", OSError(errno.EIO, "injected")):
        ...

Points: segment.append, segment.fsync, segment.truncate, segment.roll, log.checkpoint,
cleaner.swap, transport.send. The last is the I/O thread's send to another process: raising there
drops that message, as a lossy network would. Unarmed points cost one dict lookup.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

__all__ = ["fault_point", "arm", "disarm", "armed", "POINTS"]

POINTS = frozenset(
    {"segment.append", "segment.fsync", "segment.truncate", "segment.roll", "log.checkpoint", "cleaner.swap", "transport.send"}
)

_armed: dict[str, Callable[[], None]] = {}


def fault_point(name: str) -> None:
    action = _armed.get(name)
    if action is not None:
        action()


def arm(
    name: str, effect: BaseException | type[BaseException] | Callable[[], None], *, times: int | None = None
) -> None:
    """Make ``name`` raise ``effect`` (an exception or exception class) or call it, ``times`` times or forever."""
    if name not in POINTS:
        raise ValueError(f"unknown fault point {name!r}; known: {', '.join(sorted(POINTS))}")
    if times is not None and times < 1:
        raise ValueError(f"times must be at least 1 (or None for always), got {times}")
    remaining = [times]

    def action() -> None:
        if remaining[0] is not None:
            remaining[0] -= 1
            if remaining[0] <= 0:
                _armed.pop(name, None)
        if isinstance(effect, BaseException) or (isinstance(effect, type) and issubclass(effect, BaseException)):
            raise effect
        effect()

    _armed[name] = action


def disarm(name: str | None = None) -> None:
    if name is None:
        _armed.clear()
    else:
        _armed.pop(name, None)


@contextmanager
def armed(name: str, effect: BaseException | Callable[[], None], *, times: int | None = None) -> Iterator[None]:
    arm(name, effect, times=times)
    try:
        yield
    finally:
        disarm(name)
