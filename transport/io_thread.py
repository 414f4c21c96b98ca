"""The one I/O thread per process: it owns every ZeroMQ socket of the process.

    other threads (pykka actors)                 I/O thread                       network
    io.tell(addr, msg) / io.ask(addr, msg, t) -> command deque + wake pipe -> DEALER per endpoint -> peer ROUTER
    envelope.reply(msg) / envelope.done()     ->                           -> ROUTER, back by route
    handler.tell(Envelope)                    <- decode, route by "to"     <- ROUTER (bound: requests)
    io.call_soon(fn, *args)                   -> command deque -> fn runs here (LoopRef actors)
    future.set_result(reply)                  <- match correlation id      <- DEALERs (replies)

This module is the thread, its poll loop and the public API; ``inbound.Inbound`` is the ROUTER
side and ``outbound.Outbound`` the DEALER side, both driven by this loop only.

- The ROUTER is bound on the process endpoint (``tcp://HOST:*`` gives an ephemeral port; the
  real endpoint is reported by ``start()``). Requests and tells for the actors registered here
  arrive on it; their replies leave through it, routed back to the sending socket.
- One DEALER per remote endpoint this process sends to: requests and tells leave through it,
  replies come back on it. A process may address itself (its DEALER connects to its own ROUTER).

Invariants:
- Only the I/O thread touches sockets, the poller, pending asks and the budget. Other threads
  hand it commands through a ``CommandQueue`` (deque + wake-up pipe), so no socket is shared
  between threads and no per-thread socket has to be closed before the context can end.
- The I/O thread never blocks on a send: NOBLOCK, and on EAGAIN a ``SendQueue`` per destination
  (flushed on POLLOUT for DEALERs, retried every few ms for ROUTER replies). Messages from one
  process to one endpoint keep their order.
- Every ask ends exactly once: with the reply, with the ``KBrokerError`` of an ``ErrorResponse``
  reply, with ``RequestTimedOutError`` at its deadline (dead or silent peer), or with
  ``BrokerUnavailableError`` when this thread stops.
- While payload bytes delivered to local actors and not released reach ``max_inflight_bytes``,
  the ROUTER is not read: its RCVHWM fills, then TCP, then the senders' SNDHWM, so a fast
  producer cannot grow this process's memory. In flight stays below the limit plus one message.
- With ``curve`` (transport/curve.py) every socket is CURVE, a ZAP handler on this thread's
  context (polled here, bound before the ROUTER) admits only allowed keys, each request's sender
  identity (its public key) goes into ``Envelope.identity`` and ``guard.authorize`` checks the
  request once before delivery; without ``curve`` none of this costs anything.
- With ``max_connections`` (N > 0) a socket monitor on the ROUTER counts its TCP connections and
  the ZAP handler refuses a handshake past N ("500", transport/conn_limit.py); a plaintext ROUTER
  then gets a ZAP domain and a handler that admits everyone else. The peers share the limit, so
  each DEALER gets a monitor too and one refused by a full peer is replaced (outbound.py). With
  0 (unlimited) there is no monitor, and a plaintext ROUTER no ZAP at all.
- Processes are started with ``spawn``: an ``IOThread`` is created in the process that uses it
  (it refuses to be pickled or used after a fork); its context is its own, terminated by ``stop``.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import pykka
import zmq

from kbroker.errors import BrokerUnavailableError
from kbroker.transport.codec import ACTOR_NAME_MAX, MAX_HEADER_BYTES, encode
from kbroker.transport.command_queue import CommandQueue
from kbroker.transport.conn_limit import ConnectionMonitor, check_limit
from kbroker.transport.curve import ZAP_DOMAIN, CurveServer, RequestGuard, ZapHandler
from kbroker.transport.envelope import Address, Envelope
from kbroker.transport.inbound import Inbound
from kbroker.transport.outbound import Outbound, fail
from kbroker.transport.schema import Message

__all__ = ["IOThread", "IOStats", "Handler", "SocketSetup"]

log = logging.getLogger(__name__)

Handler = Callable[[Envelope], Any] | pykka.ActorRef
"""A local destination: a pykka ``ActorRef`` (gets ``tell(envelope)``) or a callable run in the
I/O thread (must be quick and must not block)."""
SocketSetup = Callable[[zmq.Socket, str], None]
"""Called with each new socket and its role ("router" or "dealer") before bind/connect (CURVE)."""

_SEND, _REPLY, _RELEASE, _FORGET, _STOP, _CALL = range(6)
_REPLY_RETRY_S = 0.005  # retry interval for replies a slow client is not taking yet
_MAX_IDLE_POLL_MS = 1000

_forked = False  # set in a forked child: IOThreads and their sockets belong to the parent


def _after_fork_in_child() -> None:
    global _forked
    _forked = True


os.register_at_fork(after_in_child=_after_fork_in_child)


@dataclass(frozen=True, slots=True)
class IOStats:
    endpoint: str | None
    inflight_bytes: int  # payload bytes delivered to local actors and not yet released
    peak_inflight_bytes: int
    max_inflight_bytes: int
    reading_paused: bool  # True while the ROUTER is not read (budget exhausted)
    delivered: int  # envelopes handed to local actors
    rejected: int  # incoming messages answered with ErrorResponse (malformed, unknown actor)
    pending_asks: int
    queued_sends: int  # messages waiting in send queues (peer slow, dead or not yet connected)
    dropped_sends: int  # messages given up (send queue full, expired, peer gone)
    stale_replies: int  # replies that arrived after their ask ended
    peers: int  # DEALER sockets open


class IOThread:
    """Owns the process's ZeroMQ sockets; routes envelopes to local handlers and remote actors."""

    def __init__(
        self,
        bind: str = "tcp://127.0.0.1:*",
        *,
        advertised_host: str | None = None,
        name: str = "kbroker-io",
        max_inflight_bytes: int = 64 << 20,
        hwm: int = 64,
        max_frame_bytes: int = 256 << 20,
        max_request_bytes: int = 100 << 20,
        max_in_flight_per_connection: int = 1000,
        max_header_bytes: int = MAX_HEADER_BYTES,
        max_reply_header_bytes: int = 64 << 20,
        send_queue_bytes: int = 64 << 20,
        send_ttl: float = 30.0,
        socket_setup: SocketSetup | None = None,
        clock: Callable[[], float] = time.monotonic,
        curve: CurveServer | None = None,
        guard: RequestGuard | None = None,
        max_connections: int = 0,
    ) -> None:
        """``curve``: serve and connect with CURVE (a ZAP handler on this thread checks clients);
        ``guard``: authorize each request by its sender's identity (only with ``curve``);
        ``max_connections``: TCP connections the ROUTER keeps at most (0: unlimited)."""
        if max_inflight_bytes <= 0:
            raise ValueError(f"max_inflight_bytes must be positive, got {max_inflight_bytes}")
        self._max_connections = check_limit(max_connections)
        self._connections: ConnectionMonitor | None = None
        self._bind = bind
        self._advertised_host = advertised_host
        self._name = name
        self._max_inflight_bytes = max_inflight_bytes
        self._hwm = hwm
        self._max_frame_bytes = max_frame_bytes
        self._max_request_bytes = max_request_bytes
        self._max_in_flight_per_connection = max_in_flight_per_connection
        self._max_header_bytes = max_header_bytes
        self._max_reply_header_bytes = max_reply_header_bytes
        self._send_queue_bytes = send_queue_bytes
        self._send_ttl = send_ttl
        self._socket_setup = socket_setup if socket_setup is not None or curve is None else curve.socket_setup
        self._curve = curve
        self._guard = guard if curve is not None else None  # no identities without CURVE: nothing to check
        self._zap: ZapHandler | None = None
        self._clock = clock
        self._pid = os.getpid()
        self._ids = itertools.count(1)
        self._handlers_lock = threading.Lock()
        self._handlers: dict[str, tuple[Handler, frozenset[type] | None]] = {}
        self._known: set[str] = set()  # names registered once, or announced with expect(): missing = starting or stopping
        self._default: str | None = None
        self._commands: CommandQueue | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._endpoint: str | None = None
        # owned by the I/O thread once started
        self._context: zmq.Context | None = None
        self._poller: zmq.Poller | None = None
        self._inbound: Inbound | None = None
        self._outbound: Outbound | None = None
        self._reading = True

    def __reduce__(self) -> Any:
        raise TypeError("an IOThread cannot be pickled: create one in each process (spawn start method)")

    def __enter__(self) -> IOThread:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- public API (any thread) ------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The bound ROUTER endpoint as other processes should connect to it."""
        if self._endpoint is None:
            raise RuntimeError("the I/O thread is not started")
        return self._endpoint

    def start(self, timeout: float = 10.0) -> str:
        """Start the thread, bind the ROUTER and return the real endpoint."""
        if self._thread is not None:
            raise RuntimeError("the I/O thread was already started")
        self._check_process()
        self._commands = CommandQueue()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the I/O thread did not bind {self._bind} within {timeout}s")
        if self._start_error is not None:
            self._thread.join()
            raise self._start_error
        assert self._endpoint is not None
        return self._endpoint

    def register(
        self, name: str, handler: Handler, *, default: bool = False, accepts: Iterable[type[Message]] | None = None
    ) -> None:
        """Route messages whose ``to`` is ``name`` to ``handler``; ``default``: also those with no ``to``.

        ``accepts``: the message types this actor serves; others are answered with an
        ``ErrorResponse`` (InvalidRequest) by the I/O thread, e.g. internal messages sent to a
        client-facing actor. May be called before or after ``start``, from any thread; takes
        effect for the next message.
        """
        if not isinstance(name, str) or not 0 < len(name) <= ACTOR_NAME_MAX:
            raise ValueError(f"actor names are 1-{ACTOR_NAME_MAX} characters, got {name!r}")
        allowed = frozenset(accepts) if accepts is not None else None
        with self._handlers_lock:
            self._handlers[name] = (handler, allowed)
            self._known.add(name)
            if default:
                self._default = name

    def expect(self, *names: str) -> None:
        """Names this process will register: a request for one of them that is not registered (yet,
        or any more) is answered ``BrokerUnavailable`` (retriable: starting or stopping), while a
        name never announced is ``InvalidRequest``. Registered names count as announced."""
        with self._handlers_lock:
            self._known.update(names)

    def unregister(self, name: str) -> None:
        with self._handlers_lock:
            self._handlers.pop(name, None)
            if self._default == name:
                self._default = None

    def address(self, name: str) -> Address:
        """The address other processes use to reach the local actor ``name``."""
        return Address(self.endpoint, name)

    def tell(self, address: Address | tuple[str, str | None], message: Message) -> None:
        """Send ``message`` to a remote (or local) actor; no reply is awaited. Dropped if stopped."""
        endpoint, actor = address
        frames = encode(message, next(self._ids), actor)
        self._submit((_SEND, endpoint, frames, 0, None, self._clock() + self._send_ttl, ""))

    def ask(self, address: Address | tuple[str, str | None], message: Message, timeout: float) -> Future[Message]:
        """Send ``message`` and return a future of the reply.

        The future fails with the reply's error when it is an ``ErrorResponse``, with
        ``RequestTimedOutError`` after ``timeout`` seconds, and with ``BrokerUnavailableError``
        if the I/O thread stops first. Its callbacks run in the I/O thread: keep them short
        (e.g. ``actor_ref.tell(...)``).
        """
        endpoint, actor = address
        future: Future[Message] = Future()
        correlation_id = next(self._ids)
        frames = encode(message, correlation_id, actor)
        target = repr(actor) if actor is not None else "the default actor"
        what = f"no reply to {type(message).__name__} from {target} at {endpoint} within {timeout:g}s"
        command = (_SEND, endpoint, frames, correlation_id, future, self._clock() + timeout, what)
        if not self._submit(command):
            future.set_exception(BrokerUnavailableError("the I/O thread is stopped; no message was sent"))
        return future

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Run ``fn(*args)`` on the I/O thread, after what it is doing now (False: stopped, not run).

        For objects that live on the I/O thread (the worker's Gateway): their messages from other
        threads come this way, so their state is touched by this thread only. ``fn`` must be quick
        and must not block; an exception it raises is logged, and the thread goes on.
        """
        return self._submit((_CALL, fn, args))

    def in_thread(self) -> bool:
        """Whether the caller is this I/O thread (where objects living on it may be called directly)."""
        thread = self._thread
        return thread is not None and thread.ident == threading.get_ident()

    def forget(self, endpoint: str) -> None:
        """Close the DEALER to ``endpoint`` (a worker that is gone); queued messages are dropped."""
        self._submit((_FORGET, endpoint))

    def stats(self) -> IOStats:
        """A snapshot for monitoring (read without locking; each number is consistent on its own)."""
        inbound, outbound = self._inbound, self._outbound
        return IOStats(
            endpoint=self._endpoint,
            inflight_bytes=inbound.budget.used if inbound else 0,
            peak_inflight_bytes=inbound.budget.peak if inbound else 0,
            max_inflight_bytes=self._max_inflight_bytes,
            reading_paused=not self._reading,
            delivered=inbound.delivered if inbound else 0,
            rejected=inbound.rejected if inbound else 0,
            pending_asks=len(outbound.pending) if outbound else 0,
            queued_sends=(inbound.queued() if inbound else 0) + (outbound.queued() if outbound else 0),
            dropped_sends=(inbound.dropped if inbound else 0) + (outbound.dropped if outbound else 0),
            stale_replies=outbound.stale if outbound else 0,
            peers=len(outbound.peers) if outbound else 0,
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread: pending asks fail, sockets close (linger 0), the context ends."""
        thread = self._thread
        if thread is None:
            return
        self._submit((_STOP,))
        if thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                raise RuntimeError(f"the I/O thread {self._name} did not stop within {timeout}s")

    # --- ReplySink: called by Envelope.reply / Envelope.done (any thread) --------------------

    def send_reply(self, envelope: Envelope, message: Message) -> None:
        if self._guard is not None and envelope.identity is not None:
            message = self._guard.filter_reply(envelope.identity, message)  # e.g. topics it may not see
        frames = encode(message, envelope.correlation_id)
        self._submit((_REPLY, envelope.route, frames, envelope))

    def release(self, envelope: Envelope) -> None:
        self._submit((_RELEASE, envelope))

    # --- hand-over to the I/O thread --------------------------------------------------------

    def _check_process(self) -> None:
        if _forked and os.getpid() != self._pid:
            raise RuntimeError("this IOThread belongs to another process (fork); create a new one here")

    def _submit(self, command: tuple[Any, ...]) -> bool:
        if self._commands is None:
            raise RuntimeError("the I/O thread is not started")
        self._check_process()
        return self._commands.submit(command)

    def _handler_for(self, to: str | None) -> tuple[str | None, Handler | None, frozenset[type] | None]:
        name = to if to is not None else self._default
        entry = self._handlers.get(name) if name is not None else None
        return (name, None, None) if entry is None else (name, *entry)

    # --- the I/O thread ---------------------------------------------------------------------

    def _run(self) -> None:
        assert self._commands is not None
        self._commands.set_owner(threading.get_ident())
        try:
            self._setup()
        except BaseException as exc:  # reported by start()
            self._start_error = exc
            self._shutdown()
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop()
        except BaseException:
            log.exception("the I/O thread %s crashed; stopping it", self._name)
        finally:
            self._shutdown()

    def _setup(self) -> None:
        assert self._commands is not None
        context = self._context = zmq.Context(io_threads=1)
        poller = self._poller = zmq.Poller()
        router = context.socket(zmq.ROUTER)
        try:
            router.setsockopt(zmq.LINGER, 0)
            router.setsockopt(zmq.RCVHWM, self._hwm)
            router.setsockopt(zmq.SNDHWM, self._hwm)
            router.setsockopt(zmq.ROUTER_MANDATORY, 1)  # EHOSTUNREACH for gone clients, EAGAIN when full
            # a frame past the request limit (plus room for a header) is dropped with its connection
            # by ZeroMQ itself; requests up to it are read and refused with a clear error
            router.setsockopt(zmq.MAXMSGSIZE, min(self._max_frame_bytes, self._max_request_bytes + (1 << 20)))
            if self._socket_setup is not None:
                self._socket_setup(router, "router")
            self._setup_zap(context, poller, router)  # before the ROUTER binds: no client may connect unchecked or uncounted
            router.bind(self._bind)
        except BaseException:
            router.close(linger=0)
            raise
        endpoint = router.getsockopt_string(zmq.LAST_ENDPOINT)
        if self._advertised_host:
            scheme, _, rest = endpoint.partition("://")
            endpoint = f"{scheme}://{self._advertised_host}:{rest.rsplit(':', 1)[1]}"
        self._endpoint = endpoint
        self._inbound = Inbound(
            router,
            endpoint=endpoint,
            handler_for=self._handler_for,
            expected=lambda name: name is None or name in self._known,
            sink=self,
            max_inflight_bytes=self._max_inflight_bytes,
            max_header_bytes=self._max_header_bytes,
            max_request_bytes=self._max_request_bytes,
            max_in_flight_per_connection=self._max_in_flight_per_connection,
            send_queue_bytes=self._send_queue_bytes,
            send_ttl=self._send_ttl,
            clock=self._clock,
            identify=self._curve is not None,
            authorize=self._guard.authorize if self._guard is not None else None,
        )
        self._outbound = Outbound(
            context,
            poller,
            hwm=self._hwm,
            max_reply_header_bytes=self._max_reply_header_bytes,
            send_queue_bytes=self._send_queue_bytes,
            socket_setup=self._socket_setup,
            clock=self._clock,
            watch_refusals=self._max_connections > 0,  # the peers share the limit: they may refuse us
        )
        poller.register(router, zmq.POLLIN)
        poller.register(self._commands.fileno(), zmq.POLLIN)

    def _setup_zap(self, context: zmq.Context, poller: zmq.Poller, router: zmq.Socket) -> None:
        """The ZAP handler for CURVE and/or ``max_connections``, with the ROUTER's connection monitor."""
        if self._max_connections:
            self._connections = ConnectionMonitor(router, self._max_connections, self._clock)
            poller.register(self._connections.socket, zmq.POLLIN)
            if self._curve is None:
                router.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN)  # libzmq asks ZAP about NULL clients only with a domain
        if self._curve is not None or self._connections is not None:
            exempt = frozenset({self._curve.public_key}) if self._curve is not None else frozenset()
            allow = self._curve.allow if self._curve is not None else None
            self._zap = ZapHandler(context, allow, connections=self._connections, exempt=exempt)
            poller.register(self._zap.socket, zmq.POLLIN)

    def _loop(self) -> None:
        assert self._poller and self._inbound and self._outbound and self._commands is not None
        poller, inbound, outbound, commands = self._poller, self._inbound, self._outbound, self._commands
        router = inbound.router
        zap = self._zap.socket if self._zap is not None else None
        monitor = self._connections.socket if self._connections is not None else None
        while True:
            router_ready = False
            for sock, event in poller.poll(self._poll_timeout_ms()):
                if sock is router:
                    router_ready = True
                elif isinstance(sock, int):
                    commands.clear_wakeup()
                elif sock is zap and self._zap is not None:
                    self._zap.handle()
                elif sock is monitor and self._connections is not None:
                    self._connections.drain()
                else:  # a DEALER, or its monitor (watch_refusals)
                    outbound.on_event(sock, event)
            if router_ready:
                inbound.read()
            if self._run_commands():
                return
            if inbound.reply_queues:
                inbound.flush_replies()
            outbound.expire(self._clock())
            self._update_reading()

    def _poll_timeout_ms(self) -> int:
        assert self._commands is not None and self._inbound and self._outbound
        if self._commands:
            return 0
        now = self._clock()
        deadline = self._outbound.next_deadline()
        if self._inbound.reply_queues:
            retry = now + _REPLY_RETRY_S
            deadline = retry if deadline is None else min(deadline, retry)
        if deadline is None:
            return _MAX_IDLE_POLL_MS
        return max(0, min(_MAX_IDLE_POLL_MS, math.ceil((deadline - now) * 1000)))

    def _run_commands(self) -> bool:
        commands, inbound, outbound = self._commands, self._inbound, self._outbound
        assert commands is not None and inbound and outbound
        while commands:
            command = commands.pop()
            kind = command[0]
            if kind == _SEND:
                outbound.send(*command[1:])
            elif kind == _REPLY:
                inbound.send_reply(command[1], command[2])
                if len(command) > 3:
                    inbound.finished(command[3])
            elif kind == _RELEASE:
                inbound.release(command[1])
            elif kind == _CALL:
                try:
                    command[1](*command[2])
                except Exception:
                    log.exception("%s failed on the I/O thread %s", command[1], self._name)
            elif kind == _FORGET:
                outbound.forget(command[1])
            elif kind == _STOP:
                return True
        return False

    def _update_reading(self) -> None:
        assert self._inbound and self._poller
        want = self._inbound.wants_input
        if want != self._reading:
            self._poller.register(self._inbound.router, zmq.POLLIN if want else 0)
            self._reading = want

    def _shutdown(self) -> None:
        assert self._commands is not None
        stopped = BrokerUnavailableError("the I/O thread stopped before a reply arrived")
        for command in self._commands.close():
            if command[0] == _SEND and command[4] is not None:
                fail(command[4], stopped)
        if self._outbound is not None:
            self._outbound.close(stopped)
        if self._inbound is not None:
            self._inbound.close()
        if self._zap is not None:
            self._zap.close()
        if self._connections is not None:
            self._connections.close()
        if self._context is not None:
            self._context.term()
