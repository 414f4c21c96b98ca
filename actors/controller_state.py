"""The Controller's pure core: cluster metadata and every decision the controller makes.

    what the shell receives                     what it calls here
    RegisterWorker / WorkerHeartbeat            register_worker / heartbeat
    the supervisor's "process exited"           worker_died(worker_id, pid)
    its timer                                   tick(now_ms) (session timeouts), rebalance_leaders()
    CreateTopics / DeleteTopics / AlterConfigs  create_topic / delete_topic / alter_config
    AlterIsr (from a leader)                    alter_isr
    Metadata / DescribeTopics / DescribeCluster metadata_response / describe_topics / describe_cluster
    and it gets back ``Changes``: records to persist, then UpdateMetadata / LeaderAndIsr to send
    (see controller_changes.py for the order).

No sockets, threads or clocks: time comes in as ``now_ms``, randomness (placement) from the
``random.Random`` given. Every operation either raises a ``KBrokerError`` and changes nothing, or
applies its change and returns it as data.

Invariants (besides those of controller_model and leader_election):
- ``metadata_version`` grows by exactly one per operation that changes metadata (topics,
  partitions, configs, worker registrations or the live set) and never otherwise;
- a partition's leader is -1 or an ALIVE worker in its ISR, after every operation;
- a worker's incarnation never goes backwards; a stale or dead incarnation cannot register
  (StaleMemberEpochError); only an ALIVE worker's own incarnation may heartbeat;
- liveness is never persisted: ``start`` sees every worker DEAD and takes every leader offline
  (ISR kept), so each partition comes back when one of its in-sync replicas registers.
- an offline replica (its worker's storage failed: ``alter_replica_status``) counts as dead for
  its partition only: it neither leads nor stays in or joins the ISR until its worker reports it
  back online, registers again (a new process) or dies. Not persisted either.
Not thread-safe: owned by one actor.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from kbroker.actors import controller_views as views
from kbroker.actors.controller_changes import (
    Changes,
    ChangeSet,
    ConfigAltered,
    HeartbeatResult,
    IsrAltered,
    TopicCreated,
)
from kbroker.actors.controller_errors import IneligibleReplicaError, InvalidUpdateVersionError
from kbroker.actors.controller_model import MetadataImage, Partition, Topic, VersionStamp, WorkerRegistration
from kbroker.actors.controller_topics import TopicAdmin
from kbroker.actors.leader_election import Outcome, preferred, reconcile
from kbroker.actors.worker_liveness import WorkerEvent, WorkerSession, WorkerState
from kbroker.errors import (
    FencedLeaderEpochError,
    InvalidRequestError,
    NotLeaderError,
    StaleMemberEpochError,
    UnknownLeaderEpochError,
    UnknownMemberError,
    UnknownTopicOrPartitionError,
)
from kbroker.storage.config import TopicConfig
from kbroker.transport.messages_admin import DescribeClusterResponse, DescribeTopicsResponse
from kbroker.transport.messages_client import MetadataResponse
from kbroker.transport.messages_internal import UpdateMetadata, WorkerHeartbeatResponse

__all__ = ["ConfigAltered", "ControllerSettings", "ControllerState", "HeartbeatResult", "IsrAltered", "TopicCreated"]


@dataclass(frozen=True, slots=True)
class ControllerSettings:
    session_timeout_ms: int = 6_000  # fence a worker silent for longer than this
    default_partitions: int = 1  # CreateTopics with -1 partitions (and auto-created topics)
    default_replication_factor: int = 3  # CreateTopics with -1, capped by the live workers
    max_partitions_per_topic: int = 10_000
    topic_defaults: TopicConfig = field(default_factory=TopicConfig)  # the broker's defaults
    controller_id: int = -1  # the supervisor hosts the controller, not a worker


class ControllerState(TopicAdmin):
    """See the module docstring. Build a live one with ``ControllerState.start``."""

    def __init__(self, settings: ControllerSettings | None = None, *, rng: random.Random | None = None) -> None:
        self.settings = settings or ControllerSettings()
        self.rng = rng or random.Random()
        self.metadata_version = 0
        self.controller_epoch = 0
        self.topics: dict[str, Topic] = {}
        self.partitions: dict[str, list[Partition]] = {}  # index = partition number
        self.workers: dict[int, WorkerSession] = {}
        self._configs: dict[str, TopicConfig] = {}  # effective configs, by topic
        self.offline_replicas: set[tuple[str, int, int]] = set()  # (topic, partition, worker): storage failed

    @classmethod
    def start(
        cls, image: MetadataImage, settings: ControllerSettings | None = None, *, rng: random.Random | None = None
    ) -> tuple["ControllerState", Changes]:
        """Rebuild from a replayed image with a new controller epoch; every worker starts DEAD and
        every leader offline. The returned ``Changes`` (the new epoch, the offline leaders) must
        be persisted before anything else."""
        image.check()
        state = cls(settings, rng=rng)
        state.metadata_version = image.metadata_version
        state.controller_epoch = image.controller_epoch + 1
        for name in sorted(image.topics):
            state._put_topic(image.topics[name])
            state.partitions[name] = image.partitions_of(name)
        for w, reg in image.workers.items():
            state.workers[w] = WorkerSession(w, reg.endpoint, reg.incarnation)
        cs = ChangeSet(liveness_changed=True)
        for part in list(state._all_partitions()):
            state._apply(reconcile(part, frozenset(), False), cs)
        return state, state._commit(cs)

    # --- queries ------------------------------------------------------------------------

    def live_workers(self) -> list[int]:
        return [w for w in sorted(self.workers) if self.workers[w].alive]

    def topic(self, name: str) -> Topic:
        try:
            return self.topics[name]
        except KeyError:
            raise UnknownTopicOrPartitionError(f"topic {name!r} does not exist") from None

    def partition(self, topic: str, partition: int) -> Partition:
        parts = self.partitions.get(topic)
        if parts is None or not 0 <= partition < len(parts):
            raise UnknownTopicOrPartitionError(f"partition {topic}-{partition} does not exist")
        return parts[partition]

    def effective_config(self, name: str) -> TopicConfig:
        self.topic(name)
        return self._configs[name]

    def image(self) -> MetadataImage:
        """Everything persistent (what replaying the metadata log must rebuild)."""
        return MetadataImage(
            self.metadata_version,
            self.controller_epoch,
            dict(self.topics),
            {p.tp: p for p in self._all_partitions()},
            {w: WorkerRegistration(w, s.endpoint, s.incarnation) for w, s in self.workers.items()},
        )

    def preferred_leader_counts(self) -> dict[int, int]:
        counts = {w: 0 for w in self.workers}
        for part in self._all_partitions():
            counts[part.preferred_leader] = counts.get(part.preferred_leader, 0) + 1
        return counts

    # --- workers ------------------------------------------------------------------------

    def register_worker(self, worker_id: int, endpoint: str, pid: int, incarnation: int, now_ms: int) -> Changes:
        """A worker process (re)starts. A new incarnation of a worker still ALIVE here is handled as
        its death first. The worker gets a full UpdateMetadata and LeaderAndIsr for all its replicas."""
        if worker_id < 0:
            raise InvalidRequestError(f"worker ids are >= 0, got {worker_id}")
        session = self.workers.get(worker_id)
        if session is not None and (
            incarnation < session.incarnation
            or (incarnation == session.incarnation and session.state is WorkerState.DEAD)
        ):
            raise StaleMemberEpochError(
                f"worker {worker_id} incarnation {incarnation} is outdated: incarnation {session.incarnation} "
                f"is on record as {session.state.value}; this process must exit"
            )
        cs = ChangeSet(full_sync={worker_id})
        old = None if session is None else WorkerRegistration(worker_id, session.endpoint, session.incarnation)
        if session is None:
            session = self.workers[worker_id] = WorkerSession(worker_id, endpoint, incarnation)
        elif session.alive and incarnation != session.incarnation:
            session.apply(WorkerEvent.PROCESS_EXITED)  # the old process is gone: it loses its leaderships
            self._reconcile_workers([worker_id], cs)
        was_alive = session.alive
        session.apply(WorkerEvent.REGISTER)
        session.endpoint, session.incarnation, session.pid = endpoint, incarnation, pid
        session.last_heartbeat_ms, session.version_seen_at_last_heartbeat = now_ms, -1
        registration = WorkerRegistration(worker_id, endpoint, incarnation)
        if registration != old:
            cs.put(registration)
        cs.liveness_changed |= not was_alive or (old is not None and old.endpoint != endpoint)
        self._reconcile_workers([worker_id], cs)
        return self._commit(cs)

    def heartbeat(self, worker_id: int, incarnation: int, metadata_version: int, now_ms: int) -> HeartbeatResult:
        """A live worker's heartbeat; a worker whose metadata stayed behind gets a full resend."""
        session = self.workers.get(worker_id)
        if session is None or incarnation > session.incarnation:
            raise UnknownMemberError(
                f"the controller has no registration for worker {worker_id} incarnation {incarnation}; register again"
            )
        if incarnation < session.incarnation:
            raise StaleMemberEpochError(
                f"worker {worker_id} incarnation {incarnation} was replaced by incarnation {session.incarnation}; "
                "this process must exit"
            )
        if not session.alive:
            raise UnknownMemberError(f"worker {worker_id} is {session.state.value} on the controller; register again")
        session.apply(WorkerEvent.HEARTBEAT)
        session.last_heartbeat_ms = max(session.last_heartbeat_ms, now_ms)
        behind = metadata_version < session.version_seen_at_last_heartbeat
        session.version_seen_at_last_heartbeat = self.metadata_version
        response = WorkerHeartbeatResponse(0, None, self.metadata_version)
        return HeartbeatResult(response, self.full_update_metadata() if behind else None)

    def tick(self, now_ms: int) -> Changes:
        """Fence every ALIVE worker whose last heartbeat is more than ``session_timeout_ms`` old."""
        timeout = self.settings.session_timeout_ms
        expired = [w for w in self.live_workers() if now_ms - self.workers[w].last_heartbeat_ms > timeout]
        return self._lose(expired, WorkerEvent.SESSION_EXPIRED)

    def fence_worker(self, worker_id: int) -> Changes:
        """Fence one worker now (a shell that times sessions itself); no-op unless ALIVE."""
        session = self.workers.get(worker_id)
        return self._lose([worker_id] if session is not None and session.alive else [], WorkerEvent.SESSION_EXPIRED)

    def worker_died(self, worker_id: int, pid: int | None = None) -> Changes:
        """The supervisor saw the process exit. Ignored for an unknown worker, a DEAD one, or a
        ``pid`` other than the registered one (an earlier process)."""
        session = self.workers.get(worker_id)
        if session is None or session.state is WorkerState.DEAD or (pid is not None and pid != session.pid):
            return self._commit(ChangeSet())
        return self._lose([worker_id], WorkerEvent.PROCESS_EXITED)

    def _lose(self, worker_ids: list[int], event: WorkerEvent) -> Changes:
        cs = ChangeSet(liveness_changed=bool(worker_ids))
        for w in worker_ids:
            self.workers[w].apply(event)
        self._reconcile_workers(worker_ids, cs)
        return self._commit(cs)

    # --- partitions ---------------------------------------------------------------------

    def alter_isr(
        self, leader_id: int, topic: str, partition: int, leader_epoch: int, partition_epoch: int,
        new_isr: Sequence[int],
    ) -> IsrAltered:
        """A leader shrinks or expands its ISR. Fenced on a stale leader epoch; refused on a stale
        partition epoch unless the ISR asked for is already in place (a retry of an applied change)."""
        part = self.partition(topic, partition)
        where = f"partition {topic}-{partition}"
        if leader_epoch < part.leader_epoch:
            raise FencedLeaderEpochError(f"{where}: leader epoch {leader_epoch} is older than {part.leader_epoch}")
        if leader_epoch > part.leader_epoch:
            raise UnknownLeaderEpochError(f"{where}: leader epoch {leader_epoch} is newer than {part.leader_epoch}")
        if leader_id != part.leader:
            raise NotLeaderError(f"{where} is led by worker {part.leader}, not {leader_id}")
        wanted = set(new_isr)
        if len(wanted) != len(new_isr) or not wanted <= set(part.replicas) or leader_id not in wanted:
            raise InvalidRequestError(
                f"{where}: ISR {tuple(new_isr)} must be distinct replicas of {part.replicas} including the leader"
            )
        if partition_epoch != part.partition_epoch:
            if wanted == set(part.isr):
                return IsrAltered(topic, part.to_state(), self._commit(ChangeSet()))
            raise InvalidUpdateVersionError(
                f"{where}: partition epoch {partition_epoch} is not the current {part.partition_epoch}"
            )
        live = self._live_for(part, frozenset(self.live_workers()))
        ineligible = sorted(w for w in wanted - set(part.isr) if w not in live)
        if ineligible:
            raise IneligibleReplicaError(f"{where}: workers {ineligible} are not alive (or their replica is offline) and cannot join the ISR")
        cs = ChangeSet()
        if wanted != set(part.isr):
            isr = tuple(r for r in part.replicas if r in wanted)
            part = dataclasses.replace(part, isr=isr, partition_epoch=part.partition_epoch + 1)
            self._apply(Outcome(part, None), cs)
        return IsrAltered(topic, part.to_state(), self._commit(cs))

    def rebalance_leaders(self) -> Changes:
        """Move leadership back to every preferred replica that is alive and in sync."""
        cs = ChangeSet()
        live = frozenset(self.live_workers())
        for part in list(self._all_partitions()):
            self._apply(preferred(part, self._live_for(part, live)), cs)
        return self._commit(cs)

    def alter_replica_status(self, worker_id: int, incarnation: int, topic: str, partition: int, offline: bool) -> Changes:
        """A live worker's replica lost its storage (``offline``) or has it back (Kafka: offline log
        dirs, KIP-112). Offline: it leaves the ISR, and a new leader is elected if it led. Online:
        it may follow again and rejoin the ISR once caught up (the leader's AlterIsr)."""
        session = self.workers.get(worker_id)
        if session is None or not session.alive or session.incarnation != incarnation:
            raise StaleMemberEpochError(
                f"worker {worker_id} incarnation {incarnation} is not the live registration; register again"
            )
        part = self.partition(topic, partition)
        if worker_id not in part.replicas:
            raise InvalidRequestError(f"worker {worker_id} holds no replica of {topic}-{partition}")
        key = (topic, partition, worker_id)
        cs = ChangeSet()
        if not offline:
            self.offline_replicas.discard(key)
            return self._commit(cs)
        if key not in self.offline_replicas:
            self.offline_replicas.add(key)
            unclean = self._configs[topic].unclean_leader_election_enable
            self._apply(reconcile(part, self._live_for(part, frozenset(self.live_workers())), unclean), cs)
        return self._commit(cs)

    # --- views --------------------------------------------------------------------------

    def full_update_metadata(self) -> UpdateMetadata:
        return views.full_update_metadata(self)

    def metadata_response(self, names: Sequence[str] | None) -> MetadataResponse:
        return views.metadata_response(self, names)

    def describe_topics(
        self, names: Sequence[str] | None, include_configs: bool = False, offsets: views.Offsets | None = None
    ) -> DescribeTopicsResponse:
        return views.describe_topics_response(self, names, include_configs, offsets)

    def describe_cluster(self, cluster_id: str, controller_endpoint: str) -> DescribeClusterResponse:
        return views.describe_cluster_response(self, cluster_id, controller_endpoint)

    # --- internals ----------------------------------------------------------------------

    def _all_partitions(self) -> Iterable[Partition]:
        for name in sorted(self.partitions):
            yield from self.partitions[name]

    def _live_for(self, part: Partition, live: frozenset[int]) -> frozenset[int]:
        """The live workers whose replica of ``part`` is not offline."""
        if not self.offline_replicas:
            return live
        return frozenset(w for w in live if (part.topic, part.partition, w) not in self.offline_replicas)

    def _reconcile_workers(self, worker_ids: Iterable[int], cs: ChangeSet) -> None:
        touched = set(worker_ids)
        if not touched:
            return
        # a worker that (re)registers or dies starts over: its replicas are opened afresh
        self.offline_replicas = {k for k in self.offline_replicas if k[2] not in touched}
        live = frozenset(self.live_workers())
        for part in list(self._all_partitions()):
            if touched.intersection(part.replicas):
                unclean = self._configs[part.topic].unclean_leader_election_enable
                self._apply(reconcile(part, self._live_for(part, live), unclean), cs)

    def _apply(self, outcome: Outcome | None, cs: ChangeSet) -> None:
        if outcome is not None:
            part = outcome.partition
            self.partitions[part.topic][part.partition] = part
            cs.outcome(outcome)

    def _commit(self, cs: ChangeSet) -> Changes:
        records = list(cs.records.values())
        moved = cs.dirty
        if moved:
            self.metadata_version += 1
            records.append(VersionStamp(self.metadata_version, self.controller_epoch))
        return Changes(
            self.metadata_version,
            tuple(records),
            tuple(sorted(cs.partitions)),
            tuple(cs.deleted_topics),
            tuple(cs.elections),
            views.build_sends(self, cs, moved),
        )
