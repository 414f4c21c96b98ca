"""The worker's view of cluster metadata, built from the controller's ``UpdateMetadata`` pushes.

    MetadataCache
        snapshot: MetadataSnapshot (immutable; replaced whole on every change)
            version         the last UpdateMetadata version applied (0: none yet)
            controller_id
            workers         worker id -> endpoint (the live set, plus leaders named by LeaderAndIsr)
            topics          name -> TopicState (configs, partitions with leader, epoch, replicas, ISR)
            deletions       name -> how many times this cache saw the topic deleted (never decreases;
                            tells a re-created topic from the old one, as there is no topic id)

Written by the ReplicaManager actor only; read by the Gateway, the PartitionReplica actors and
the ControllerLink (its heartbeat quotes ``version``) from their own threads. Readers take one
``snapshot`` and use it: a reference swap is atomic in CPython, so no lock is needed and a reader
never sees half an update.

Invariants:
- ``version`` never moves backward: an UpdateMetadata older than the cache is ignored (full or not).
- A full update replaces every topic; an incremental one replaces the topics it names and drops
  ``deleted_topics``; both replace the workers with the complete live set they carry.
Pure apart from the atomic swap: no sockets, no threads, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Iterable, Mapping

from kbroker.transport.messages_client import MetadataResponse, PartitionMetadata, TopicMetadata, WorkerEndpoint
from kbroker.transport.messages_internal import PartitionState, TopicState, UpdateMetadata

__all__ = ["MetadataSnapshot", "MetadataCache", "UpdateOutcome"]

_EMPTY: Mapping = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class MetadataSnapshot:
    version: int = 0
    controller_id: int = -1
    workers: Mapping[int, str] = field(default_factory=lambda: _EMPTY)
    topics: Mapping[str, TopicState] = field(default_factory=lambda: _EMPTY)
    deletions: Mapping[str, int] = field(default_factory=lambda: _EMPTY)

    def endpoint_of(self, worker_id: int) -> str | None:
        return self.workers.get(worker_id)

    def partition(self, topic: str, partition: int) -> PartitionState | None:
        state = self.topics.get(topic)
        if state is None:
            return None
        for p in state.partitions:
            if p.partition == partition:
                return p
        return None

    def configs_of(self, topic: str) -> dict[str, str]:
        state = self.topics.get(topic)
        if state is None:
            return {}
        return {c.name: c.value for c in state.configs if c.value is not None}

    def metadata_response(self, names: Iterable[str] | None) -> MetadataResponse:
        """What a client's Metadata gets from this worker (unknown topics: UnknownTopicOrPartition)."""
        from kbroker.errors import LeaderNotAvailableError, UnknownTopicOrPartitionError

        wanted = sorted(self.topics) if names is None else list(dict.fromkeys(names))
        topics = []
        for name in wanted:
            state = self.topics.get(name)
            if state is None:
                topics.append(
                    TopicMetadata(
                        name, UnknownTopicOrPartitionError.code,
                        f"topic {name!r} is unknown to this worker; ask the bootstrap endpoint (it may create it)", (),
                    )
                )
                continue
            parts = tuple(
                PartitionMetadata(
                    p.partition, 0 if p.leader_id >= 0 else LeaderNotAvailableError.code,
                    p.leader_id, p.leader_epoch, p.replicas, p.isr,
                )
                for p in state.partitions
            )
            topics.append(TopicMetadata(name, 0, None, parts))
        workers = tuple(WorkerEndpoint(w, e) for w, e in sorted(self.workers.items()))
        return MetadataResponse(workers, self.controller_id, tuple(topics))


@dataclass(frozen=True, slots=True)
class UpdateOutcome:
    applied: bool
    deleted_topics: tuple[str, ...] = ()  # topics gone by this update (their replicas must go)
    changed_topics: tuple[str, ...] = ()  # topics whose state (configs, partitions) changed


class MetadataCache:
    def __init__(self) -> None:
        self.snapshot = MetadataSnapshot()

    @property
    def version(self) -> int:
        return self.snapshot.version

    def apply(self, update: UpdateMetadata) -> UpdateOutcome:
        old = self.snapshot
        if update.metadata_version <= old.version:
            return UpdateOutcome(False)
        if update.full:
            topics = {t.name: t for t in update.topics}
            deleted = tuple(sorted(set(update.deleted_topics) | (set(old.topics) - set(topics))))
        else:
            topics = dict(old.topics)
            for name in update.deleted_topics:
                topics.pop(name, None)
            topics.update({t.name: t for t in update.topics})
            deleted = tuple(sorted(set(update.deleted_topics)))
        changed = tuple(sorted(n for n, t in topics.items() if old.topics.get(n) != t))
        deletions = old.deletions
        if deleted:
            counts = dict(old.deletions)
            for name in deleted:
                counts[name] = counts.get(name, 0) + 1
            deletions = MappingProxyType(counts)
        self.snapshot = MetadataSnapshot(
            update.metadata_version,
            update.controller_id,
            MappingProxyType({w.worker_id: w.endpoint for w in update.workers}),
            MappingProxyType(topics),
            deletions,
        )
        return UpdateOutcome(True, deleted, changed)

    def add_endpoints(self, workers: Iterable[WorkerEndpoint]) -> None:
        """Endpoints named by a LeaderAndIsr (it may arrive before the UpdateMetadata naming them)."""
        old = self.snapshot
        merged = dict(old.workers)
        new = {w.worker_id: w.endpoint for w in workers}
        if all(merged.get(k) == v for k, v in new.items()):
            return
        merged.update(new)
        self.snapshot = MetadataSnapshot(old.version, old.controller_id, MappingProxyType(merged), old.topics, old.deletions)
