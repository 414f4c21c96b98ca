"""The supervisor: the main process of ``kbroker start``.

    Supervisor.run()
      ├─ DirLock(DATA)                     a second broker on DATA fails at once (pid and dir named)
      ├─ cluster.json                       cluster id, controller epoch + 1
      ├─ IOThread bound on tcp://HOST:PORT  the bootstrap endpoint
      ├─ Controller actor                   default actor of the bootstrap endpoint; metadata log in
      │                                       DATA/controller/, reaches workers through the I/O thread
      ├─ N worker processes (spawn)         DATA/worker-<id>/, each with its own endpoint
      └─ main thread: multiprocessing.connection.wait on every worker's sentinel + a wake-up pipe
           - a sentinel fires: log the exit, tell the controller (WorkerDied), restart the worker
             after its backoff (RestartBackoff)
           - the controller reports registrations: "ready" once every worker is registered
           - SIGINT / SIGTERM: stop the workers (SIGTERM, deadline, then SIGKILL), the actors,
             the I/O thread; release the lock; return 0

Invariants:
- Workers are started with the ``spawn`` method only (never fork: this process runs threads
  and a ZeroMQ context) and begin life ignoring SIGINT.
- Every worker process this supervisor started has exited (and been joined) before ``run``
  returns, whatever happened; a supervisor that is itself SIGKILLed leaves workers that exit by
  themselves (they watch their parent's sentinel).
- A worker that exits while the broker is not stopping is restarted after
  ``RestartBackoff.delay_after_exit`` (0.1 s doubling to 5 s, reset once it stayed up 10 s).
- Only the main thread touches ``_slots``; the controller's events reach it through a queue
  and the wake-up pipe.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import queue
import socket
import time
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Callable

import pykka
import zmq

from kbroker.actors.controller import (
    CONTROLLER_ACTOR,
    Controller,
    ControllerEvent,
    ControllerFailed,
    WorkerDied,
    WorkerRegistered,
)
from kbroker.actors.controller_state import ControllerSettings
from kbroker.actors.datadir import DirLock, load_cluster_identity, worker_dir
from kbroker.actors.signals import ShutdownSignals, Wakeup, ignore_sigint_across_exec, signal_name
from kbroker.actors.worker import WorkerConfig, worker_main
from kbroker.actors.acls import AclGuard
from kbroker.transport.curve import CurveKeyError, CurveServerConfig
from kbroker.storage.config import TopicConfig
from kbroker.transport.io_thread import IOThread

__all__ = ["BrokerConfig", "RestartBackoff", "StartupError", "Supervisor", "describe_exit"]

log = logging.getLogger(__name__)

_WILDCARD_HOSTS = frozenset({"0.0.0.0", "*", ""})
_REAP_TIMEOUT = 5.0  # seconds to reap a process whose sentinel has fired


class StartupError(RuntimeError):
    """The broker cannot start (port taken, bad configuration); the message says what to do."""


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    workers: int
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 7092  # 0: any free port (the real one is logged)
    advertised_host: str | None = None  # what clients connect to (default: the bound host)
    auto_create_topics: bool = True
    default_partitions: int = 1  # topics created with -1 partitions, and auto-created ones
    default_replication_factor: int = 3  # capped by the live workers when a topic is created
    session_timeout_ms: int = 6000
    heartbeat_interval_ms: int = 500
    log_retention_check_interval_ms: int = 300_000  # log.retention.check.interval.ms, for every worker
    storage_retry_interval_ms: int = 5000  # reopen a replica whose storage failed this often
    fault_injection: bool = False  # workers honour InjectFault (tests only)
    max_request_bytes: int = 100 << 20  # larger requests are refused (every endpoint)
    max_in_flight_requests: int = 1000  # unanswered requests per connection, per endpoint
    max_connections: int = 0  # TCP connections per endpoint (each process), clients and broker links (0: unlimited)
    producer_byte_rate: int = 0  # quota per client id on each worker (0: none)
    consumer_byte_rate: int = 0
    stop_timeout: float = 10.0  # seconds workers get to stop after SIGTERM before SIGKILL
    restart_initial: float = 0.1
    restart_max: float = 5.0
    restart_stable_after: float = 10.0
    log_level: int = logging.INFO
    topic_defaults: tuple[tuple[str, str], ...] = ()  # broker-wide topic config defaults (Kafka names, text)
    curve: CurveServerConfig | None = None  # --curve-secret-key/--curve-allow/--curve-super-user: CURVE + ACLs

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise StartupError(f"--workers must be at least 1, got {self.workers}")
        if not 0 <= self.port <= 65535:
            raise StartupError(f"--port must be 0..65535, got {self.port}")
        if self.default_partitions < 1 or self.default_replication_factor < 1:
            raise StartupError("--default-partitions and --default-replication-factor must be at least 1")
        if self.heartbeat_interval_ms <= 0 or self.session_timeout_ms <= 0:
            raise StartupError("--heartbeat-interval-ms and --session-timeout-ms must be positive")
        if self.log_retention_check_interval_ms <= 0:
            raise StartupError(f"--log-retention-check-interval-ms must be positive, got {self.log_retention_check_interval_ms}")
        if self.heartbeat_interval_ms * 2 > self.session_timeout_ms:
            raise StartupError(
                f"--session-timeout-ms ({self.session_timeout_ms}) must be at least twice "
                f"--heartbeat-interval-ms ({self.heartbeat_interval_ms}), or healthy workers get fenced"
            )


class RestartBackoff:
    """Delay before restarting a worker that exited: doubles per quick exit, resets once stable. Pure."""

    def __init__(self, initial: float = 0.1, maximum: float = 5.0, stable_after: float = 10.0) -> None:
        if not 0 < initial <= maximum:
            raise ValueError(f"need 0 < initial <= maximum, got {initial}, {maximum}")
        self.initial = initial
        self.maximum = maximum
        self.stable_after = stable_after
        self._next = initial

    def delay_after_exit(self, uptime: float) -> float:
        """The delay before the next start, given how long the process that exited had run."""
        if uptime >= self.stable_after:
            self._next = self.initial
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        return f"killed by {signal_name(-exitcode)}"
    return f"exit code {exitcode}"


@dataclass(eq=False)
class _WorkerSlot:
    worker_id: int
    backoff: RestartBackoff
    process: BaseProcess | None = None
    started_at: float = 0.0
    restart_at: float | None = None  # when a restart is due (None: none pending)
    registered_pid: int | None = None  # pid of the process the controller has as alive
    restarts: int = 0
    history: list[int] = field(default_factory=list)  # pids started in this slot


class Supervisor:
    """Runs the broker in the calling (main) thread until SIGINT / SIGTERM. See module docstring."""

    def __init__(self, config: BrokerConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._context = multiprocessing.get_context("spawn")
        self._wakeup = Wakeup()
        self._signals = ShutdownSignals(self._wakeup)
        self._events: queue.SimpleQueue[ControllerEvent] = queue.SimpleQueue()
        self._slots = [
            _WorkerSlot(i, RestartBackoff(config.restart_initial, config.restart_max, config.restart_stable_after))
            for i in range(config.workers)
        ]
        self._controller: pykka.ActorRef | None = None
        self._controller_endpoint = ""
        self._ready = False
        self._exit_code = 0
        self._started_at = clock()
        self.endpoint: str | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def run(self) -> int:
        """Start, serve until asked to stop, stop everything. Returns the exit code: 0, or 1 if the controller failed."""
        config = self.config
        self._started_at = self._clock()
        data_dir = Path(config.data_dir).resolve()
        lock = DirLock(data_dir)
        lock.acquire()  # DataDirInUseError: the caller reports it (exit code 1)
        io: IOThread | None = None
        try:
            self._signals.install()
            identity = load_cluster_identity(data_dir)
            advertised = _advertised_host(config.host, config.advertised_host)
            curve, guard = _load_curve(config.curve)
            io = IOThread(
                curve=curve, guard=guard,  # CURVE off: both None, no identities, no checks
                bind=_bind_address(config.host, config.port), advertised_host=advertised, name="kbroker-io-supervisor",
                max_request_bytes=config.max_request_bytes, max_in_flight_per_connection=config.max_in_flight_requests,
                max_connections=config.max_connections,
            )
            try:
                self.endpoint = io.start()
            except zmq.ZMQError as exc:
                raise StartupError(
                    f"cannot listen on {config.host}:{config.port}: {exc}; is another broker using that port? "
                    "Choose another --port (0 picks a free one)"
                ) from None
            self._controller_endpoint = _local_endpoint(self.endpoint, config.host)
            self._controller = Controller.start(
                cluster_id=identity.cluster_id,
                controller_epoch=identity.controller_epoch,
                endpoint=self.endpoint,
                io=io,
                data_dir=data_dir,
                settings=ControllerSettings(
                    session_timeout_ms=config.session_timeout_ms,
                    default_partitions=config.default_partitions,
                    default_replication_factor=config.default_replication_factor,
                    topic_defaults=TopicConfig.from_dict(dict(config.topic_defaults)),
                ),
                auto_create_topics=config.auto_create_topics,
                listener=self._on_controller_event,
                acl_guard=guard,
            )
            io.register(CONTROLLER_ACTOR, self._controller, default=True, accepts=Controller.ACCEPTS)
            log.info(
                "listening on %s (cluster %s, controller epoch %d, data %s, %d workers)",
                self.endpoint, identity.cluster_id, identity.controller_epoch, data_dir, config.workers,
            )  # fmt: skip
            for slot in self._slots:
                self._spawn(slot)
            self._serve()
            log.info("stopping (%s)", self._signals.reason)
        finally:
            try:
                self._stop_workers()
            finally:
                if io is not None:
                    io.unregister(CONTROLLER_ACTOR)
                if self._controller is not None:
                    self._controller.stop(timeout=10)
                if io is not None:
                    io.stop()
                self._signals.restore()
                self._wakeup.close()
                lock.release()
        log.info("stopped")
        return self._exit_code

    def worker_pids(self) -> dict[int, int]:
        """Pids of the worker processes running now, by worker id (main thread only)."""
        return {s.worker_id: s.process.pid for s in self._slots if s.process is not None and s.process.pid is not None}

    def request_stop(self, reason: str = "stop requested") -> None:
        """Stop from another thread (tests, an embedding program)."""
        self._signals.request(reason)

    # --- the main loop --------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._signals.requested:
            waitables: list[object] = [self._wakeup]
            by_sentinel = {slot.process.sentinel: slot for slot in self._slots if slot.process is not None}
            waitables.extend(by_sentinel)
            ready = multiprocessing.connection.wait(waitables, self._next_timeout())  # type: ignore[arg-type]
            self._wakeup.drain()
            if self._signals.requested:
                return
            for item in ready:
                slot = by_sentinel.get(item)  # type: ignore[call-overload]
                if slot is not None:
                    self._on_exit(slot)
            now = self._clock()
            for slot in self._slots:
                if slot.restart_at is not None and slot.restart_at <= now:
                    self._spawn(slot)
            self._drain_events()

    def _next_timeout(self) -> float | None:
        due = [slot.restart_at for slot in self._slots if slot.restart_at is not None]
        return None if not due else max(0.0, min(due) - self._clock())

    def _on_controller_event(self, event: ControllerEvent) -> None:
        """Called in the controller's thread: hand over to the main thread."""
        self._events.put(event)
        self._wakeup.wake()

    def _drain_events(self) -> None:
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
            if isinstance(event, ControllerFailed):
                log.critical("the controller failed (%s); shutting the broker down", event.error)
                self._exit_code = 1
                self._signals.request("the controller failed")
                return
            slot = self._slots[event.worker_id] if 0 <= event.worker_id < len(self._slots) else None
            if slot is None:
                log.warning("the controller reports worker %d, which this supervisor does not run", event.worker_id)
                continue
            if isinstance(event, WorkerRegistered):
                if slot.process is not None and slot.process.pid == event.pid:
                    slot.registered_pid = event.pid
            elif slot.registered_pid == event.pid:
                slot.registered_pid = None
        if not self._ready and all(s.process is not None and s.registered_pid == s.process.pid for s in self._slots):
            self._ready = True
            log.info(
                "ready in %.2f s: %d workers registered; bootstrap %s",
                self._clock() - self._started_at, len(self._slots), self.endpoint,
            )  # fmt: skip

    # --- worker processes ----------------------------------------------------------------------

    def _worker_config(self, worker_id: int) -> WorkerConfig:
        config = self.config
        return WorkerConfig(
            worker_id=worker_id,
            data_dir=str(worker_dir(Path(config.data_dir).resolve(), worker_id)),
            host=config.host,
            advertised_host=_advertised_host(config.host, config.advertised_host),
            controller_endpoint=self._controller_endpoint,
            heartbeat_interval=config.heartbeat_interval_ms / 1000,
            controller_timeout=config.session_timeout_ms / 1000,
            dir_lock_wait=config.stop_timeout,
            log_level=config.log_level,
            retention_check_interval_ms=config.log_retention_check_interval_ms,
            topic_defaults=config.topic_defaults,
            storage_retry_interval=config.storage_retry_interval_ms / 1000,
            fault_injection=config.fault_injection,
            max_request_bytes=config.max_request_bytes,
            max_in_flight_requests=config.max_in_flight_requests,
            max_connections=config.max_connections,
            producer_byte_rate=config.producer_byte_rate,
            consumer_byte_rate=config.consumer_byte_rate,
            curve=config.curve,
        )

    def _spawn(self, slot: _WorkerSlot) -> None:
        slot.restart_at = None
        process = self._context.Process(
            target=worker_main, args=(self._worker_config(slot.worker_id),), name=f"worker-{slot.worker_id}", daemon=True
        )
        try:
            with ignore_sigint_across_exec():
                process.start()
        except OSError as exc:
            delay = slot.backoff.delay_after_exit(0.0)
            log.error("could not start worker %d: %s; retrying in %.1f s", slot.worker_id, exc, delay)
            slot.restart_at = self._clock() + delay
            return
        slot.process = process
        slot.started_at = self._clock()
        slot.registered_pid = None
        slot.history.append(process.pid or -1)
        log.info("worker %d started (pid %d)", slot.worker_id, process.pid)

    def _on_exit(self, slot: _WorkerSlot) -> None:
        process = slot.process
        assert process is not None
        process.join(_REAP_TIMEOUT)  # the sentinel fires as the process exits, a moment before it can be reaped
        cause = describe_exit(process.exitcode)
        pid = process.pid or -1
        if process.exitcode is not None:
            process.close()
        slot.process = None
        slot.registered_pid = None
        uptime = self._clock() - slot.started_at
        delay = slot.backoff.delay_after_exit(uptime)
        slot.restart_at = self._clock() + delay
        slot.restarts += 1
        log.warning("worker %d (pid %d) died after %.1f s: %s; restarting in %.1f s", slot.worker_id, pid, uptime, cause, delay)
        if self._controller is not None:
            try:
                self._controller.tell(WorkerDied(slot.worker_id, pid, cause))
            except pykka.ActorDeadError:
                log.error("the controller has stopped; cannot report worker %d's exit", slot.worker_id)

    def _stop_workers(self) -> None:
        """SIGTERM every worker, wait up to ``stop_timeout`` (a second signal cuts it short), SIGKILL the rest."""
        running = {slot.process.sentinel: slot for slot in self._slots if slot.process is not None}
        for slot in self._slots:
            slot.restart_at = None
        for slot in running.values():
            assert slot.process is not None
            try:
                slot.process.terminate()
            except OSError:
                pass  # already gone; its sentinel is readable
        deadline = self._clock() + self.config.stop_timeout
        force_count = self._signals.count + 1
        while running:
            remaining = deadline - self._clock()
            if remaining <= 0 or self._signals.count >= force_count:
                break
            ready = multiprocessing.connection.wait([self._wakeup, *running], remaining)  # type: ignore[list-item]
            self._wakeup.drain()
            for item in ready:
                slot = running.pop(item, None)  # type: ignore[call-overload]
                if slot is not None:
                    self._reap(slot, "stopped")
        for slot in list(running.values()):
            assert slot.process is not None
            log.warning("worker %d (pid %d) did not stop in time; killing it", slot.worker_id, slot.process.pid)
            slot.process.kill()
            slot.process.join(5)
            self._reap(slot, "killed")

    def _reap(self, slot: _WorkerSlot, verb: str) -> None:
        process = slot.process
        assert process is not None
        process.join(_REAP_TIMEOUT)
        log.info("worker %d (pid %d) %s: %s", slot.worker_id, process.pid, verb, describe_exit(process.exitcode))
        if process.exitcode is not None:
            process.close()
        slot.process = None


def _load_curve(config: CurveServerConfig | None) -> tuple[Any, AclGuard | None]:
    """The CURVE server settings and the ACL guard of this process (both None with CURVE off)."""
    if config is None:
        return None, None
    try:
        curve = config.load()
    except CurveKeyError as exc:
        raise StartupError(str(exc)) from None
    log.info(
        "CURVE on: server key %s, clients allowed from %s, %d super user(s) besides the broker",
        curve.public_key.decode(), config.allow_dir, len(curve.super_users) - 1,
    )  # fmt: skip
    return curve, AclGuard(curve.super_users)


def _bind_address(host: str, port: int) -> str:
    return f"tcp://{'*' if host in _WILDCARD_HOSTS else host}:{port if port else '*'}"


def _advertised_host(host: str, override: str | None) -> str | None:
    if override:
        return override
    return socket.gethostname() if host in _WILDCARD_HOSTS else None


def _local_endpoint(endpoint: str, host: str) -> str:
    """The endpoint workers on this host use to reach the controller."""
    if host not in _WILDCARD_HOSTS:
        return endpoint
    return f"tcp://127.0.0.1:{endpoint.rsplit(':', 1)[1]}"
