"""A FIFO of messages waiting for a socket that would block; the send itself is passed in.

The I/O thread never blocks on a send. When a socket says EAGAIN (peer slow, dead or not yet
connected), the message waits here, and so does every later message to the same destination, so
the order per destination is kept. The queue is bounded in bytes and every item has a deadline.

Invariants:
- Items leave in the order they came, each exactly once: sent, expired, unwanted (its ask already
  ended) or cleared.
- ``nbytes`` is the sum of the sizes of the items held; a push that would pass ``limit`` is
  refused unless the queue is empty (one oversized message may always wait).
Not thread-safe: owned by the I/O thread.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future
from typing import Any, Callable, NamedTuple

import zmq

__all__ = ["QueuedMessage", "SendQueue", "frames_size", "nonblocking_sender", "always"]


class QueuedMessage(NamedTuple):
    frames: list[Any]
    deadline: float  # monotonic seconds; past it the message is not worth sending
    nbytes: int
    correlation_id: int = 0  # of an ask, else 0
    future: Future[Any] | None = None  # of an ask, else None


class SendQueue:
    __slots__ = ("limit", "nbytes", "_items")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.nbytes = 0
        self._items: deque[QueuedMessage] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def push(self, item: QueuedMessage) -> bool:
        """Queue ``item``; False (not queued) when it would pass the byte limit."""
        if self._items and self.nbytes + item.nbytes > self.limit:
            return False
        self._items.append(item)
        self.nbytes += item.nbytes
        return True

    def head_deadline(self) -> float | None:
        return self._items[0].deadline if self._items else None

    def flush(self, send: Callable[[list[Any]], bool], now: float, wanted: Callable[[QueuedMessage], bool]) -> int:
        """Send from the head while ``send`` accepts (returns True); returns the number dropped.

        Items past their deadline or no longer ``wanted`` are dropped unsent. Exceptions from
        ``send`` propagate with the item still at the head.
        """
        dropped = 0
        items = self._items
        while items:
            item = items[0]
            if item.deadline > now and wanted(item):
                if not send(item.frames):
                    break
            else:
                dropped += 1
            items.popleft()
            self.nbytes -= item.nbytes
        return dropped

    def expire(self, now: float) -> int:
        """Drop items from the head whose deadline has passed; returns how many."""
        dropped = 0
        items = self._items
        while items and items[0].deadline <= now:
            self.nbytes -= items.popleft().nbytes
            dropped += 1
        return dropped

    def clear(self) -> list[QueuedMessage]:
        out = list(self._items)
        self._items.clear()
        self.nbytes = 0
        return out


def frames_size(frames: list[Any]) -> int:
    """Total bytes of a frame list (bytes, memoryviews of any format, zmq.Frames)."""
    total = 0
    for frame in frames:
        total += frame.nbytes if type(frame) is memoryview else len(frame)
    return total


def nonblocking_sender(sock: zmq.Socket, prefix: tuple[bytes, ...] = ()) -> Callable[[list[Any]], bool]:
    """``send(frames) -> bool`` for ``SendQueue.flush``: False on EAGAIN, other errors raise."""

    def send(frames: list[Any]) -> bool:
        try:
            sock.send_multipart([*prefix, *frames] if prefix else frames, zmq.NOBLOCK, copy=False)
            return True
        except zmq.Again:
            return False

    return send


def always(item: QueuedMessage) -> bool:
    return True
