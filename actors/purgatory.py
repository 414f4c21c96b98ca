"""Purgatory: requests parked until a watermark passes an offset or their deadline comes.

Kafka's name for the place where produce requests with acks=all and long-polling fetches wait.
Each parked item has a *key* (it may complete once the watermark is above the key) and a
*deadline* (it expires then, whatever the watermark):

    watch(key, deadline_ms, item) -> token
    ready(watermark)   pops the items with key < watermark, in key order
    expired(now_ms)    pops the items with deadline_ms <= now_ms, in deadline order
    remove(token)      pops one item; drain() pops all, in watch order

Two heaps (by key, by deadline) index one table of live entries; an entry popped through one heap
is skipped lazily by the other, and the heaps are rebuilt when stale entries outnumber live ones.

Invariants:
- Every watched item comes out exactly once: through ready, expired, remove or drain.
- Ties (same key or same deadline) come out in watch order.
- Pure: the clock is an argument (STYLE habit 9); no threads; owned by one actor.
"""

from __future__ import annotations

import heapq
from typing import Generic, Iterator, TypeVar

__all__ = ["Purgatory"]

T = TypeVar("T")


class Purgatory(Generic[T]):
    """Items waiting for ``watermark > key`` or ``now_ms >= deadline_ms`` (see module docstring)."""

    __slots__ = ("_live", "_by_key", "_by_deadline", "_next_token")

    def __init__(self) -> None:
        self._live: dict[int, tuple[int, int, T]] = {}  # token -> (key, deadline, item)
        self._by_key: list[tuple[int, int]] = []  # (key, token)
        self._by_deadline: list[tuple[int, int]] = []  # (deadline, token)
        self._next_token = 0

    def __len__(self) -> int:
        return len(self._live)

    def __iter__(self) -> Iterator[T]:
        """The waiting items in watch order (without removing them)."""
        return (entry[2] for entry in list(self._live.values()))

    def watch(self, key: int, deadline_ms: int, item: T) -> int:
        """Park ``item`` until the watermark exceeds ``key`` or ``deadline_ms``; returns its token."""
        token = self._next_token
        self._next_token += 1
        self._live[token] = (key, deadline_ms, item)
        heapq.heappush(self._by_key, (key, token))
        heapq.heappush(self._by_deadline, (deadline_ms, token))
        return token

    def ready(self, watermark: int) -> list[T]:
        """Pop every item whose key is below ``watermark``."""
        out: list[T] = []
        heap = self._by_key
        while heap and heap[0][0] < watermark:
            _, token = heapq.heappop(heap)
            entry = self._live.pop(token, None)
            if entry is not None:
                out.append(entry[2])
        self._maybe_compact()
        return out

    def expired(self, now_ms: int) -> list[T]:
        """Pop every item whose deadline is at or before ``now_ms``."""
        out: list[T] = []
        heap = self._by_deadline
        while heap and heap[0][0] <= now_ms:
            _, token = heapq.heappop(heap)
            entry = self._live.pop(token, None)
            if entry is not None:
                out.append(entry[2])
        self._maybe_compact()
        return out

    def remove(self, token: int) -> T | None:
        """Pop the item with ``token`` (None if it already came out)."""
        entry = self._live.pop(token, None)
        self._maybe_compact()
        return None if entry is None else entry[2]

    def drain(self) -> list[T]:
        """Pop every item, in watch order (e.g. to fail them all when leadership is lost)."""
        items = [entry[2] for entry in self._live.values()]
        self._live.clear()
        self._by_key.clear()
        self._by_deadline.clear()
        return items

    def next_deadline(self) -> int | None:
        """The earliest deadline of a waiting item (when the owner should tick next), or None."""
        heap = self._by_deadline
        while heap and heap[0][1] not in self._live:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def _maybe_compact(self) -> None:
        live = len(self._live)
        if len(self._by_key) > 2 * live + 32 or len(self._by_deadline) > 2 * live + 32:
            self._by_key = [(k, t) for k, t in self._by_key if t in self._live]
            self._by_deadline = [(d, t) for d, t in self._by_deadline if t in self._live]
            heapq.heapify(self._by_key)
            heapq.heapify(self._by_deadline)
