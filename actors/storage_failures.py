"""Replicas whose storage failed on this worker: offline here, reported, reopened when the disk heals.

Kafka takes a whole log directory offline on an I/O error and tells the controller (KIP-112); the
replicas come back only with a broker restart. kbroker does it per replica and heals by itself:

    PartitionReplica hits OSError ──StorageFailed──▶ ReplicaManager ── this helper:
        1. stop the replica actor (it already dropped its file handles, unflushed), mark it
           offline in the ReplicaDirectory (the gateway answers KafkaStorageError, retriable)
        2. AlterReplicaStatus(offline) ──▶ controller: out of the ISR, leadership moved away
           (re-sent every retry tick until the controller answers)
        3. every ``retry_interval`` once reported: reopen the log (recovery checks and truncates a
           torn tail, so nothing corrupt is served) and apply the partition state last heard of;
           on success AlterReplicaStatus(online), and the replica follows, catches up and is taken
           back into the ISR by its leader. A storage still failing waits for the next retry.

Fault injection (``InjectFault``, honoured only with ``--fault-injection``) arms the named storage
fault points of storage/faults.py in this worker process, for tests of exactly this path.

Owned by the ReplicaManager actor (its thread only); future callbacks only ``tell`` the manager.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import pykka

from kbroker.actors.ticker import Ticker
from kbroker.errors import InvalidRequestError, KafkaStorageError, KBrokerError
from kbroker.storage import faults
from kbroker.transport.envelope import Address
from kbroker.transport.io_thread import IOThread
from kbroker.transport.messages_internal import AlterReplicaStatus, AlterReplicaStatusResponse, InjectFault, InjectFaultResponse

if TYPE_CHECKING:
    from kbroker.actors.replica_manager import ReplicaDirectory, ReplicaManager

__all__ = ["StorageFailures", "StorageFailed", "StorageRetry", "StatusReported"]

log = logging.getLogger(__name__)

Key = tuple[str, int]
_REPORT_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class StorageFailed:
    key: Key
    reason: str


class StorageRetry:
    __slots__ = ()


@dataclass(frozen=True, slots=True)
class StatusReported:
    key: Key
    offline: bool
    error: str | None  # None: the controller took it


@dataclass(slots=True)
class _Offline:
    reason: str
    retry_at: float


class StorageFailures:
    """See the module docstring."""

    def __init__(
        self,
        *,
        io: IOThread,
        worker_id: int,
        incarnation: int,
        controller: Address | None,
        directory: ReplicaDirectory,
        retry_interval: float = 5.0,
        fault_injection: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._io = io
        self._worker_id = worker_id
        self._incarnation = incarnation
        self._controller = controller
        self._directory = directory
        self._retry_interval = retry_interval
        self._fault_injection = fault_injection
        self._clock = clock
        self._offline: dict[Key, _Offline] = {}
        self._unreported: dict[Key, tuple[bool, str | None]] = {}  # the status the controller must hear
        self._reporting: set[Key] = set()
        self._ref: pykka.ActorRef | None = None
        self._ticker: Ticker | None = None

    def start(self, manager_ref: pykka.ActorRef) -> None:
        self._ref = manager_ref
        interval = min(1.0, self._retry_interval)
        self._ticker = Ticker(manager_ref, StorageRetry(), interval, name="kbroker-storage-retry").start()

    def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()

    def reporter(self, manager_ref: pykka.ActorRef, key: Key) -> Callable[[str], None]:
        """The callback a replica calls (on its own thread) when its storage fails."""

        def report(reason: str) -> None:
            try:
                manager_ref.tell(StorageFailed(key, reason))
            except pykka.ActorDeadError:
                pass  # the worker is stopping

        return report

    def error(self, key: Key) -> KBrokerError:
        reason = self._directory.offline.get(key, "unknown")
        return KafkaStorageError(
            f"the replica of {key[0]}-{key[1]} on worker {self._worker_id} is offline: its storage failed ({reason}); "
            "leadership moves to another replica: refresh metadata and retry"
        )

    # --- messages (on the manager's thread) ------------------------------------------------

    def on_message(self, message: object, manager: ReplicaManager) -> None:
        if isinstance(message, StorageFailed):
            self._failed(message, manager)
        elif isinstance(message, StorageRetry):
            self._retry(manager)
        elif isinstance(message, StatusReported):
            self._reported(message)

    def _failed(self, failure: StorageFailed, manager: ReplicaManager) -> None:
        key = failure.key
        manager._stop_replica(key)
        self._directory._set_offline(key, failure.reason)
        self._offline[key] = _Offline(failure.reason, self._clock() + self._retry_interval)
        log.error("replica %s-%d is offline on worker %d: %s; reopening it every %g s", *key, self._worker_id, failure.reason, self._retry_interval)
        self._report(key, True, failure.reason)

    def _retry(self, manager: ReplicaManager) -> None:
        for key in [k for k in self._unreported if k not in self._reporting]:
            offline, reason = self._unreported[key]
            self._report(key, offline, reason)
        now = self._clock()
        for key, offline in list(self._offline.items()):
            if key in self._unreported or now < offline.retry_at:
                continue  # the controller must know it is offline before it may come back
            try:
                manager.reopen_offline(key)
            except (OSError, KBrokerError) as exc:
                offline.retry_at = now + self._retry_interval
                log.warning("replica %s-%d: storage still failing (%s); next try in %g s", *key, getattr(exc, "message", exc), self._retry_interval)
                continue
            if self._offline.get(key) is not offline:
                continue  # it failed again while reopening: a new StorageFailed took over
            del self._offline[key]
            self._directory._set_offline(key, None)
            log.info("replica %s-%d is back online on worker %d", *key, self._worker_id)
            self._report(key, False, None)

    def _report(self, key: Key, offline: bool, reason: str | None) -> None:
        self._unreported[key] = (offline, reason)
        if self._controller is None or self._ref is None:
            self._unreported.pop(key)
            return
        request = AlterReplicaStatus(self._worker_id, self._incarnation, key[0], key[1], offline, reason)
        self._reporting.add(key)
        future = self._io.ask(self._controller, request, _REPORT_TIMEOUT)
        ref = self._ref

        def done(f) -> None:  # on the I/O thread: only a tell
            try:
                reply = f.result()
                error = None if isinstance(reply, AlterReplicaStatusResponse) and reply.error_code == 0 else (
                    getattr(reply, "error_message", None) or repr(reply)
                )
            except KBrokerError as exc:
                error = exc.message
            try:
                ref.tell(StatusReported(key, offline, error))
            except pykka.ActorDeadError:
                pass

        future.add_done_callback(done)

    def _reported(self, report: StatusReported) -> None:
        self._reporting.discard(report.key)
        if report.error is not None:
            log.warning("the controller did not take replica %s-%d %s: %s; retrying", *report.key,
                        "offline" if report.offline else "online", report.error)  # fmt: skip
            return
        if self._unreported.get(report.key, (None,))[0] == report.offline:
            del self._unreported[report.key]

    # --- fault injection (tests) ------------------------------------------------------------

    def inject(self, request: InjectFault) -> InjectFaultResponse:
        if not self._fault_injection:
            error = InvalidRequestError("fault injection is disabled; start the broker with --fault-injection (tests only)")
            return InjectFaultResponse(error.code, error.message)
        try:
            if request.point not in faults.POINTS:
                raise ValueError(f"unknown fault point {request.point!r}; known: {', '.join(sorted(faults.POINTS))}")
            if request.times == 0:
                faults.disarm(request.point)
            else:
                code = request.errno

                def fail() -> None:  # a fresh error each time (one instance would pile up tracebacks)
                    raise OSError(code, os.strerror(code))

                faults.arm(request.point, fail, times=None if request.times < 0 else request.times)
        except ValueError as exc:
            return InjectFaultResponse(InvalidRequestError.code, str(exc))
        log.warning("fault injection: %s %s", request.point, "cleared" if request.times == 0 else f"raises errno {request.errno}")
        return InjectFaultResponse(0, None)
