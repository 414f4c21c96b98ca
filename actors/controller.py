"""The Controller actor shell (in the supervisor process, behind the bootstrap endpoint).

What it does today, for real: keeps the table of workers (id, endpoint, pid, incarnation, state,
last heartbeat), answers ``RegisterWorker``, ``WorkerHeartbeat`` and ``DescribeCluster``, marks a
worker dead the moment the supervisor reports its exit (``WorkerDied``), and fences a worker whose
heartbeats stop for ``session_timeout`` (a hung process). Every other client message is refused
by the I/O thread with InvalidRequest naming this actor (``ACCEPTS``), never answered falsely.

    supervisor ──WorkerDied──────────────▶ Controller ◀──RegisterWorker / WorkerHeartbeat── workers
    Ticker ──────_Tick (every check_interval)──▲  │
    clients (bootstrap endpoint) ──DescribeCluster┘  └── ControllerEvent ──▶ listener (supervisor)

Worker states (``WorkerState``, transitions in ``_TRANSITIONS``)::

    (none) ──register──▶ ALIVE ──no heartbeat for session_timeout──▶ FENCED ──register──▶ ALIVE
                           │  ▲                                         │
                           │  └──────register (newer incarnation)───────┤
                           └──process exit (WorkerDied)──▶ DEAD ◀────────┘

Invariants:
- A worker's incarnation never goes backwards: a RegisterWorker older than the one on record is
  refused (StaleMemberEpoch), and so is a re-registration of an incarnation known DEAD.
- A heartbeat counts only from the incarnation on record while it is ALIVE; a FENCED or unknown
  worker is told to register again (UnknownMember), a replaced one that it is stale.
- ``WorkerDied`` for a pid that is not the one on record (an earlier process) changes nothing.
- Not thread-safe: ``WorkerTable`` is owned by the one Controller actor.

SEAM (ControllerState): topics, placement, leader election, ISR and the metadata log live in
the pure ``controller_state.ControllerState`` (being written beside this shell; its worker rules
are the same as ``WorkerTable``'s, which it replaces). Plugging it in means:
  ``WorkerTable.register``   -> ``state.register_worker(..., now_ms)``  (returns Changes)
  ``WorkerTable.heartbeat``  -> ``state.heartbeat(id, incarnation, metadata_version, now_ms)``
  ``WorkerTable.expire``     -> ``state.tick(now_ms)``;  ``WorkerTable.died`` -> ``state.worker_died(id, pid)``
  ``_on_describe_cluster``   -> ``state.describe_cluster(cluster_id, endpoint)``
and then sending each returned ``Changes`` (LeaderAndIsr / UpdateMetadata to worker endpoints via
``io.tell``/``io.ask``; records to the metadata log) where ``_worker_registered`` /
``_worker_lost`` are called today; ``_metadata_version`` becomes ``state.metadata_version``.
Its request handlers (Metadata, CreateTopics, DeleteTopics, DescribeTopics, AlterConfigs,
InitProducerId, AlterIsr) go into ``_HANDLERS``, which also widens ``ACCEPTS``. The shell then
needs the ``IOThread`` (constructor argument) to reach workers.
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass, replace
from typing import Callable, ClassVar

import pykka

from kbroker.actors.ticker import Ticker
from kbroker.errors import InvalidRequestError, StaleMemberEpochError, UnknownError, UnknownMemberError
from kbroker.transport.envelope import Envelope
from kbroker.transport.messages_admin import DescribeCluster, DescribeClusterResponse, WorkerDescription
from kbroker.transport.messages_internal import (
    RegisterWorker,
    RegisterWorkerResponse,
    WorkerHeartbeat,
    WorkerHeartbeatResponse,
)
from kbroker.transport.schema import Message

__all__ = [
    "CONTROLLER_ACTOR",
    "CONTROLLER_ID",
    "Controller",
    "ControllerEvent",
    "ControllerFailed",
    "WorkerDied",
    "WorkerLost",
    "WorkerRecord",
    "WorkerRegistered",
    "WorkerState",
    "WorkerTable",
]

log = logging.getLogger(__name__)

CONTROLLER_ACTOR = "controller"
"""The name workers address the controller by (it is also the bootstrap endpoint's default actor)."""
CONTROLLER_ID = -1
"""``controller_id`` on the wire: the supervisor hosts the controller, not a worker."""


# --- the worker table (pure) ----------------------------------------------------------------


class WorkerState(enum.Enum):
    ALIVE = "alive"
    FENCED = "fenced"  # the process may exist but stopped heartbeating
    DEAD = "dead"  # the supervisor saw the process exit


_TRANSITIONS: dict[WorkerState | None, frozenset[WorkerState]] = {
    None: frozenset({WorkerState.ALIVE}),
    WorkerState.ALIVE: frozenset({WorkerState.ALIVE, WorkerState.FENCED, WorkerState.DEAD}),
    WorkerState.FENCED: frozenset({WorkerState.ALIVE, WorkerState.DEAD}),
    WorkerState.DEAD: frozenset({WorkerState.ALIVE}),
}


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    worker_id: int
    endpoint: str
    pid: int
    incarnation: int
    state: WorkerState
    last_heartbeat: float  # the table's clock (monotonic seconds)

    @property
    def alive(self) -> bool:
        return self.state is WorkerState.ALIVE

    def describe(self) -> WorkerDescription:
        pid = -1 if self.state is WorkerState.DEAD else self.pid
        return WorkerDescription(self.worker_id, self.endpoint, pid, self.alive)


class WorkerTable:
    """Registered workers and their liveness. Pure: time comes in as ``now``."""

    def __init__(self) -> None:
        self._records: dict[int, WorkerRecord] = {}

    def __len__(self) -> int:
        return len(self._records)

    def get(self, worker_id: int) -> WorkerRecord | None:
        return self._records.get(worker_id)

    def records(self) -> list[WorkerRecord]:
        return [self._records[worker_id] for worker_id in sorted(self._records)]

    def alive_ids(self) -> list[int]:
        return [r.worker_id for r in self.records() if r.alive]

    def register(self, worker_id: int, endpoint: str, pid: int, incarnation: int, now: float) -> WorkerRecord:
        """Record a (re-)registration; ``StaleMemberEpochError`` if ``incarnation`` is outdated."""
        old = self._records.get(worker_id)
        if old is not None:
            if incarnation < old.incarnation or (incarnation == old.incarnation and old.state is WorkerState.DEAD):
                raise StaleMemberEpochError(
                    f"worker {worker_id} incarnation {incarnation} is outdated: incarnation {old.incarnation} "
                    f"(pid {old.pid}) is on record as {old.state.value}; this process must exit"
                )
        record = WorkerRecord(worker_id, endpoint, pid, incarnation, WorkerState.ALIVE, now)
        self._set(old, record)
        return record

    def heartbeat(self, worker_id: int, incarnation: int, now: float) -> WorkerRecord:
        """Note a heartbeat; ``UnknownMemberError`` (register again) or ``StaleMemberEpochError``."""
        record = self._records.get(worker_id)
        if record is None or incarnation > record.incarnation:
            raise UnknownMemberError(f"the controller has no registration for worker {worker_id} incarnation {incarnation}; register again")
        if incarnation < record.incarnation:
            raise StaleMemberEpochError(
                f"worker {worker_id} incarnation {incarnation} was replaced by incarnation {record.incarnation}; this process must exit"
            )
        if record.state is not WorkerState.ALIVE:
            raise UnknownMemberError(f"worker {worker_id} is {record.state.value} on the controller; register again")
        updated = replace(record, last_heartbeat=now)
        self._records[worker_id] = updated
        return updated

    def died(self, worker_id: int, pid: int) -> WorkerRecord | None:
        """The process ``pid`` of worker ``worker_id`` exited: the new record, or None if not on record."""
        record = self._records.get(worker_id)
        if record is None or record.pid != pid or record.state is WorkerState.DEAD:
            return None
        updated = replace(record, state=WorkerState.DEAD)
        self._set(record, updated)
        return updated

    def expire(self, now: float, session_timeout: float) -> list[WorkerRecord]:
        """Fence every ALIVE worker silent for longer than ``session_timeout``; return them."""
        fenced = []
        for record in self.records():
            if record.alive and now - record.last_heartbeat > session_timeout:
                updated = replace(record, state=WorkerState.FENCED)
                self._set(record, updated)
                fenced.append(updated)
        return fenced

    def _set(self, old: WorkerRecord | None, new: WorkerRecord) -> None:
        before = old.state if old is not None else None
        if new.state not in _TRANSITIONS[before]:
            raise AssertionError(f"worker {new.worker_id}: illegal transition {before} -> {new.state}")
        self._records[new.worker_id] = new


# --- messages and events local to the supervisor process ------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerDied:
    """Supervisor -> controller: the process ``pid`` of worker ``worker_id`` exited (sentinel)."""

    worker_id: int
    pid: int
    cause: str  # e.g. "killed by SIGKILL", "exit code 1"


@dataclass(frozen=True, slots=True)
class WorkerRegistered:
    """Controller -> listener: a worker (re-)registered and is alive."""

    worker_id: int
    pid: int
    endpoint: str
    incarnation: int


@dataclass(frozen=True, slots=True)
class WorkerLost:
    """Controller -> listener: a worker stopped being alive (died or fenced)."""

    worker_id: int
    pid: int
    state: WorkerState
    cause: str


@dataclass(frozen=True, slots=True)
class ControllerFailed:
    """Controller -> listener: the actor crashed (a bug) and has stopped; the broker cannot go on."""

    error: str


ControllerEvent = WorkerRegistered | WorkerLost | ControllerFailed


class _Tick:
    __slots__ = ()


_TICK = _Tick()


# --- the actor shell ------------------------------------------------------------------------


class Controller(pykka.ThreadingActor):
    """Turns envelopes and supervisor notices into calls on the worker table (and, later, state)."""

    _HANDLERS: ClassVar[dict[type[Message], str]] = {
        RegisterWorker: "_on_register",
        WorkerHeartbeat: "_on_heartbeat",
        DescribeCluster: "_on_describe_cluster",
    }
    ACCEPTS: ClassVar[frozenset[type[Message]]] = frozenset(_HANDLERS)
    """Message types the I/O thread delivers to this actor; anything else is refused there."""

    def __init__(
        self,
        *,
        cluster_id: str,
        controller_epoch: int,
        endpoint: str,
        session_timeout: float = 6.0,
        check_interval: float | None = None,
        auto_create_topics: bool = True,
        listener: Callable[[ControllerEvent], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        if session_timeout <= 0:
            raise ValueError(f"session_timeout must be positive, got {session_timeout}")
        self.cluster_id = cluster_id
        self.controller_epoch = controller_epoch
        self.endpoint = endpoint
        self.session_timeout = session_timeout
        self.check_interval = check_interval if check_interval is not None else min(0.25, session_timeout / 4)
        self.auto_create_topics = auto_create_topics  # for ControllerState (auto-create on Metadata)
        self._listener = listener
        self._clock = clock
        self._workers = WorkerTable()
        self._ticker: Ticker | None = None

    def on_start(self) -> None:
        self._ticker = Ticker(self.actor_ref, _TICK, self.check_interval, name="kbroker-controller-ticker").start()
        log.debug("controller started (cluster %s, epoch %d)", self.cluster_id, self.controller_epoch)

    def on_stop(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()

    def on_failure(self, exception_type: type[BaseException] | None, exception_value: BaseException | None, traceback: object) -> None:
        if self._ticker is not None:
            self._ticker.stop()
        self._notify(ControllerFailed(f"{getattr(exception_type, '__name__', 'error')}: {exception_value}"))

    def on_receive(self, message: object) -> None:
        if isinstance(message, Envelope):
            self._dispatch(message)
        elif isinstance(message, _Tick):
            self._check_sessions()
        elif isinstance(message, WorkerDied):
            self._on_worker_died(message)
        else:
            log.warning("controller ignored an unexpected message %r", message)

    def _dispatch(self, envelope: Envelope) -> None:
        handler = self._HANDLERS.get(type(envelope.message))
        try:
            if handler is None:  # only reachable if registered without ACCEPTS
                raise InvalidRequestError(f"the controller does not serve {type(envelope.message).__name__}")
            getattr(self, handler)(envelope)
        except Exception as exc:  # a bug: answer the request, keep the controller running
            if isinstance(exc, InvalidRequestError):
                error = exc
            else:
                log.exception("controller failed on %r", envelope)
                error = UnknownError(f"the controller failed: {type(exc).__name__}: {exc}")
            if not envelope.replied:
                envelope.reply_error(error)
        finally:
            envelope.done()

    # --- requests -------------------------------------------------------------------------

    def _on_register(self, envelope: Envelope) -> None:
        request = envelope.message
        assert isinstance(request, RegisterWorker)
        try:
            record = self._workers.register(request.worker_id, request.endpoint, request.pid, request.incarnation, self._clock())
        except StaleMemberEpochError as exc:
            log.warning("refused a registration: %s", exc.message)
            envelope.reply(RegisterWorkerResponse(exc.code, exc.message, self.controller_epoch))
            return
        envelope.reply(RegisterWorkerResponse(0, None, self.controller_epoch))
        self._worker_registered(record)

    def _on_heartbeat(self, envelope: Envelope) -> None:
        request = envelope.message
        assert isinstance(request, WorkerHeartbeat)
        try:
            self._workers.heartbeat(request.worker_id, request.incarnation, self._clock())
        except (UnknownMemberError, StaleMemberEpochError) as exc:
            envelope.reply(WorkerHeartbeatResponse(exc.code, exc.message, self._metadata_version()))
            return
        envelope.reply(WorkerHeartbeatResponse(0, None, self._metadata_version()))

    def _on_describe_cluster(self, envelope: Envelope) -> None:
        workers = tuple(record.describe() for record in self._workers.records())
        envelope.reply(DescribeClusterResponse(self.cluster_id, self.endpoint, workers))

    # --- liveness ---------------------------------------------------------------------------

    def _on_worker_died(self, notice: WorkerDied) -> None:
        record = self._workers.died(notice.worker_id, notice.pid)
        if record is None:
            log.debug("worker %d pid %d exited before registering (or was already replaced)", notice.worker_id, notice.pid)
            return
        self._worker_lost(record, f"process exited ({notice.cause})")

    def _check_sessions(self) -> None:
        for record in self._workers.expire(self._clock(), self.session_timeout):
            self._worker_lost(record, f"no heartbeat for more than {self.session_timeout:g} s")

    # --- SEAM: ControllerState plugs in here --------------------------------------------------

    def _worker_registered(self, record: WorkerRecord) -> None:
        """A worker is (again) alive. ControllerState: send it its replicas (LeaderAndIsr) and metadata."""
        log.info("worker %d registered: %s (pid %d)", record.worker_id, record.endpoint, record.pid)
        self._notify(WorkerRegistered(record.worker_id, record.pid, record.endpoint, record.incarnation))

    def _worker_lost(self, record: WorkerRecord, cause: str) -> None:
        """A worker stopped being alive. ControllerState: elect new leaders from the ISR, push metadata."""
        log.warning("worker %d (pid %d) is %s: %s", record.worker_id, record.pid, record.state.value, cause)
        self._notify(WorkerLost(record.worker_id, record.pid, record.state, cause))

    def _metadata_version(self) -> int:
        """The version of the last UpdateMetadata pushed to workers: none has been yet (0)."""
        return 0

    def _notify(self, event: ControllerEvent) -> None:
        if self._listener is not None:
            try:
                self._listener(event)
            except Exception:
                log.exception("controller listener failed on %r", event)
