"""A worker process (Kafka: a broker): its entry point and its link to the controller.

    supervisor ──spawn(WorkerConfig)──▶ worker_main
                                          ├─ DirLock(DATA/worker-<id>)   (waits for a previous owner)
                                          ├─ IOThread bound on tcp://HOST:* (ephemeral; advertised endpoint)
                                          ├─ Gateway: the endpoint's default actor (clients), run on the
                                          │     I/O thread (actors/loop_ref.py: no thread hand-off)
                                          ├─ ControllerLink actor: RegisterWorker, then WorkerHeartbeat
                                          │     every heartbeat_interval (its Ticker)
                                          └─ main thread: waits for SIGTERM, a lost controller, or
                                                the supervisor's death (parent sentinel)

Invariants:
- The worker exits by itself when the supervisor dies (the parent sentinel becomes readable at
  once, even after SIGKILL) or when the controller has not answered for ``controller_timeout``
  (a supervisor on another host, a partitioned network): no orphans.
- Shutdown always runs the ``finally``: actors stopped (pykka's threads are not daemons), the
  I/O thread stopped, the directory lock released, logs flushed.
- SIGINT is ignored: Ctrl-C reaches the whole process group, and the supervisor alone decides
  how workers stop (it sends SIGTERM).
- ``incarnation`` (``time.time_ns()`` at start) differs on every start of the same worker id,
  so the controller can tell a restarted process from a delayed message of its predecessor.

Replicas: ``_serve`` starts the ``ReplicaManager`` ("replica-manager") before registering; it
lists the replica directories of ``DATA/worker-<id>`` and opens them (or creates new ones) as
``PartitionReplica`` actors when the controller's ``LeaderAndIsr`` names them, and keeps the
worker's ``MetadataCache`` from ``UpdateMetadata``. The Gateway routes client requests to the
replicas through the shared ``ReplicaDirectory``; the heartbeat quotes the cache's version.
On shutdown the manager is stopped first (replica actors stopped, logs closed), then the rest.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pykka

from kbroker.actors.acls import AclGuard
from kbroker.actors.controller import CONTROLLER_ACTOR
from kbroker.actors.datadir import DataDirInUseError, DirLock
from kbroker.actors.gateway import GATEWAY_ACTOR, Gateway
from kbroker.actors.lease import Lease
from kbroker.actors.group_coordinator import GroupCoordinator
from kbroker.actors.metadata_cache import MetadataCache
from kbroker.actors.names import REPLICA_MANAGER
from kbroker.actors.replica_manager import ReplicaDirectory, ReplicaManager
from kbroker.actors.process_logging import configure_logging
from kbroker.actors.signals import ShutdownSignals, Wakeup
from kbroker.actors.ticker import Ticker
from kbroker.errors import KBrokerError, StaleMemberEpochError, UnknownMemberError
from kbroker.transport.envelope import Address
from kbroker.transport.curve import CurveServerConfig
from kbroker.transport.io_thread import IOThread
from kbroker.transport.messages_acls import ACLS_ACTOR, UpdateAcls
from kbroker.transport.messages_groups import GROUP_COORDINATOR
from kbroker.transport.messages_internal import (
    RegisterWorker,
    RegisterWorkerResponse,
    WorkerHeartbeat,
    WorkerHeartbeatResponse,
)
from kbroker.transport.schema import Message

__all__ = ["WorkerConfig", "ControllerLink", "worker_main", "EXIT_OK", "EXIT_FAILED"]

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Everything a worker process needs, pickled across ``spawn``."""

    worker_id: int
    data_dir: str  # DATA/worker-<id>
    host: str  # interface to bind
    advertised_host: str | None  # host other processes connect to (None: the bound address)
    controller_endpoint: str  # the bootstrap endpoint
    heartbeat_interval: float = 0.5  # seconds
    controller_timeout: float = 6.0  # seconds of failing requests to the controller before exiting
    dir_lock_wait: float = 10.0  # seconds to wait for a previous owner of the directory
    log_level: int = logging.INFO
    retention_check_interval_ms: int = 300_000  # log.retention.check.interval.ms (Kafka's default)
    topic_defaults: tuple[tuple[str, str], ...] = ()  # the broker's topic config defaults (under each topic's overrides)
    storage_retry_interval: float = 5.0  # seconds between attempts to reopen a replica whose storage failed
    fault_injection: bool = False  # honour InjectFault (tests only)
    max_request_bytes: int = 100 << 20  # larger requests are refused with an error
    max_in_flight_requests: int = 1000  # unanswered requests per connection
    max_connections: int = 0  # TCP connections this worker's endpoint keeps at most (0: unlimited)
    producer_byte_rate: int = 0  # quotas per client id (0: none), see actors/quotas.py
    consumer_byte_rate: int = 0
    curve: CurveServerConfig | None = None  # CURVE + ACLs: key file paths (each process reads them)


# --- ControllerLink: registration and heartbeats ----------------------------------------------


class _Tick:
    __slots__ = ()


_TICK = _Tick()


@dataclass(frozen=True, slots=True)
class _Answer:
    request: RegisterWorker | WorkerHeartbeat
    future: Future[Message]  # done: the reply, or the request's KBrokerError
    sent_at: float = 0.0  # the link's clock when the request went out (renews the lease)


class ControllerLink(pykka.ThreadingActor):
    """Registers this worker with the controller, heartbeats, and reports a lost controller.

    At most one request is in flight; a tick while one is pending does nothing, so a slow
    controller is never flooded. The controller counts as lost once requests have kept failing
    for ``controller_timeout`` since the first failure seen, so a worker that was itself frozen
    (SIGSTOP, swapping) does not mistake its own silence for the controller's: it re-registers.
    ``on_lost(reason)`` is called once, when this worker must exit.
    """

    def __init__(
        self,
        *,
        io: IOThread,
        worker_id: int,
        endpoint: str,
        incarnation: int,
        controller: Address,
        heartbeat_interval: float,
        controller_timeout: float,
        on_lost: Callable[[str], None],
        metadata_version: Callable[[], int] = lambda: 0,
        clock: Callable[[], float] = time.monotonic,
        lease: Lease | None = None,
    ) -> None:
        super().__init__()
        self._io = io
        self._worker_id = worker_id
        self._endpoint = endpoint
        self._incarnation = incarnation
        self._controller = controller
        self._heartbeat_interval = heartbeat_interval
        self._controller_timeout = controller_timeout
        self._request_timeout = min(controller_timeout, max(1.0, 2 * heartbeat_interval))
        self._on_lost = on_lost
        self._metadata_version = metadata_version  # the worker MetadataCache version (none applied yet: 0)
        self._clock = clock
        self._lease = lease  # renewed by every answered heartbeat; see actors/lease.py
        self._registered = False
        self._in_flight = False
        self._lost = False
        self._failing_since: float | None = None  # when the first of the current run of failures was seen
        self._ticker: Ticker | None = None

    def on_start(self) -> None:
        self._send(self._register_request())
        self._ticker = Ticker(self.actor_ref, _TICK, self._heartbeat_interval, name="kbroker-heartbeat").start()

    def on_stop(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()

    def on_receive(self, message: object) -> None:
        if self._lost:
            return
        if isinstance(message, _Tick):
            self._on_tick()
        elif isinstance(message, _Answer):
            self._in_flight = False
            self._on_answer(message)

    def _register_request(self) -> RegisterWorker:
        return RegisterWorker(self._worker_id, self._endpoint, os.getpid(), self._incarnation)

    def _send(self, request: RegisterWorker | WorkerHeartbeat) -> None:
        self._in_flight = True
        sent_at = self._clock()
        future = self._io.ask(self._controller, request, self._request_timeout)
        ref = self.actor_ref

        def deliver(done: Future[Message]) -> None:  # runs in the I/O thread: only a tell
            try:
                ref.tell(_Answer(request, done, sent_at))
            except pykka.ActorDeadError:
                pass

        future.add_done_callback(deliver)

    def _on_tick(self) -> None:
        if self._failing_since is not None:
            failing_for = self._clock() - self._failing_since
            if failing_for > self._controller_timeout:
                self._lose(f"the controller at {self._controller.endpoint} has not answered for {failing_for:.1f} s")
                return
        if not self._in_flight:
            self._send(WorkerHeartbeat(self._worker_id, self._incarnation, self._metadata_version()) if self._registered else self._register_request())

    def _on_answer(self, answer: _Answer) -> None:
        try:
            reply = answer.future.result()
        except KBrokerError as exc:
            if self._failing_since is None:
                log.warning("controller did not answer %s: %s", type(answer.request).__name__, exc.message)
                self._failing_since = self._clock()
            return
        if self._failing_since is not None:
            log.info("controller answers again")
            self._failing_since = None
        if self._lease is not None:
            if getattr(reply, "error_code", 0) == 0:
                self._lease.renew(answer.sent_at)
            else:
                self._lease.revoke()
        if isinstance(reply, RegisterWorkerResponse):
            self._on_registered(reply)
        elif isinstance(reply, WorkerHeartbeatResponse):
            self._on_heartbeat(reply)

    def _on_registered(self, reply: RegisterWorkerResponse) -> None:
        if reply.error_code == 0:
            self._registered = True
            log.info("registered with the controller at %s (controller epoch %d)", self._controller.endpoint, reply.controller_epoch)
        elif reply.error_code == StaleMemberEpochError.code:
            self._lose(f"the controller refused the registration: {reply.error_message}")
        else:
            log.warning("registration refused (%d): %s; retrying", reply.error_code, reply.error_message)

    def _on_heartbeat(self, reply: WorkerHeartbeatResponse) -> None:
        if reply.error_code == 0:
            return
        if reply.error_code == UnknownMemberError.code:
            log.warning("controller: %s", reply.error_message)
            self._registered = False
            self._send(self._register_request())
        elif reply.error_code == StaleMemberEpochError.code:
            self._lose(f"the controller fenced this process: {reply.error_message}")
        else:
            log.warning("heartbeat refused (%d): %s", reply.error_code, reply.error_message)

    def _lose(self, reason: str) -> None:
        self._lost = True
        self._on_lost(reason)


# --- the process --------------------------------------------------------------------------------


def worker_main(config: WorkerConfig) -> None:
    """Entry point of a spawned worker process.

    Exits with ``EXIT_OK`` after SIGTERM or when the supervisor is gone, ``EXIT_FAILED`` when it
    could not start, lost the controller or was fenced for good (the supervisor restarts it).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logging(config.log_level, f"worker-{config.worker_id}")
    wakeup = Wakeup()
    shutdown = ShutdownSignals(wakeup)
    shutdown.install(handled=(signal.SIGTERM,), ignored=(signal.SIGINT,))
    code = EXIT_FAILED
    try:
        code = _serve(config, shutdown)
    except DataDirInUseError as exc:
        log.error("cannot start: %s", exc)
    except Exception:
        log.exception("worker %d failed", config.worker_id)
    finally:
        shutdown.restore()
        wakeup.close()
        logging.shutdown()
    sys.exit(code)


def _serve(config: WorkerConfig, shutdown: ShutdownSignals) -> int:
    incarnation = time.time_ns()
    directory = Path(config.data_dir)
    lock = DirLock(directory, what=f"worker {config.worker_id} directory")
    lock.acquire(
        wait=config.dir_lock_wait,
        on_wait=lambda pid: log.info("waiting for pid %s to release %s", pid if pid is not None else "?", directory),
    )
    curve = config.curve.load() if config.curve is not None else None
    guard = AclGuard(curve.super_users) if curve is not None else None  # filled by the controller's UpdateAcls
    io = IOThread(
        curve=curve, guard=guard,
        bind=f"tcp://{config.host}:*", advertised_host=config.advertised_host, name=f"kbroker-io-worker-{config.worker_id}",
        max_request_bytes=config.max_request_bytes, max_in_flight_per_connection=config.max_in_flight_requests,
        max_connections=config.max_connections,
    )
    io.expect(GATEWAY_ACTOR, GROUP_COORDINATOR, REPLICA_MANAGER)  # while starting: "retry", not "no such actor"
    manager: pykka.ActorRef | None = None
    gateway = None
    if guard is not None:
        io.register(ACLS_ACTOR, guard.on_update, accepts=(UpdateAcls,))  # runs in the I/O thread (quick)
    try:
        endpoint = io.start()
        controller = Address(config.controller_endpoint, CONTROLLER_ACTOR)
        cache, replicas = MetadataCache(), ReplicaDirectory()
        lease = Lease.for_session(config.controller_timeout)
        manager = ReplicaManager.start(
            io=io,
            worker_id=config.worker_id,
            data_dir=directory,
            cache=cache,
            directory=replicas,
            controller=controller,
            retention_check_interval_ms=config.retention_check_interval_ms,
            replica_kwargs={"lease": lease},
            topic_defaults=dict(config.topic_defaults),
            incarnation=incarnation,
            storage_retry_interval=config.storage_retry_interval,
            fault_injection=config.fault_injection,
        )
        io.register(REPLICA_MANAGER, manager, accepts=ReplicaManager.ACCEPTS)
        gateway = Gateway.start(
            io=io, worker_id=config.worker_id, cache=cache, directory=replicas, manager=manager,
            producer_byte_rate=config.producer_byte_rate, consumer_byte_rate=config.consumer_byte_rate,
        )
        io.register(GATEWAY_ACTOR, gateway, default=True, accepts=Gateway.ACCEPTS)
        groups = GroupCoordinator.start(worker_id=config.worker_id, cache=cache, directory=replicas)
        io.register(GROUP_COORDINATOR, groups, accepts=GroupCoordinator.ACCEPTS)
        ControllerLink.start(
            io=io,
            worker_id=config.worker_id,
            endpoint=endpoint,
            incarnation=incarnation,
            controller=controller,
            heartbeat_interval=config.heartbeat_interval,
            controller_timeout=config.controller_timeout,
            on_lost=shutdown.request,
            metadata_version=lambda: cache.version,
            lease=lease,
        )
        log.info("worker %d listening on %s (pid %d, data %s)", config.worker_id, endpoint, os.getpid(), directory)
        reason, code = _wait_for_exit(shutdown)
        log.log(logging.INFO if code == EXIT_OK else logging.ERROR, "worker %d stopping: %s", config.worker_id, reason)
        return code
    finally:
        io.unregister(GATEWAY_ACTOR)
        if gateway is not None:
            gateway.stop()  # it runs on the I/O thread: no pykka actor to stop
        io.unregister(GROUP_COORDINATOR)
        io.unregister(REPLICA_MANAGER)
        if manager is not None:
            try:
                manager.stop(timeout=30)  # stops the replicas: their logs are closed
            except Exception:
                log.exception("stopping the replica manager failed")
        pykka.ActorRegistry.stop_all(timeout=10)
        io.stop()
        lock.release()


def _wait_for_exit(shutdown: ShutdownSignals) -> tuple[str, int]:
    """Block until SIGTERM, a shutdown request, or the supervisor's death; say which, with the exit code."""
    parent = multiprocessing.parent_process()
    waitables: list[object] = [shutdown.wakeup]
    if parent is not None:
        waitables.append(parent.sentinel)
    while True:
        ready = multiprocessing.connection.wait(waitables)  # type: ignore[arg-type]
        if parent is not None and parent.sentinel in ready:
            return "the supervisor is gone", EXIT_OK
        shutdown.wakeup.drain()
        if shutdown.requested:
            return shutdown.reason or "shutdown requested", EXIT_OK if shutdown.by_signal else EXIT_FAILED
