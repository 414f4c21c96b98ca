"""The worker's lease on leadership: no writes accepted once the controller may have fenced it.

The controller fences a worker whose heartbeats stopped arriving for ``session_timeout`` and
elects new leaders for the partitions it led. A worker that was only frozen (SIGSTOP, a stalled
disk, swapping) does not know that when it wakes up; until its next heartbeat is answered its
replicas still believe they lead. The lease closes that window, as Kafka's KRaft broker
heartbeats and Raft's leader leases do:

    heartbeat sent at t_s ──answered OK──▶ lease valid until t_s + session_timeout - margin
    controller received it at t_r >= t_s  ──▶ fences no earlier than t_r + session_timeout

so a worker stops accepting produce requests before the controller can hand its partitions to
another worker; two leaders never both accept writes for one partition. A lapsed lease only
refuses writes (NotLeader, retriable); the next answered heartbeat renews it, or a fencing answer
makes the worker exit and the supervisor restarts it.

Thread-safe for one writer (the ControllerLink actor) and many readers (replica actors): the
expiry is a single float replaced atomically.
"""

from __future__ import annotations

import math
import time
from typing import Callable

__all__ = ["Lease"]


class Lease:
    """``valid()`` while the last heartbeat the controller answered was sent less than ``duration_s`` ago."""

    def __init__(self, duration_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if duration_s <= 0:
            raise ValueError(f"a lease lasts a positive time, got {duration_s!r}")
        self.duration_s = duration_s
        self._clock = clock
        self._expires = -math.inf  # nothing answered yet: no leadership (none is given before registration)

    @classmethod
    def for_session(cls, session_timeout_s: float, clock: Callable[[], float] = time.monotonic) -> Lease:
        """A lease that lapses a little before the controller's session timeout could fence us."""
        return cls(session_timeout_s - min(0.5, session_timeout_s / 10), clock)

    def renew(self, sent_at: float) -> None:
        """The controller answered a heartbeat (or registration) sent at ``sent_at`` (this clock)."""
        self._expires = max(self._expires, sent_at + self.duration_s)

    def revoke(self) -> None:
        """The controller said we are fenced or unknown: lead nothing until answered again."""
        self._expires = -math.inf

    def valid(self) -> bool:
        return self._clock() < self._expires

    def remaining_s(self) -> float:
        return max(0.0, self._expires - self._clock())
