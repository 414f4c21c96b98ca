"""The Controller actor shell (in the supervisor process, behind the bootstrap endpoint).

Everything the controller knows and decides lives in the pure ``ControllerState``
(controller_state.py); this actor turns envelopes, supervisor notices and ticks into calls on it,
and the ``Changes`` those return into disk writes and messages:

    supervisor ──WorkerDied──────────────▶ Controller ◀── RegisterWorker / WorkerHeartbeat / AlterIsr ── workers
    Ticker ── _Tick (every check_interval) ──▲   │  ◀── Metadata / CreateTopics / DeleteTopics / AlterConfigs /
                                                 │      DescribeTopics / DescribeCluster / InitProducerId ── clients
                                                 ├── MetadataLog.append(records)        DATA/controller/
                                                 ├── io.tell(LeaderAndIsr | UpdateMetadata) ──▶ (worker, "replica-manager")
                                                 ├── io.ask(DescribeReplicas) ──▶ leaders (DescribeTopics offsets)
                                                 └── ControllerEvent ──▶ listener (supervisor)

Start: open the metadata log (``DATA/controller/__cluster_metadata-0``; in memory when
``data_dir`` is None; or the ``metadata_log`` given), replay it, ``ControllerState.start`` (a new
controller epoch, every worker DEAD until it registers), persist that.

Timer work on each tick: session timeouts (fencing); every ``rebalance_interval`` leadership
moves back to preferred replicas (also ``rebalance_delay`` after a worker registers, so leaders
spread out again soon after a restart); every ``compact_interval`` a metadata log cleaning pass.

Invariants:
- For every ``Changes``: its records are appended (one fsynced batch) BEFORE any of its sends
  go out and before the request that caused it is answered. If the append fails the state is
  ahead of the disk: the actor fails (``ControllerFailed`` to the listener, which stops the
  broker; replay on the next start is the truth).
- Sends leave in the order ``Changes.sends`` lists them, as tells to the worker's
  ``replica-manager`` (actors/names.py); the I/O thread keeps per-endpoint order.
- A DescribeTopics never blocks the actor: offsets are asked of each partition leader with a
  deadline (``describe_timeout``); the reply is built when every ask has ended (answer, error or
  timeout), from the state at that moment; partitions without an answer show offsets -1.
- Producer ids never repeat, across restarts too (producer_ids.py).
Not thread-safe: the state, the metadata log and the pending describes are owned by this actor.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable, ClassVar, Protocol

import pykka

from kbroker.actors import controller_requests as requests
from kbroker.actors.acls import AclGuard
from kbroker.actors.controller_acls import AclStore
from kbroker.actors.controller_changes import Changes
from kbroker.actors.controller_describe import OffsetGathering, ReplicasDescribed
from kbroker.actors.controller_events import ControllerEvent, ControllerFailed, WorkerDied, WorkerLost, WorkerRegistered
from kbroker.actors.controller_model import MetadataImage, VersionStamp
from kbroker.actors.controller_state import ControllerSettings, ControllerState
from kbroker.actors.metadata_log import METADATA_LOG_CONFIG, MetadataLog
from kbroker.actors.names import CONTROLLER, REPLICA_MANAGER
from kbroker.actors.producer_ids import PRODUCER_IDS_FILE, ProducerIdAllocator
from kbroker.actors.ticker import Ticker
from kbroker.actors.worker_liveness import WorkerState
from kbroker.errors import (
    InvalidRequestError,
    KafkaStorageError,
    KBrokerError,
    StaleMemberEpochError,
    UnknownError,
    UnknownMemberError,
)
from kbroker.storage.memory_log import MemoryLog
from kbroker.transport.envelope import Address, Envelope
from kbroker.transport.messages_acls import ACLS_ACTOR, CreateAcls, DeleteAcls, DescribeAcls
from kbroker.transport.messages_admin import AlterConfigs, CreateTopics, DeleteTopics, DescribeCluster, DescribeTopics
from kbroker.transport.messages_client import InitProducerId, InitProducerIdResponse, Metadata
from kbroker.transport.messages_internal import (
    AlterIsr,
    AlterIsrResponse,
    AlterReplicaStatus,
    AlterReplicaStatusResponse,
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
    "MetadataWriteFailed",
    "WorkerDied",
    "WorkerLost",
    "WorkerRegistered",
    "WorkerState",
]

log = logging.getLogger(__name__)

CONTROLLER_ACTOR = CONTROLLER
"""The name workers address the controller by (it is also the bootstrap endpoint's default actor)."""
CONTROLLER_ID = -1
"""``controller_id`` on the wire: the supervisor hosts the controller, not a worker."""


class Messenger(Protocol):
    """What the controller needs of the I/O thread (a fake in unit tests)."""

    def tell(self, address: Address, message: Message) -> None: ...
    def ask(self, address: Address, message: Message, timeout: float) -> Future[Message]: ...
    def forget(self, endpoint: str) -> None: ...


class MetadataWriteFailed(RuntimeError):
    """Appending to the metadata log failed: the in-memory state is ahead of the disk."""


class _Tick:
    __slots__ = ()


_TICK = _Tick()


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


# --- the actor shell ------------------------------------------------------------------------


class Controller(pykka.ThreadingActor):
    """See the module docstring.

    ``io``: the process's I/O thread (None: nothing is sent; describes answer at once with -1
    offsets). ``data_dir``: the broker's data directory (None: metadata in memory, for tests).
    ``controller_epoch``: a floor for the new epoch (the supervisor's cluster.json count); the
    epoch is one more than the metadata log's, so it grows on every start either way.
    ``session_timeout`` (seconds) overrides ``settings.session_timeout_ms``. Intervals in seconds
    of ``clock`` (monotonic); ``wall_clock_ms`` stamps metadata records.
    """

    _HANDLERS: ClassVar[dict[type[Message], str]] = {
        RegisterWorker: "_on_register",
        WorkerHeartbeat: "_on_heartbeat",
        AlterIsr: "_on_alter_isr",
        AlterReplicaStatus: "_on_alter_replica_status",
        DescribeCluster: "_on_describe_cluster",
        Metadata: "_on_metadata",
        CreateTopics: "_on_create_topics",
        DeleteTopics: "_on_delete_topics",
        AlterConfigs: "_on_alter_configs",
        DescribeTopics: "_on_describe_topics",
        InitProducerId: "_on_init_producer_id",
        CreateAcls: "_on_acls",
        DescribeAcls: "_on_acls",
        DeleteAcls: "_on_acls",
    }
    ACCEPTS: ClassVar[frozenset[type[Message]]] = frozenset(_HANDLERS)
    """Message types the I/O thread delivers to this actor; anything else is refused there."""

    def __init__(
        self,
        *,
        cluster_id: str,
        endpoint: str,
        io: Messenger | None = None,
        data_dir: str | Path | None = None,
        metadata_log: MetadataLog | None = None,
        settings: ControllerSettings | None = None,
        controller_epoch: int = 0,
        session_timeout: float | None = None,
        check_interval: float | None = None,
        auto_create_topics: bool = True,
        rebalance_interval: float = 10.0,
        rebalance_delay: float = 1.0,
        compact_interval: float = 60.0,
        describe_timeout: float = 1.0,
        listener: Callable[[ControllerEvent], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock_ms: Callable[[], int] = _wall_clock_ms,
        rng: random.Random | None = None,
        acl_guard: AclGuard | None = None,
    ) -> None:
        """``acl_guard``: the supervisor I/O thread's guard (CURVE on), kept in step with the ACLs here."""
        super().__init__()
        self._acl_guard = acl_guard
        self._acls = AclStore()
        settings = settings or ControllerSettings()
        if session_timeout is not None:
            if session_timeout <= 0:
                raise ValueError(f"session_timeout must be positive, got {session_timeout}")
            settings = dataclasses.replace(settings, session_timeout_ms=round(session_timeout * 1000))
        self.cluster_id = cluster_id
        self.endpoint = endpoint
        self.settings = settings
        self.auto_create_topics = auto_create_topics
        self.check_interval = check_interval if check_interval is not None else min(0.25, settings.session_timeout_ms / 4000)
        self.rebalance_interval = rebalance_interval
        self.rebalance_delay = rebalance_delay
        self.compact_interval = compact_interval
        self._io = io
        self._data_dir = Path(data_dir) if data_dir is not None else None
        self._epoch_floor = controller_epoch
        self._listener = listener
        self._clock = clock
        self._wall_clock_ms = wall_clock_ms
        self._rng = rng
        self._ticker: Ticker | None = None
        self._metadata_log: MetadataLog | None = metadata_log  # None: opened in on_start
        self._producer_ids: ProducerIdAllocator | None = None
        self._gathering = OffsetGathering(io, self._tell_self, describe_timeout) if io is not None else None
        self._next_rebalance = 0.0
        self._next_compact = 0.0
        self.state = ControllerState(settings)  # replaced in on_start by the replayed one

    # --- lifecycle --------------------------------------------------------------------------

    def on_start(self) -> None:
        if self._metadata_log is None:
            if self._data_dir is not None:
                self._metadata_log = MetadataLog.open(self._data_dir)
            else:
                self._metadata_log = MetadataLog(MemoryLog(METADATA_LOG_CONFIG))
        self._producer_ids = ProducerIdAllocator(self._data_dir / PRODUCER_IDS_FILE if self._data_dir is not None else None)
        image: MetadataImage = self._metadata_log.replay()
        image.controller_epoch = max(image.controller_epoch, self._epoch_floor - 1)
        self.state, changes = ControllerState.start(image, self.settings, rng=self._rng)
        self._apply(changes)
        self._acls = AclStore(image.acls.values(), version=self._wall_clock_ms())
        if self._acl_guard is not None:
            self._acl_guard.update(self._acls.version, self._acls.bindings)
        now = self._clock()
        self._next_rebalance = now + self.rebalance_interval
        self._next_compact = now + self.compact_interval
        self._ticker = Ticker(self.actor_ref, _TICK, self.check_interval, name="kbroker-controller-ticker").start()
        log.info(
            "controller epoch %d: %d topics, metadata version %d (recovered from the metadata log)",
            self.state.controller_epoch, len(self.state.topics), self.state.metadata_version,
        )  # fmt: skip

    def on_stop(self) -> None:
        self._shut()

    def on_failure(self, exception_type: type[BaseException] | None, exception_value: BaseException | None, traceback: object) -> None:
        self._shut()
        self._notify(ControllerFailed(f"{getattr(exception_type, '__name__', 'error')}: {exception_value}"))

    def _shut(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
        if self._metadata_log is not None:
            try:
                self._metadata_log.close()
            except Exception:
                log.exception("closing the metadata log failed")
            self._metadata_log = None

    def on_receive(self, message: object) -> Any:
        if isinstance(message, Envelope):
            self._dispatch(message)
        elif isinstance(message, ReplicasDescribed):
            self._on_replicas_described(message)
        elif isinstance(message, _Tick):
            self._on_tick()
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
        except MetadataWriteFailed as exc:
            if not envelope.replied:
                envelope.reply_error(KafkaStorageError(f"the controller could not persist the change: {exc}; retry"))
            raise  # the state is ahead of the disk: fail the actor (the broker stops; replay is the truth)
        except KBrokerError as exc:
            if not envelope.replied:
                envelope.reply_error(exc)
        except Exception as exc:  # a bug: answer the request, keep the controller running
            log.exception("controller failed on %r", envelope)
            if not envelope.replied:
                envelope.reply_error(UnknownError(f"the controller failed: {type(exc).__name__}: {exc}"))
        finally:
            envelope.done()

    # --- Changes: persist, then send ---------------------------------------------------------

    def _apply(self, changes: Changes) -> None:
        if changes.records:
            assert self._metadata_log is not None
            try:
                self._metadata_log.append(changes.records, self._wall_clock_ms())
            except Exception as exc:
                raise MetadataWriteFailed(f"{type(exc).__name__}: {exc}") from exc
        if self._io is not None:
            for send in changes.sends:
                session = self.state.workers.get(send.worker_id)
                if session is not None:
                    self._io.tell(Address(session.endpoint, REPLICA_MANAGER), send.message)
        for election in changes.elections:
            where = f"partition {election.topic}-{election.partition}"
            if election.leader == -1:
                log.warning("%s is offline: no in-sync replica is alive (last leader %d)", where, election.previous_leader)
            elif election.unclean:
                log.warning(
                    "%s: UNCLEAN election of worker %d (epoch %d), not in sync: acknowledged records may be lost",
                    where, election.leader, election.leader_epoch,
                )  # fmt: skip
            else:
                log.info("%s: worker %d leads (epoch %d, was %d)", where, election.leader, election.leader_epoch, election.previous_leader)

    def _now_ms(self) -> int:
        return round(self._clock() * 1000)

    # --- workers ----------------------------------------------------------------------------

    def _on_register(self, envelope: Envelope) -> None:
        request = envelope.message
        assert isinstance(request, RegisterWorker)
        try:
            changes = self.state.register_worker(request.worker_id, request.endpoint, request.pid, request.incarnation, self._now_ms())
        except (StaleMemberEpochError, InvalidRequestError) as exc:
            log.warning("refused a registration: %s", exc.message)
            envelope.reply(RegisterWorkerResponse(exc.code, exc.message, self.state.controller_epoch))
            return
        if self._io is not None and self._acl_guard is not None:  # CURVE on: the ACLs reach the worker before
            self._io.tell(Address(request.endpoint, ACLS_ACTOR), self._acls.update_message())  # any leadership
        self._apply(changes)
        envelope.reply(RegisterWorkerResponse(0, None, self.state.controller_epoch))
        self._next_rebalance = min(self._next_rebalance, self._clock() + self.rebalance_delay)
        log.info("worker %d registered: %s (pid %d)", request.worker_id, request.endpoint, request.pid)
        self._notify(WorkerRegistered(request.worker_id, request.pid, request.endpoint, request.incarnation))

    def _on_heartbeat(self, envelope: Envelope) -> None:
        request = envelope.message
        assert isinstance(request, WorkerHeartbeat)
        try:
            result = self.state.heartbeat(request.worker_id, request.incarnation, request.metadata_version, self._now_ms())
        except (UnknownMemberError, StaleMemberEpochError) as exc:
            envelope.reply(WorkerHeartbeatResponse(exc.code, exc.message, self.state.metadata_version))
            return
        envelope.reply(result.response)
        if result.full_metadata is not None and self._io is not None:
            endpoint = self.state.workers[request.worker_id].endpoint
            log.debug("worker %d is behind (metadata version %d): full resend", request.worker_id, request.metadata_version)
            self._io.tell(Address(endpoint, REPLICA_MANAGER), result.full_metadata)

    def _on_alter_replica_status(self, envelope: Envelope) -> None:
        request = envelope.message
        assert isinstance(request, AlterReplicaStatus)
        where = f"replica {request.topic}-{request.partition} on worker {request.worker_id}"
        try:
            changes = self.state.alter_replica_status(
                request.worker_id, request.incarnation, request.topic, request.partition, request.offline
            )
        except KBrokerError as exc:
            envelope.reply(AlterReplicaStatusResponse(exc.code, exc.message))
            return
        self._apply(changes)
        if request.offline:
            log.warning("%s is offline: its storage failed (%s)", where, request.reason or "no reason given")
        else:
            log.info("%s is back online", where)
        envelope.reply(AlterReplicaStatusResponse(0, None))

    def _on_alter_isr(self, envelope: Envelope) -> None:
        request = envelope.message
        assert isinstance(request, AlterIsr)
        try:
            altered = self.state.alter_isr(
                request.worker_id, request.topic, request.partition, request.leader_epoch,
                request.partition_epoch, request.new_isr,
            )  # fmt: skip
        except KBrokerError as exc:
            envelope.reply(AlterIsrResponse(exc.code, exc.message, request.topic, request.partition, None))
            return
        self._apply(altered.changes)
        envelope.reply(altered.response())

    def _on_worker_died(self, notice: WorkerDied) -> None:
        session = self.state.workers.get(notice.worker_id)
        if session is None or session.pid != notice.pid or session.state is WorkerState.DEAD:
            log.debug("worker %d pid %d exited before registering (or was already replaced)", notice.worker_id, notice.pid)
            return
        self._apply(self.state.worker_died(notice.worker_id, notice.pid))
        if self._io is not None:
            self._io.forget(session.endpoint)  # a restarted process gets a new endpoint
        self._lost(notice.worker_id, notice.pid, WorkerState.DEAD, f"process exited ({notice.cause})")

    def _on_tick(self) -> None:
        before = set(self.state.live_workers())
        self._apply(self.state.tick(self._now_ms()))
        for worker_id in sorted(before - set(self.state.live_workers())):
            session = self.state.workers[worker_id]
            timeout = self.settings.session_timeout_ms / 1000
            self._lost(worker_id, session.pid, session.state, f"no heartbeat for more than {timeout:g} s")
        now = self._clock()
        if now >= self._next_rebalance:
            self._next_rebalance = now + self.rebalance_interval
            self._apply(self.state.rebalance_leaders())
        if now >= self._next_compact:
            self._next_compact = now + self.compact_interval
            assert self._metadata_log is not None
            try:
                self._metadata_log.maybe_compact(self._wall_clock_ms())
            except Exception:
                log.exception("compacting the metadata log failed; will retry")

    def _lost(self, worker_id: int, pid: int, state: WorkerState, cause: str) -> None:
        log.warning("worker %d (pid %d) is %s: %s", worker_id, pid, state.value, cause)
        self._notify(WorkerLost(worker_id, pid, state, cause))

    # --- client requests --------------------------------------------------------------------

    def _on_describe_cluster(self, envelope: Envelope) -> None:
        envelope.reply(self.state.describe_cluster(self.cluster_id, self.endpoint))

    def _on_metadata(self, envelope: Envelope) -> None:
        request = envelope.message
        assert isinstance(request, Metadata)
        self._reply_applied(envelope, requests.metadata(self.state, request, auto_create=self.auto_create_topics))

    def _on_create_topics(self, envelope: Envelope) -> None:
        request = envelope.message
        assert isinstance(request, CreateTopics)
        self._reply_applied(envelope, requests.create_topics(self.state, request))

    def _on_delete_topics(self, envelope: Envelope) -> None:
        request = envelope.message
        assert isinstance(request, DeleteTopics)
        self._reply_applied(envelope, requests.delete_topics(self.state, request))

    def _on_alter_configs(self, envelope: Envelope) -> None:
        request = envelope.message
        assert isinstance(request, AlterConfigs)
        self._reply_applied(envelope, requests.alter_configs(self.state, request))

    def _reply_applied(self, envelope: Envelope, applied: requests.Applied) -> None:
        for changes in applied.changes:
            self._apply(changes)
        envelope.reply(applied.response)  # type: ignore[arg-type]

    def _on_acls(self, envelope: Envelope) -> None:
        """CreateAcls / DescribeAcls / DeleteAcls (controller_acls.py): persist, install, push, reply."""
        result = self._acls.handle(envelope.message, self._wall_clock_ms())
        if result.records:
            assert self._metadata_log is not None
            stamp = VersionStamp(self.state.metadata_version, self.state.controller_epoch)  # the batch's epoch
            try:
                self._metadata_log.append([*result.records, stamp], self._wall_clock_ms())
            except Exception as exc:
                raise MetadataWriteFailed(f"{type(exc).__name__}: {exc}") from exc
            if self._acl_guard is not None:
                self._acl_guard.update(self._acls.version, self._acls.bindings)
            if self._io is not None and self._acl_guard is not None:
                update = self._acls.update_message()
                for worker_id in self.state.live_workers():
                    self._io.tell(Address(self.state.workers[worker_id].endpoint, ACLS_ACTOR), update)
            log.info("ACLs changed (%s by %s): %d entries", type(envelope.message).__name__, envelope.identity, len(self._acls.bindings))
        envelope.reply(result.response)

    def _on_init_producer_id(self, envelope: Envelope) -> None:
        request = envelope.message
        assert isinstance(request, InitProducerId)
        if request.transactional_id is not None:
            error = InvalidRequestError("transactions are not supported: send InitProducerId with transactional_id nil")
            envelope.reply(InitProducerIdResponse(error.code, error.message, -1, -1))
            return
        assert self._producer_ids is not None
        producer_id, epoch = self._producer_ids.init_producer(request.producer_id, request.producer_epoch)
        envelope.reply(InitProducerIdResponse(0, None, producer_id, epoch))

    # --- DescribeTopics: offsets from the leaders, without blocking ---------------------------

    def _on_describe_topics(self, envelope: Envelope) -> None:
        request = envelope.message
        assert isinstance(request, DescribeTopics)
        plan = requests.describe_plan(self.state, request.topic_names)
        if not plan or self._gathering is None:
            envelope.reply(self.state.describe_topics(request.topic_names, request.include_configs))
            return
        endpoints = {w: self.state.workers[w].endpoint for w in plan}
        self._gathering.start(envelope, request, plan, endpoints)

    def _tell_self(self, message: object) -> None:
        """From any thread (the I/O thread's future callbacks)."""
        try:
            self.actor_ref.tell(message)
        except pykka.ActorDeadError:
            pass

    def _on_replicas_described(self, event: ReplicasDescribed) -> None:
        assert self._gathering is not None
        done = self._gathering.answered(event)
        if done is None:
            return
        try:
            response = self.state.describe_topics(done.request.topic_names, done.request.include_configs, done.offsets)
        except KBrokerError as exc:
            done.envelope.reply_error(exc)
        except Exception as exc:
            log.exception("controller failed on %r", done.envelope)
            done.envelope.reply_error(UnknownError(f"the controller failed: {type(exc).__name__}: {exc}"))
        else:
            done.envelope.reply(response)

    # --- listener ---------------------------------------------------------------------------

    def _notify(self, event: ControllerEvent) -> None:
        if self._listener is not None:
            try:
                self._listener(event)
            except Exception:
                log.exception("controller listener failed on %r", event)
