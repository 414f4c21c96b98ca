"""The ReplicaManager actor: one per worker ("replica-manager"), owner of the worker's replicas.

    controller ──UpdateMetadata──▶ ReplicaManager ──apply──▶ MetadataCache (read by Gateway, replicas,
               ──LeaderAndIsr───▶      │                                     ControllerLink's heartbeat)
               ──DescribeReplicas─▶    ├─ creates PartitionReplica actors (Log at DATA/worker-<id>/<topic>-<partition>)
                                       ├─ registers "replica:<topic>:<partition>" on the IOThread
                                       ├─ ReplicaDirectory (topic, partition) -> ActorRef (read by the Gateway)
                                       └─ one Ticker thread: TICK to every replica every tick_interval

- On start it lists the replica directories already on disk (``<topic>-<partition>/``). Their logs
  are opened lazily, by the first LeaderAndIsr naming them (it brings the topic's configs), so a
  recovered replica rejoins as the controller says: leader or follower at the epoch it gives.
- ``UpdateMetadata`` (versioned, full or incremental) goes into the cache; topics it deletes have
  their replicas deleted (data removed), including recovered directories never opened. A partition
  whose ISR changed under the same leader and epoch (the controller removed a dead follower) is
  handed to its replica too, so the leader's ISR and partition epoch follow the controller's.
- ``LeaderAndIsr``: endpoints into the cache, then for each partition: create the replica if
  missing, ``apply_partition_state``; the answer lists a result per partition (refusals, e.g. a
  stale epoch, carry their error code).
- ``DescribeReplicas``: each replica's role, epoch and offsets, asked of the replica actors.
- ``StatsAsk`` (from the gateway, carrying a client's ``DescribeWorkerStats``): the gateway's
  counters plus every replica's description and size on disk (``actors/worker_stats.py``).

Invariants: a replica actor is registered on the IOThread only while it runs (registered after
start, unregistered before stop); the manager stops every replica when it stops (logs closed).
Not thread-safe: state belongs to the actor; ``ReplicaDirectory`` and ``MetadataCache`` are
replaced whole on change, so readers in other threads only ever see a complete value.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, ClassVar, Mapping

import pykka

from kbroker.actors.lane_ref import LaneRef
from kbroker.actors.metadata_cache import MetadataCache
from kbroker.actors.names import replica_actor_name
from kbroker.actors.partition_replica import REPLICA_ACCEPTS, TICK, PartitionReplica
from kbroker.actors.ticker import Ticker
from kbroker.actors.worker_stats import StatsAsk, stats_response
from kbroker.actors.replica_requests import ApplyState, Delete, Describe, UpdateConfig
from kbroker.actors.replica_log import AnyLog
from kbroker.actors.replica_outbox import ReplicaSettings
from kbroker.actors.replica_state import ReplicaState
from kbroker.actors.storage_failures import StatusReported, StorageFailed, StorageFailures, StorageRetry
from kbroker.errors import InvalidRequestError, KBrokerError, RequestTimedOutError, UnknownError, UnknownTopicOrPartitionError
from kbroker.storage.config import TopicConfig
from kbroker.storage.log import Log
from kbroker.transport.envelope import Address, Envelope
from kbroker.transport.io_thread import IOThread
from kbroker.transport.messages_internal import (
    DescribeReplicas,
    InjectFault,
    InjectFaultResponse,
    DescribeReplicasResponse,
    LeaderAndIsr,
    LeaderAndIsrResponse,
    PartitionResult,
    ReplicaDescription,
    TopicState,
    UpdateMetadata,
    UpdateMetadataResponse,
)
from kbroker.transport.schema import Message

__all__ = ["ReplicaManager", "ReplicaDirectory", "LogFactory", "disk_log_factory"]

log = logging.getLogger(__name__)

LogFactory = Callable[[Path, TopicConfig], AnyLog]
_REPLICA_DIR = re.compile(r"^(?P<topic>[A-Za-z0-9._-]+)-(?P<partition>\d+)$")
_ASK_TIMEOUT = 5.0


def disk_log_factory(path: Path, config: TopicConfig) -> AnyLog:
    return Log.open(path, config)


class ReplicaDirectory:
    """(topic, partition) -> the local PartitionReplica's ref (a ``LaneRef``: quick messages from the
    I/O thread run there, actors/lane_ref.py); written by the manager only.
    ``offline``: replicas whose storage failed here (why), until they are reopened."""

    def __init__(self) -> None:
        self.refs: Mapping[tuple[str, int], LaneRef] = MappingProxyType({})
        self.offline: Mapping[tuple[str, int], str] = MappingProxyType({})

    def get(self, topic: str, partition: int) -> LaneRef | None:
        return self.refs.get((topic, partition))

    def _set_offline(self, key: tuple[str, int], reason: str | None) -> None:
        self.offline = _with(self.offline, key, reason)

    def _set(self, key: tuple[str, int], ref: LaneRef | None) -> None:
        self.refs = _with(self.refs, key, ref)


def _with(mapping: Mapping[Any, Any], key: Any, value: Any) -> Mapping[Any, Any]:
    """A new read-only copy of ``mapping`` with ``key`` set to ``value`` (removed for None): readers
    in other threads only ever see a whole mapping."""
    copy = dict(mapping)
    if value is None:
        copy.pop(key, None)
    else:
        copy[key] = value
    return MappingProxyType(copy)


class _Broadcast:
    """A Ticker target that tells every running replica (one ticker thread for the worker), from
    the I/O thread: a replica's tick then runs there (no wake-up of its thread, 20 a second per
    replica) unless its log maintenance is due, which goes to the replica's own thread."""

    def __init__(self, directory: ReplicaDirectory, io: IOThread) -> None:
        self._directory = directory
        self._io = io

    def tell(self, message: object) -> None:
        self._io.call_soon(self._tell_all, message)  # False once the I/O thread stopped: no ticks then

    def _tell_all(self, message: object) -> None:
        for ref in self._directory.refs.values():
            try:
                ref.tell(message)
            except pykka.ActorDeadError:
                pass


class ReplicaManager(pykka.ThreadingActor):
    _HANDLERS: ClassVar[dict[type[Message], str]] = {
        UpdateMetadata: "_on_update_metadata",
        LeaderAndIsr: "_on_leader_and_isr",
        DescribeReplicas: "_on_describe_replicas",
        InjectFault: "_on_inject_fault",
    }
    ACCEPTS: ClassVar[frozenset[type[Message]]] = frozenset(_HANDLERS)

    def __init__(
        self,
        *,
        io: IOThread,
        worker_id: int,
        data_dir: str | Path,
        cache: MetadataCache,
        directory: ReplicaDirectory,
        controller: Address | None,
        settings: ReplicaSettings | None = None,
        log_factory: LogFactory = disk_log_factory,
        tick_interval: float = 0.05,
        retention_check_interval_ms: int = 300_000,
        replica_kwargs: Mapping[str, Any] | None = None,
        topic_defaults: Mapping[str, str] | None = None,
        incarnation: int = 0,
        storage_retry_interval: float = 5.0,
        fault_injection: bool = False,
    ) -> None:
        super().__init__()
        self._storage = StorageFailures(
            io=io, worker_id=worker_id, incarnation=incarnation, controller=controller, directory=directory,
            retry_interval=storage_retry_interval, fault_injection=fault_injection,
        )  # fmt: skip
        self._io = io
        self.worker_id = worker_id
        self._data_dir = Path(data_dir)
        self._cache = cache
        self._directory = directory
        self._controller = controller
        self._settings = settings or ReplicaSettings()
        self._log_factory = log_factory
        self._tick_interval = tick_interval
        self._retention_interval = retention_check_interval_ms
        self._replica_kwargs = dict(replica_kwargs or {})
        self._topic_defaults = TopicConfig.from_dict(topic_defaults or {})  # the broker's, under each topic's overrides
        self._recovered: dict[tuple[str, int], Path] = {}
        self._ticker: Ticker | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def on_start(self) -> None:
        self._ticker = Ticker(_Broadcast(self._directory, self._io), TICK, self._tick_interval, name="kbroker-replica-ticks").start()  # type: ignore[arg-type]
        self._storage.start(self.actor_ref)
        self._recovered = self._scan()
        if self._recovered:
            log.info("worker %d found %d replica directories to recover", self.worker_id, len(self._recovered))

    def on_stop(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
        self._storage.stop()
        for key in list(self._directory.refs):
            self._stop_replica(key)

    def on_failure(self, *exc: object) -> None:
        self.on_stop()

    def recovered(self) -> list[tuple[str, int]]:
        return sorted(self._recovered)

    def _scan(self) -> dict[tuple[str, int], Path]:
        found: dict[tuple[str, int], Path] = {}
        if not self._data_dir.is_dir():
            return found
        for path in self._data_dir.iterdir():
            match = _REPLICA_DIR.match(path.name)
            if match and path.is_dir():
                found[(match["topic"], int(match["partition"]))] = path
        return found

    # --- dispatch ---------------------------------------------------------------------------

    def on_receive(self, message: object) -> Any:
        if isinstance(message, StatsAsk):
            self._on_stats_ask(message)
            return None
        if isinstance(message, (StorageFailed, StorageRetry, StatusReported)):
            self._storage.on_message(message, self)
            return None
        if not isinstance(message, Envelope):
            log.warning("replica manager ignored an unexpected message %r", message)
            return None
        handler = self._HANDLERS.get(type(message.message))
        try:
            if handler is None:
                raise InvalidRequestError(f"the replica manager does not serve {type(message.message).__name__}")
            message.reply(getattr(self, handler)(message.message))
        except Exception as exc:
            error = exc if isinstance(exc, KBrokerError) else UnknownError(f"the replica manager failed: {exc!r}")
            if not isinstance(exc, KBrokerError):
                log.exception("replica manager failed on %r", message)
            if not message.replied:
                message.reply_error(error)
        finally:
            message.done()
        return None

    # --- UpdateMetadata ---------------------------------------------------------------------

    def _on_update_metadata(self, update: UpdateMetadata) -> UpdateMetadataResponse:
        outcome = self._cache.apply(update)
        if outcome.applied:
            for topic in outcome.deleted_topics:
                self._delete_topic(topic)
            for topic in outcome.changed_topics:
                self._update_configs(topic)
                self._update_isrs(topic)
        return UpdateMetadataResponse(0)

    def _update_isrs(self, topic: str) -> None:
        """ISR changes the controller made by itself (a dead follower removed) reach the leader here
        when no LeaderAndIsr carries them: same leader and epoch, newer partition epoch."""
        state = self._cache.snapshot.topics.get(topic)
        for part in state.partitions if state is not None else ():
            ref = self._directory.get(topic, part.partition)
            if ref is not None and self.worker_id in part.replicas:
                try:
                    ref.tell(ApplyState(part, isr_only=True))
                except pykka.ActorDeadError:
                    pass

    def _delete_topic(self, topic: str) -> None:
        for key in [k for k in self._directory.refs if k[0] == topic]:
            ref = self._directory.get(*key)
            self._unregister(key)
            if ref is not None:
                try:
                    ref.ask(Delete(), timeout=_ASK_TIMEOUT)
                except Exception:
                    log.exception("deleting replica %s-%d failed", *key)
                ref.stop()
        for key in [k for k in self._recovered if k[0] == topic]:
            shutil.rmtree(self._recovered.pop(key), ignore_errors=True)
        log.info("worker %d deleted the replicas of topic %r", self.worker_id, topic)

    def _update_configs(self, topic: str) -> None:
        refs = [ref for key, ref in self._directory.refs.items() if key[0] == topic]
        if not refs:
            return
        try:
            config = TopicConfig.from_dict(self._cache.snapshot.configs_of(topic), base=self._topic_defaults)
        except KBrokerError as exc:
            log.warning("topic %r: configs not applied: %s", topic, exc.message)
            return
        for ref in refs:
            try:
                ref.tell(UpdateConfig(config))
            except pykka.ActorDeadError:
                pass  # it failed: the next LeaderAndIsr starts it again, with the configs then

    # --- LeaderAndIsr -----------------------------------------------------------------------

    def _on_leader_and_isr(self, request: LeaderAndIsr) -> LeaderAndIsrResponse:
        self._cache.add_endpoints(request.workers)
        results: list[PartitionResult] = []
        pending: list[tuple[str, int, pykka.Future]] = []
        for topic in request.topics:
            for state in topic.partitions:
                if (topic.name, state.partition) in self._directory.offline:  # reopened by StorageFailures, later
                    error = self._storage.error((topic.name, state.partition))
                    results.append(PartitionResult(topic.name, state.partition, error.code, error.message))
                    continue
                try:
                    ref = self._ensure_replica(topic, state.partition)
                except KBrokerError as exc:
                    results.append(PartitionResult(topic.name, state.partition, exc.code, exc.message))
                    continue
                pending.append((topic.name, state.partition, ref.ask(ApplyState(state), block=False)))
        for name, partition, future in pending:
            try:
                error = future.get(timeout=_ASK_TIMEOUT)
            except Exception as exc:
                error = exc if isinstance(exc, KBrokerError) else UnknownError(f"replica {name}-{partition}: {exc!r}")
            if error is None:
                results.append(PartitionResult(name, partition, 0, None))
            else:
                results.append(PartitionResult(name, partition, error.code, error.message))
        return LeaderAndIsrResponse(0, tuple(results))

    def _ensure_replica(self, topic: TopicState, partition: int) -> LaneRef:
        key = (topic.name, partition)
        ref = self._directory.get(*key)
        if ref is not None and ref.is_alive():
            return ref
        if ref is not None:  # it failed (its log was closed by on_failure): open it again
            log.warning("replica %s-%d had stopped; starting it again", *key)
            self._unregister(key)
            self._recovered[key] = self._data_dir / f"{topic.name}-{partition}"
        overrides = {c.name: c.value for c in topic.configs if c.value is not None}
        if not overrides:
            overrides = self._cache.snapshot.configs_of(topic.name)
        config = TopicConfig.from_dict(overrides, base=self._topic_defaults)
        path = self._recovered.pop(key, None) or self._data_dir / f"{topic.name}-{partition}"
        try:
            replica_log = self._log_factory(path, config)
        except KBrokerError:
            raise
        except Exception as exc:
            raise UnknownError(f"cannot open the log of {topic.name}-{partition} at {path}: {exc!r}") from exc
        core = ReplicaState(topic.name, partition, self.worker_id, replica_log, self._settings)
        ref = PartitionReplica.start_lane(
            core=core,
            io=self._io,
            cache=self._cache,
            controller=self._controller,
            tick_interval=None,  # ticked by this manager's one ticker thread
            retention_check_interval_ms=self._retention_interval,
            on_storage_failure=self._storage.reporter(self.actor_ref, key),
            **self._replica_kwargs,
        )
        self._directory._set(key, ref)
        self._io.register(replica_actor_name(*key), ref, accepts=REPLICA_ACCEPTS)
        return ref

    def _unregister(self, key: tuple[str, int]) -> None:
        self._io.unregister(replica_actor_name(*key))
        self._directory._set(key, None)

    def _stop_replica(self, key: tuple[str, int]) -> None:
        ref = self._directory.get(*key)
        self._unregister(key)
        if ref is not None:
            try:
                ref.stop(timeout=_ASK_TIMEOUT)
            except pykka.ActorDeadError:
                pass
            except Exception:
                log.exception("stopping replica %s-%d failed", *key)

    # --- storage faults (tests) ---------------------------------------------------------------

    def _on_inject_fault(self, request: InjectFault) -> InjectFaultResponse:
        return self._storage.inject(request)

    def reopen_offline(self, key: tuple[str, int]) -> None:
        """Open a replica taken offline again (StorageFailures calls it when its retry is due): the
        log recovers from disk, then takes the partition state this worker last heard of. Raises
        OSError or KBrokerError if the storage still fails."""
        topic = self._cache.snapshot.topics.get(key[0])
        state = None if topic is None else next((p for p in topic.partitions if p.partition == key[1]), None)
        if topic is None or state is None or self.worker_id not in state.replicas:
            return  # deleted or moved away meanwhile: nothing to reopen
        self._recovered[key] = self._data_dir / f"{key[0]}-{key[1]}"
        ref = self._ensure_replica(topic, key[1])
        error = ref.ask(ApplyState(state), timeout=_ASK_TIMEOUT)
        if error is not None:
            self._stop_replica(key)
            raise error

    # --- DescribeReplicas -------------------------------------------------------------------

    def _on_describe_replicas(self, request: DescribeReplicas) -> DescribeReplicasResponse:
        keys = sorted(self._directory.refs) if not request.partitions else [(k.topic, k.partition) for k in request.partitions]
        return DescribeReplicasResponse(self.worker_id, tuple(self._describe(keys)))

    def _on_stats_ask(self, ask: StatsAsk) -> None:
        envelope = ask.envelope
        try:
            envelope.reply(stats_response(self.worker_id, ask, self._describe(sorted(self._directory.refs))))
        except Exception as exc:
            log.exception("replica manager failed on %r", ask)
            if not envelope.replied:
                envelope.reply_error(UnknownError(f"the replica manager failed: {exc!r}"))
        finally:
            envelope.done()

    def _describe(self, keys: list[tuple[str, int]]) -> list[ReplicaDescription]:
        refs = self._directory.refs
        asked = [(key, refs[key].ask(Describe(), block=False) if key in refs else None) for key in keys]
        out: list[ReplicaDescription] = []
        for (topic, partition), future in asked:
            error: KBrokerError = UnknownTopicOrPartitionError(f"worker {self.worker_id} holds no replica of {topic}-{partition}")
            if future is not None:
                try:
                    out.append(future.get(timeout=_ASK_TIMEOUT))
                    continue
                except pykka.Timeout:
                    error = RequestTimedOutError(f"replica {topic}-{partition} did not answer")
                except Exception:
                    pass
            out.append(ReplicaDescription(topic, partition, error.code, False, -1, -1, -1, -1, 0))
        return out
