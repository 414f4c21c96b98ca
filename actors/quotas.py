"""Client byte-rate quotas (Kafka's ``producer_byte_rate`` / ``consumer_byte_rate``), per client id.

Kafka throttles rather than drops: a client over its quota still gets every answer, only later,
so its rate settles at the quota. Each client id has a token bucket:

    tokens refill at ``rate`` bytes/s, up to ``rate * burst_s`` (the burst a client may send at once)
    a request of n bytes takes n tokens; if that leaves the bucket at -d, the answer waits d / rate s

Over a long run a client moves at most ``rate`` bytes/s plus one burst. The delay is also put in the
response's ``throttle_time_ms`` (as Kafka does since KIP-219) so clients can tell throttling from a
slow broker. Quotas are per worker, as Kafka's are per broker.

``DelayedReplies`` holds answers until their time: one thread for the whole gateway, a heap of
(due, sequence, callback); callbacks run on that thread and must only hand work back (tell).

Pure part (``ByteRateQuota``): no threads, time passed in. Not thread-safe: owned by the gateway.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Callable

__all__ = ["ByteRateQuota", "DelayedReplies"]

_MAX_CLIENTS = 10_000  # buckets kept; the idle ones are dropped first


class ByteRateQuota:
    """Token buckets per client id; ``record`` returns how long that client's answer must wait (s)."""

    def __init__(self, rate_bytes_per_s: float, burst_s: float = 1.0) -> None:
        if rate_bytes_per_s <= 0 or burst_s <= 0:
            raise ValueError(f"a quota needs a positive rate and burst, got {rate_bytes_per_s!r}, {burst_s!r}")
        self.rate = float(rate_bytes_per_s)
        self.capacity = self.rate * burst_s
        self._buckets: dict[str, tuple[float, float]] = {}  # client id -> (tokens, at)

    def record(self, client_id: str, nbytes: int, now: float) -> float:
        tokens, at = self._buckets.pop(client_id, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.rate) - nbytes
        self._buckets[client_id] = (tokens, now)  # re-inserted: the dict stays in least-recently-used order
        if len(self._buckets) > _MAX_CLIENTS:
            del self._buckets[next(iter(self._buckets))]
        return -tokens / self.rate if tokens < 0 else 0.0


class DelayedReplies:
    """Run callbacks at their due time on one daemon thread."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, name: str = "kbroker-throttle") -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._heap, (self._clock() + delay_s, next(self._seq), callback))
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(5)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > self._clock()):
                    self._cond.wait(None if not self._heap else max(0.0, self._heap[0][0] - self._clock()))
                if self._stopped:
                    return
                _, _, callback = heapq.heappop(self._heap)
            try:
                callback()
            except Exception:  # a dead actor: nothing to deliver to
                pass
