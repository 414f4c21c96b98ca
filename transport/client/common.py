"""What every socket-using client (``Producer``, ``Consumer``; ``Admin`` does the same inline) shares:
bootstrap resolution, CURVE key files (``curve_setup``), setting checks, a connection pool keyed by
endpoint, and a wake-up signal a poll loop can wait on beside its sockets.

    ConnectionPool: endpoint -> Connection (DEALER), created on first use, replaced on timeout;
                    its poll also watches every connection's link monitor, and ``take_lost()``
                    names the endpoints whose link went down (the broker died: replies lost)
    WakeSignal:     any thread calls set(); the owning loop polls fileno() with its sockets

Not thread-safe except ``WakeSignal.set``: a pool and its connections belong to one thread (the
producer's sender, or the consumer's caller), since ZeroMQ sockets are not thread-safe.
"""

from __future__ import annotations

import os
import threading
from typing import Iterator

import zmq

from kbroker.errors import InvalidConfigError
from kbroker.transport.client.types import BOOTSTRAP_ENV, normalize_bootstrap
from kbroker.transport.connection import Connection, SocketSetup
from kbroker.transport.curve import ClientCurve, CurveKeyError, client_curve

__all__ = [
    "resolve_bootstrap", "curve_setup", "check_ms", "check_count", "ConnectionPool", "WakeSignal",
    "CURVE_SECRET_KEY_ENV", "CURVE_SERVER_KEY_ENV",
]  # fmt: skip

CURVE_SECRET_KEY_ENV = "KBROKER_CURVE_SECRET_KEY"
CURVE_SERVER_KEY_ENV = "KBROKER_CURVE_SERVER_KEY"


def resolve_bootstrap(bootstrap: str | None) -> str:
    """``bootstrap``, else ``$KBROKER_BOOTSTRAP``, else 127.0.0.1:7092, as ``tcp://host:port``."""
    if bootstrap is None:
        bootstrap = os.environ.get(BOOTSTRAP_ENV) or None
    return normalize_bootstrap(bootstrap)


def curve_setup(curve_secret_key: object, curve_server_key: object) -> ClientCurve | None:
    """The CURVE socket setup of a client (Admin, Producer, Consumer), or None for plaintext.

    Each key not given falls back to ``$KBROKER_CURVE_SECRET_KEY`` / ``$KBROKER_CURVE_SERVER_KEY``
    (as the bootstrap falls back to ``$KBROKER_BOOTSTRAP``). Both or neither; a missing or
    malformed file is ``InvalidConfigError`` naming the file (never showing a key).
    """
    if curve_secret_key is None:
        curve_secret_key = os.environ.get(CURVE_SECRET_KEY_ENV) or None
    if curve_server_key is None:
        curve_server_key = os.environ.get(CURVE_SERVER_KEY_ENV) or None
    for name, value in (("curve_secret_key", curve_secret_key), ("curve_server_key", curve_server_key)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise InvalidConfigError(f"{name} must be a file path (str or os.PathLike), got {type(value).__name__}")
    try:
        return client_curve(curve_secret_key, curve_server_key)  # type: ignore[arg-type]
    except CurveKeyError as exc:
        raise InvalidConfigError(str(exc)) from None


def check_ms(name: str, value: object, *, minimum: float = 0) -> float:
    """A duration setting in milliseconds: a number >= ``minimum`` (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise InvalidConfigError(f"{name} must be a number of milliseconds >= {minimum:g}, got {value!r}")
    return float(value)


def check_count(name: str, value: object, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


class ConnectionPool:
    """One ``Connection`` per endpoint, opened on first use."""

    def __init__(self, *, timeout: float, context: zmq.Context | None = None, socket_setup: SocketSetup | None = None) -> None:
        self._timeout = timeout
        self._context = context
        self.socket_setup = socket_setup  # CURVE keys (client_curve), applied to every connection
        self._connections: dict[str, Connection] = {}
        self._lost: set[str] = set()

    def get(self, endpoint: str) -> Connection:
        conn = self._connections.get(endpoint)
        if conn is None:
            conn = Connection(endpoint, timeout=self._timeout, context=self._context, socket_setup=self.socket_setup)
            self._connections[endpoint] = conn
        return conn

    def items(self) -> Iterator[tuple[str, Connection]]:
        return iter(list(self._connections.items()))

    def readable(self, conn: Connection) -> bool:
        """Whether a reply is waiting on ``conn`` (without blocking)."""
        sock = conn._live_socket()
        return bool(sock.getsockopt(zmq.EVENTS) & zmq.POLLIN)

    def poll(self, timeout_s: float, wake: WakeSignal | None = None) -> list[tuple[str, Connection]]:
        """Wait up to ``timeout_s`` for a reply on any connection (or ``wake``); returns the readable ones."""
        poller = zmq.Poller()
        by_socket = {}
        by_monitor = {}
        for endpoint, conn in self._connections.items():
            if conn.closed:
                continue
            sock = conn._live_socket()
            poller.register(sock, zmq.POLLIN)
            by_socket[sock] = (endpoint, conn)
            if conn.monitor is not None:
                poller.register(conn.monitor, zmq.POLLIN)
                by_monitor[conn.monitor] = (endpoint, conn)
        if wake is not None:
            poller.register(wake.fileno(), zmq.POLLIN)
        events = poller.poll(max(0, int(timeout_s * 1000 + 0.999)))
        ready = [by_socket[s] for s, _ in events if s in by_socket]
        for s, _ in events:
            if s in by_monitor:
                endpoint, conn = by_monitor[s]
                if conn.update_link():
                    self._lost.add(endpoint)
        if wake is not None:
            wake.clear()
        return ready

    def take_lost(self) -> set[str]:
        """Endpoints whose link went down since the last call (read their replies first)."""
        lost, self._lost = self._lost, set()
        return lost

    def close(self) -> None:
        for conn in self._connections.values():
            conn.close()
        self._connections.clear()


class WakeSignal:
    """A self-pipe: ``set()`` from any thread (never blocks), ``fileno()`` polled by the owner."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._lock = threading.Lock()
        self._pending = False
        self._closed = False

    def fileno(self) -> int:
        return self._read

    def set(self) -> None:
        if self._pending:
            return
        with self._lock:
            if self._pending or self._closed:
                return
            self._pending = True
            try:
                os.write(self._write, b"x")
            except BlockingIOError:
                pass  # the pipe is full: the reader will wake anyway

    def clear(self) -> None:
        with self._lock:
            if not self._pending:
                return
            self._pending = False
            try:
                while os.read(self._read, 4096):
                    pass
            except BlockingIOError:
                pass

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            os.close(self._read)
            os.close(self._write)
