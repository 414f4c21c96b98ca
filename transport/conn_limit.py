"""``--max-connections``: count a ROUTER's connections and refuse handshakes past the limit.

ZeroMQ's ROUTER has no such option, so the I/O thread builds it from two ZeroMQ features:

    ROUTER --monitor (inproc PAIR)--> ConnectionMonitor: EVENT_ACCEPTED fd -> live += {fd}
                                                         EVENT_DISCONNECTED fd -> live -= {fd}
    new TCP connection -> greeting -> ZAP request -> ZapHandler (transport/curve.py)
                                                       monitor.drain(), then admits(exempt)?
                                                         yes: 200 (or the CURVE verdict)
                                                         no:  "500" "too many connections"
    libzmq sends an ERROR command for any status but 200/300: the client's monitor reports
    EVENT_HANDSHAKE_FAILED_AUTH with value 500 -> ConnectionLimitError (transport/connection.py)

Invariants:
- ``live`` holds the file descriptors of this ROUTER's open TCP connections, including those
  still in their handshake (the one being decided counts itself): a connection is admitted while
  ``len(live) <= limit``. Two handshakes racing for the last slot may both be refused (each
  counts the other); a refused client tries again on its next request.
- The monitor is drained before every decision, so a ZAP answer sees every accept and
  disconnect libzmq reported before the request (the accept of the connection being decided
  always is: it precedes the handshake). A set, not a counter: a missed event cannot leak a
  slot for good (an fd number reused by a later accept replaces it).
- ``limit`` 0 means unlimited: no monitor, no ZAP handler for plaintext brokers, nothing counted.
- Exempt connections (CURVE: the broker's own public key, i.e. links between its processes) are
  always admitted and still counted. Plaintext connections carry no identity, so links between
  broker processes (at most workers + 1 per process) count and can be refused like clients; the
  refused process fails that link's requests at once and tries a new socket after 0.1-1 s
  (transport/outbound.py, ``watch_refusals``).
``ConnectionCount`` is pure; ``ConnectionMonitor`` owns the monitor socket and belongs to the
I/O thread that created it (closed before the context is terminated).
"""

from __future__ import annotations

import logging
import time
from typing import Callable

import zmq
from zmq.utils.monitor import parse_monitor_message

__all__ = ["check_limit", "ConnectionCount", "ConnectionMonitor", "REFUSED_STATUS", "REFUSED_TEXT", "REFUSED_ZAP_CODE", "close_monitored"]

log = logging.getLogger(__name__)

REFUSED_STATUS = b"500"  # any status but 200/300 makes libzmq send the client an ERROR command
REFUSED_TEXT = b"too many connections"
REFUSED_ZAP_CODE = 500  # the value of the client's EVENT_HANDSHAKE_FAILED_AUTH
_LOG_EVERY_S = 60.0


def check_limit(limit: object) -> int:
    """``limit`` if it is a valid ``max_connections`` (an int >= 0; 0: unlimited), else ValueError."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"max_connections must be an integer >= 0 (0: unlimited), got {limit!r}")
    return limit


class ConnectionCount:
    """The live connections of one ROUTER (from its monitor events) and the admission rule."""

    def __init__(self, limit: int) -> None:
        self.limit = check_limit(limit)
        self._live: set[int] = set()
        self.refused = 0

    @property
    def open(self) -> int:
        return len(self._live)

    def on_event(self, event: int, fd: int) -> None:
        if event == zmq.EVENT_ACCEPTED:
            self._live.add(fd)
        elif event == zmq.EVENT_DISCONNECTED:
            self._live.discard(fd)

    def admits(self, exempt: bool = False) -> bool:
        """Whether a connection in its handshake (already counted) may stay."""
        if self.limit == 0 or exempt or len(self._live) <= self.limit:
            return True
        self.refused += 1
        return False


class ConnectionMonitor:
    """A ROUTER's socket monitor feeding a ``ConnectionCount``; create it before the ROUTER binds."""

    def __init__(self, router: zmq.Socket, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.count = ConnectionCount(limit)
        self.socket = router.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        self._router = router
        self._clock = clock
        self._last_logged = -_LOG_EVERY_S
        self._refused_logged = 0

    def drain(self) -> None:
        """Apply every pending monitor event (never blocks)."""
        while True:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            event = parse_monitor_message(frames)
            self.count.on_event(event["event"], event["value"])

    def admits(self, address: bytes, exempt: bool = False) -> bool:
        """The ZAP decision for a connection from ``address``, on the current count."""
        self.drain()
        if self.count.admits(exempt):
            return True
        now = self._clock()
        if now - self._last_logged >= _LOG_EVERY_S:  # a full broker may see many refusals: once a minute
            log.warning(
                "refused a connection from %s: %d other connections open, the limit is %d (--max-connections); "
                "%d refused since the last warning",
                address.decode(errors="replace"), self.count.open - 1, self.count.limit,
                self.count.refused - self._refused_logged,
            )  # fmt: skip
            self._last_logged, self._refused_logged = now, self.count.refused
        return False

    def close(self) -> None:
        try:
            self._router.disable_monitor()
        except zmq.ZMQError:
            pass  # the ROUTER is closed already
        self.socket.close(linger=0)


def close_monitored(sock: zmq.Socket, monitor: zmq.Socket | None) -> None:
    """Close a client-side socket and its handshake monitor (linger 0), the monitor first."""
    if monitor is not None:
        try:
            sock.disable_monitor()
        except zmq.ZMQError:
            pass
        monitor.close(linger=0)
    sock.close(linger=0)
