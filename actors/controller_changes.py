"""What one controller operation changed, as data the actor shell persists and sends; and the
small result types of the operations that also return something else.

    operation ──> ChangeSet (collected while the operation runs)
              ──> Changes  (frozen: records to persist, messages to send, elections to report)

The shell handles a ``Changes`` in this order:
1. ``MetadataLog.append(changes.records, now_ms)``: one batch, fsynced. Only after that may it
   reply success or send anything (a crash before the append loses the change as a whole; the
   requester retries). If the append raises, the in-memory state is ahead of the disk: stop the
   controller (the supervisor restarts it and the log replay is the truth).
2. every ``changes.sends`` entry in order: ``UpdateMetadata`` first, then ``LeaderAndIsr``
   (``send.worker_id`` is the destination; only live workers are named).
3. log ``changes.elections``; an election with ``unclean=True`` may have lost acknowledged data.

Invariants: ``records`` is empty exactly when ``metadata_version`` did not move; when it is not
empty its last record is the ``VersionStamp`` of ``metadata_version``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kbroker.actors.controller_model import MetadataRecord, Partition, Topic, TopicPartition
from kbroker.actors.leader_election import Election, Outcome
from kbroker.transport.messages_admin import CreateTopicResult
from kbroker.transport.messages_internal import (
    AlterIsrResponse,
    LeaderAndIsr,
    PartitionState,
    UpdateMetadata,
    WorkerHeartbeatResponse,
)

__all__ = ["ChangeSet", "Changes", "ConfigAltered", "HeartbeatResult", "IsrAltered", "Send", "TopicCreated"]


@dataclass(frozen=True, slots=True)
class Send:
    """One message for the shell to send to worker ``worker_id``."""

    worker_id: int
    message: LeaderAndIsr | UpdateMetadata


@dataclass(frozen=True, slots=True)
class Changes:
    metadata_version: int  # the version after this operation
    records: tuple[MetadataRecord, ...] = ()  # to persist first, as one batch
    partitions: tuple[TopicPartition, ...] = ()  # partitions created or whose state changed
    deleted_topics: tuple[str, ...] = ()
    elections: tuple[Election, ...] = ()
    sends: tuple[Send, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.records and not self.sends

    @property
    def unclean_elections(self) -> tuple[Election, ...]:
        """Elections of an out-of-sync replica: acknowledged records may have been lost."""
        return tuple(e for e in self.elections if e.unclean)

    @property
    def offline(self) -> tuple[TopicPartition, ...]:
        """Partitions this operation left without a leader."""
        return tuple((e.topic, e.partition) for e in self.elections if e.leader == -1)

    def leader_and_isr_for(self, worker_id: int) -> LeaderAndIsr | None:
        return self._message_for(worker_id, LeaderAndIsr)

    def update_metadata_for(self, worker_id: int) -> UpdateMetadata | None:
        return self._message_for(worker_id, UpdateMetadata)

    def _message_for(self, worker_id: int, kind: type) -> object | None:
        for send in self.sends:
            if send.worker_id == worker_id and isinstance(send.message, kind):
                return send.message
        return None


@dataclass
class ChangeSet:
    """Collects one operation's effects; ``ControllerState`` turns it into ``Changes``."""

    records: dict[str, MetadataRecord] = field(default_factory=dict)  # key -> latest record, in order
    partitions: dict[TopicPartition, Partition] = field(default_factory=dict)
    leader_changed: set[TopicPartition] = field(default_factory=set)  # -> LeaderAndIsr to replicas
    topics: set[str] = field(default_factory=set)  # topics whose TopicState changed (UpdateMetadata)
    deleted_topics: list[str] = field(default_factory=list)
    elections: list[Election] = field(default_factory=list)
    liveness_changed: bool = False  # the set of live workers (or an endpoint) changed
    full_sync: set[int] = field(default_factory=set)  # workers that get everything (full metadata, all replicas)

    @property
    def dirty(self) -> bool:
        """Whether the metadata changed (so the version moves and a batch is persisted)."""
        return bool(self.records) or self.liveness_changed

    def put(self, record: MetadataRecord) -> None:
        self.records.pop(record.key, None)  # keep the latest, in the order of the latest change
        self.records[record.key] = record

    def partition(self, part: Partition, *, leader_changed: bool) -> None:
        self.put(part)
        self.partitions[part.tp] = part
        self.topics.add(part.topic)
        if leader_changed:
            self.leader_changed.add(part.tp)

    def outcome(self, outcome: Outcome) -> None:
        self.partition(outcome.partition, leader_changed=outcome.election is not None)
        if outcome.election is not None:
            self.elections.append(outcome.election)


# --- operation results ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TopicCreated:
    """``create_topic``'s result (with ``validate_only``: what would be created; no changes)."""

    topic: Topic
    partitions: tuple[Partition, ...]
    changes: Changes

    def result(self) -> CreateTopicResult:
        """The CreateTopicsResponse entry for this topic."""
        parts = self.partitions
        configs = self.topic.config_entries()
        return CreateTopicResult(self.topic.name, 0, None, len(parts), len(parts[0].replicas), configs)


@dataclass(frozen=True, slots=True)
class ConfigAltered:
    """``alter_config``'s result."""

    overrides: dict[str, str]  # the topic's overrides after the change
    changes: Changes


@dataclass(frozen=True, slots=True)
class IsrAltered:
    """``alter_isr``'s result."""

    topic: str
    state: PartitionState  # the partition as the controller now has it
    changes: Changes

    def response(self) -> AlterIsrResponse:
        """The AlterIsrResponse to the leader."""
        return AlterIsrResponse(0, None, self.topic, self.state.partition, self.state)


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    """``heartbeat``'s result: the reply, and a full metadata resend when the worker is behind."""

    response: WorkerHeartbeatResponse
    full_metadata: UpdateMetadata | None  # send it to the worker: it stayed behind a whole interval
