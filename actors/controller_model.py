"""The cluster metadata the controller keeps, as immutable records keyed for a compacted log.

Every piece of persistent metadata is one record with a stable key; the latest record per key
is the truth, and a ``Removal`` (a tombstone) deletes a key. The live model, the metadata log and
a replayed image are therefore the same thing: a map key -> latest record.

    key                          record                 what it holds
    topic/<name>                 Topic                  config overrides, partition count
    partition/<name>/<n>         Partition              replicas, leader, epochs, ISR
    worker/<id>                  WorkerRegistration     endpoint, incarnation (never liveness)
    meta/version                 VersionStamp           metadata version, controller epoch

Topic names never contain ``/`` (see topic_names), so keys parse unambiguously.

Invariants (checked by ``MetadataImage.check`` after replay):
- a topic with ``partition_count`` n has exactly the partitions 0..n-1, and no partition exists
  without its topic;
- a partition's replicas are distinct and non-empty, the first is the preferred leader; its ISR
  is a non-empty subset of the replicas; its leader is -1 (offline) or a member of the ISR;
- leader epochs and partition epochs of a partition never decrease; the metadata version never
  decreases.
Not thread-safe: owned by the controller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, TypeAlias, Union

from kbroker.actors.acls import AclBinding
from kbroker.errors import CorruptRecordError
from kbroker.transport.messages_admin import ConfigEntry
from kbroker.transport.messages_internal import PartitionState

__all__ = [
    "NO_LEADER",
    "META_KEY",
    "MetadataImage",
    "MetadataRecord",
    "Partition",
    "Removal",
    "Topic",
    "TopicPartition",
    "VersionStamp",
    "WorkerRegistration",
    "partition_key",
    "topic_key",
    "worker_key",
]

NO_LEADER: Final = -1
META_KEY: Final = "meta/version"
TopicPartition: TypeAlias = tuple[str, int]


def topic_key(name: str) -> str:
    return f"topic/{name}"


def partition_key(topic: str, partition: int) -> str:
    return f"partition/{topic}/{partition}"


def worker_key(worker_id: int) -> str:
    return f"worker/{worker_id}"


@dataclass(frozen=True, slots=True)
class Topic:
    name: str
    configs: tuple[tuple[str, str], ...]  # overrides of the broker defaults, sorted by key, text values
    partition_count: int

    @property
    def key(self) -> str:
        return topic_key(self.name)

    @property
    def overrides(self) -> dict[str, str]:
        return dict(self.configs)

    def config_entries(self) -> tuple[ConfigEntry, ...]:
        return tuple(ConfigEntry(name, value) for name, value in self.configs)


@dataclass(frozen=True, slots=True)
class Partition:
    topic: str
    partition: int
    replicas: tuple[int, ...]  # preferred leader first
    leader: int  # NO_LEADER while offline
    leader_epoch: int
    partition_epoch: int  # bumped on every leader or ISR change
    isr: tuple[int, ...]

    @classmethod
    def new(cls, topic: str, partition: int, replicas: tuple[int, ...]) -> "Partition":
        """A freshly placed partition: every replica in sync, the preferred replica leads."""
        return cls(topic, partition, tuple(replicas), replicas[0], 0, 0, tuple(replicas))

    @property
    def key(self) -> str:
        return partition_key(self.topic, self.partition)

    @property
    def tp(self) -> TopicPartition:
        return (self.topic, self.partition)

    @property
    def preferred_leader(self) -> int:
        return self.replicas[0]

    @property
    def online(self) -> bool:
        return self.leader != NO_LEADER

    def to_state(self) -> PartitionState:
        return PartitionState(
            self.partition, self.leader, self.leader_epoch, self.partition_epoch, self.replicas, self.isr
        )


@dataclass(frozen=True, slots=True)
class WorkerRegistration:
    worker_id: int
    endpoint: str
    incarnation: int

    @property
    def key(self) -> str:
        return worker_key(self.worker_id)


@dataclass(frozen=True, slots=True)
class VersionStamp:
    metadata_version: int
    controller_epoch: int

    @property
    def key(self) -> str:
        return META_KEY


@dataclass(frozen=True, slots=True)
class Removal:
    """A tombstone: the entity under ``key`` no longer exists."""

    key: str


MetadataRecord: TypeAlias = Union[Topic, Partition, WorkerRegistration, VersionStamp, Removal, AclBinding]  # acls.py: key "acl/..." 


@dataclass
class MetadataImage:
    """Everything persistent, as the latest record per key (what replaying the log rebuilds)."""

    metadata_version: int = 0
    controller_epoch: int = 0
    topics: dict[str, Topic] = field(default_factory=dict)
    partitions: dict[TopicPartition, Partition] = field(default_factory=dict)
    workers: dict[int, WorkerRegistration] = field(default_factory=dict)
    acls: dict[str, AclBinding] = field(default_factory=dict)  # by record key (controller_acls.py)

    def apply(self, record: MetadataRecord) -> None:
        """Make ``record`` the latest for its key (a ``Removal`` deletes the key)."""
        if isinstance(record, Topic):
            self.topics[record.name] = record
        elif isinstance(record, Partition):
            self.partitions[record.tp] = record
        elif isinstance(record, WorkerRegistration):
            self.workers[record.worker_id] = record
        elif isinstance(record, VersionStamp):
            self.metadata_version = max(self.metadata_version, record.metadata_version)
            self.controller_epoch = max(self.controller_epoch, record.controller_epoch)
        elif isinstance(record, AclBinding):
            self.acls[record.key] = record
        elif isinstance(record, Removal):
            self._remove(record.key)
        else:
            raise TypeError(f"not a metadata record: {record!r}")

    def _remove(self, key: str) -> None:
        kind, _, rest = key.partition("/")
        if kind == "topic":
            self.topics.pop(rest, None)
        elif kind == "partition":
            topic, _, number = rest.rpartition("/")
            self.partitions.pop((topic, int(number)), None)
        elif kind == "worker":
            self.workers.pop(int(rest), None)
        elif kind == "acl":
            self.acls.pop(key, None)
        else:
            raise CorruptRecordError(f"metadata removal for an unknown kind of key {key!r}")

    def records(self) -> list[MetadataRecord]:
        """The whole image as records (a snapshot): replaying them rebuilds an equal image."""
        out: list[MetadataRecord] = [VersionStamp(self.metadata_version, self.controller_epoch)]
        out.extend(self.workers[w] for w in sorted(self.workers))
        for name in sorted(self.topics):
            out.append(self.topics[name])
            out.extend(self.partitions[(name, p)] for p in range(self.topics[name].partition_count))
        out.extend(self.acls[k] for k in sorted(self.acls))
        return out

    def check(self) -> None:
        """Raise ``CorruptRecordError`` unless the invariants in the module docstring hold."""
        for name, topic in self.topics.items():
            for p in range(topic.partition_count):
                if (name, p) not in self.partitions:
                    raise CorruptRecordError(f"metadata: topic {name!r} lacks partition {p}")
        for (name, p), part in self.partitions.items():
            topic = self.topics.get(name)
            if topic is None or p >= topic.partition_count:
                raise CorruptRecordError(f"metadata: partition {name}-{p} has no topic")
            _check_partition(part)

    def partitions_of(self, name: str) -> list[Partition]:
        return [self.partitions[(name, p)] for p in range(self.topics[name].partition_count)]


def _check_partition(part: Partition) -> None:
    where = f"metadata: partition {part.topic}-{part.partition}"
    if not part.replicas or len(set(part.replicas)) != len(part.replicas):
        raise CorruptRecordError(f"{where} has bad replicas {part.replicas}")
    if not part.isr or not set(part.isr) <= set(part.replicas):
        raise CorruptRecordError(f"{where} has an ISR {part.isr} outside its replicas {part.replicas}")
    if part.leader != NO_LEADER and part.leader not in part.isr:
        raise CorruptRecordError(f"{where} is led by {part.leader}, not in its ISR {part.isr}")

