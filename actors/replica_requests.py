"""In-process messages to a PartitionReplica actor (pykka ``tell``/``ask``, never on the wire).

    Gateway ──ProducePart / FetchPart / ListOffsetsPart──▶ PartitionReplica
            ◀──PartAppended (the bytes are in the log) / PartAnswer (the partition's response)──
    ReplicaManager ──ApplyState / UpdateConfig / Describe / Delete──▶ PartitionReplica

A ``PartKey`` is the request id the replica core carries for a client request: who asked (an
``ActorRef``), which request and slot, which partition. Immutable values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from kbroker.transport.messages_internal import PartitionState

__all__ = [
    "PartKey", "ProducePart", "FetchPart", "ListOffsetsPart", "PartAppended", "PartAnswer",
    "ApplyState", "UpdateConfig", "Describe", "Delete",
]


class PartKey(NamedTuple):
    """A request id the core carries: who asked (an ActorRef), which request, which partition."""

    reply_to: Any  # pykka.ActorRef (or anything with tell)
    request: Any  # the requester's id, e.g. (request number, slot)
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class ProducePart:
    key: PartKey
    records: Any  # bytes | memoryview of one produce partition
    acks: int
    timeout_ms: int


@dataclass(frozen=True, slots=True)
class FetchPart:
    key: PartKey
    offset: int
    max_bytes: int
    min_bytes: int
    max_wait_ms: int
    current_leader_epoch: int


@dataclass(frozen=True, slots=True)
class ListOffsetsPart:
    key: PartKey
    timestamp: int
    current_leader_epoch: int


@dataclass(frozen=True, slots=True)
class PartAppended:
    """The produce part's bytes are in the log (or refused): the request's envelope may be released."""

    key: PartKey


@dataclass(frozen=True, slots=True)
class PartAnswer:
    key: PartKey
    response: Any  # ProducePartitionResponse | FetchPartitionResponse | ListOffsetsPartitionResponse


@dataclass(frozen=True, slots=True)
class ApplyState:
    """A LeaderAndIsr entry (answered with the refusal, or None). ``isr_only``: from UpdateMetadata,
    applied only when it keeps the replica's leader and leader epoch with a newer partition epoch
    (an ISR the controller changed by itself, e.g. a dead follower removed)."""

    state: PartitionState
    isr_only: bool = False


@dataclass(frozen=True, slots=True)
class UpdateConfig:
    config: Any  # storage.config.TopicConfig


@dataclass(frozen=True, slots=True)
class Describe:
    pass


@dataclass(frozen=True, slots=True)
class Delete:
    pass
