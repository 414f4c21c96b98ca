"""Flow-control bookkeeping of the I/O thread, kept pure: asks awaiting replies, and the budget of
payload bytes delivered to local actors and not yet released.

No sockets, no threads, no clock: callers pass ``now`` (monotonic seconds). Not thread-safe:
both are owned by the I/O thread.

Invariants:
- A correlation id is pending at most once; ``pop`` and ``expire`` each hand a future out at most
  once, so a late reply after a timeout finds nothing and is dropped.
- ``InflightBudget.used`` is the sum of charged and not yet released bytes, never negative;
  ``peak`` is the largest ``used`` ever seen. Reading stops while ``used >= limit``, so
  ``peak < limit + largest single charge``.
"""

from __future__ import annotations

import heapq
from concurrent.futures import Future
from typing import Any

__all__ = ["PendingRequests", "InflightBudget"]


class PendingRequests:
    """Correlation id -> (future, deadline), with the earliest deadline at hand."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[Future[Any], float, str]] = {}
        self._heap: list[tuple[float, int]] = []  # may hold stale entries (already popped)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, correlation_id: int) -> bool:
        return correlation_id in self._entries

    def add(self, correlation_id: int, future: Future[Any], deadline: float, what: str = "") -> None:
        """Track ``future`` until ``deadline``; ``what`` describes the request for timeout errors."""
        if correlation_id in self._entries:
            raise ValueError(f"correlation id {correlation_id} is already pending")
        self._entries[correlation_id] = (future, deadline, what)
        heapq.heappush(self._heap, (deadline, correlation_id))
        if len(self._heap) > 2 * len(self._entries) + 64:
            self._compact()

    def pop(self, correlation_id: int) -> Future[Any] | None:
        """The future waiting for ``correlation_id`` (removed), or None if none is."""
        entry = self._entries.pop(correlation_id, None)
        return None if entry is None else entry[0]

    def expire(self, now: float) -> list[tuple[int, Future[Any], str]]:
        """Remove and return ``(correlation_id, future, what)`` for every deadline ``<= now``."""
        out = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, correlation_id = heapq.heappop(heap)
            entry = self._entries.get(correlation_id)
            if entry is not None and entry[1] == deadline:
                del self._entries[correlation_id]
                out.append((correlation_id, entry[0], entry[2]))
        return out

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap:
            deadline, correlation_id = heap[0]
            entry = self._entries.get(correlation_id)
            if entry is not None and entry[1] == deadline:
                return deadline
            heapq.heappop(heap)
        return None

    def drain(self) -> list[Future[Any]]:
        """Remove and return every pending future (shutdown)."""
        futures = [entry[0] for entry in self._entries.values()]
        self._entries.clear()
        self._heap.clear()
        return futures

    def _compact(self) -> None:
        self._heap = [(entry[1], cid) for cid, entry in self._entries.items()]
        heapq.heapify(self._heap)


class InflightBudget:
    """Bytes handed to local actors and not yet released, against a limit."""

    __slots__ = ("limit", "used", "peak")

    def __init__(self, limit: int) -> None:
        if limit <= 0:
            raise ValueError(f"the in-flight byte limit must be positive, got {limit}")
        self.limit = limit
        self.used = 0
        self.peak = 0

    @property
    def has_room(self) -> bool:
        return self.used < self.limit

    def charge(self, nbytes: int) -> None:
        self.used += nbytes
        if self.used > self.peak:
            self.peak = self.used

    def release(self, nbytes: int) -> None:
        if nbytes > self.used:
            raise ValueError(f"releasing {nbytes} bytes but only {self.used} are charged")
        self.used -= nbytes
