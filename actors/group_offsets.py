"""Committed offsets of consumer groups, and their records in ``__consumer_offsets``.

    record key   = msgpack [1, group, topic, partition]       (version 1)
    record value = msgpack [1, offset, metadata, commit_ms]    nil: tombstone (offset deleted)

The coordinator of group G is the leader of partition ``group_partition(G, n)`` of
``__consumer_offsets`` (n partitions): a stable hash (CRC-32 of the UTF-8 group id), so every client
and worker computes the same, whatever the Python process. The topic is compacted: the latest
record per key is the committed offset; deleting a group writes a tombstone per key, and so does
deleting a topic, for every group's offsets of that topic (see group_cleanup), so a coordinator
that loads the partition later does not bring them back.

``OffsetStore`` holds the committed offsets of the groups of the partitions one coordinator leads,
built by ``apply``-ing the partition's records in log order (loading) and then every commit the
coordinator itself wrote. Pure: no I/O. Not thread-safe: owned by one actor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import msgpack

from kbroker.actors.group_assignor import TopicPartition
from kbroker.errors import CorruptRecordError
from kbroker.transport.messages_groups import group_partition

__all__ = [
    "OFFSETS_TOPIC_PARTITIONS",
    "Committed",
    "OffsetKey",
    "group_partition",
    "encode_key",
    "encode_value",
    "decode_record",
    "OffsetStore",
]

OFFSETS_TOPIC_PARTITIONS = 8
"""Partitions of ``__consumer_offsets`` when the broker creates it (Kafka's offsets.topic.num.partitions)."""
_VERSION = 1


@dataclass(frozen=True, slots=True)
class Committed:
    offset: int
    metadata: str | None
    commit_ms: int


@dataclass(frozen=True, slots=True)
class OffsetKey:
    group: str
    topic: str
    partition: int


def encode_key(key: OffsetKey) -> bytes:
    return msgpack.packb([_VERSION, key.group, key.topic, key.partition])


def encode_value(committed: Committed | None) -> bytes | None:
    if committed is None:
        return None
    return msgpack.packb([_VERSION, committed.offset, committed.metadata, committed.commit_ms])


def decode_record(key: bytes | None, value: bytes | None) -> tuple[OffsetKey, Committed | None]:
    """A record of ``__consumer_offsets``; raises CorruptRecordError on anything else."""
    try:
        k = msgpack.unpackb(key) if key is not None else None
        if not (isinstance(k, list) and len(k) == 4 and k[0] == _VERSION and isinstance(k[1], str) and isinstance(k[2], str) and type(k[3]) is int):
            raise ValueError(f"bad key {k!r}")
        if value is None:
            return OffsetKey(k[1], k[2], k[3]), None
        v = msgpack.unpackb(value)
        if not (isinstance(v, list) and len(v) == 4 and v[0] == _VERSION and type(v[1]) is int and (v[2] is None or isinstance(v[2], str)) and type(v[3]) is int):
            raise ValueError(f"bad value {v!r}")
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise CorruptRecordError(f"not a __consumer_offsets record: {exc}") from None
    return OffsetKey(k[1], k[2], k[3]), Committed(v[1], v[2], v[3])


class OffsetStore:
    """group -> (topic, partition) -> Committed; with which ``__consumer_offsets`` partition holds each group."""

    def __init__(self) -> None:
        self._groups: dict[str, dict[TopicPartition, Committed]] = {}

    def apply(self, key: OffsetKey, committed: Committed | None) -> None:
        offsets = self._groups.setdefault(key.group, {})
        tp = TopicPartition(key.topic, key.partition)
        if committed is None:
            offsets.pop(tp, None)
            if not offsets:
                del self._groups[key.group]
        else:
            offsets[tp] = committed

    def apply_records(self, records: Iterable[tuple[bytes | None, bytes | None]]) -> int:
        """Apply ``(key, value)`` records in log order; returns how many were not offset records (skipped)."""
        skipped = 0
        for key, value in records:
            try:
                self.apply(*decode_record(key, value))
            except CorruptRecordError:
                skipped += 1
        return skipped

    def groups(self) -> list[str]:
        return sorted(self._groups)

    def offsets(self, group: str) -> dict[TopicPartition, Committed]:
        return dict(self._groups.get(group, {}))

    def get(self, group: str, tp: TopicPartition) -> Committed | None:
        return self._groups.get(group, {}).get(tp)

    def in_partition(self, partition: int, partitions: int) -> dict[str, dict[TopicPartition, Committed]]:
        """The offsets of the groups held in ``partition`` (group -> partition -> committed)."""
        return {g: dict(o) for g, o in self._groups.items() if group_partition(g, partitions) == partition}

    def all(self) -> dict[str, dict[TopicPartition, Committed]]:
        return {g: dict(o) for g, o in self._groups.items()}

    def drop_partition(self, partition: int, partitions: int) -> list[str]:
        """Forget the groups held in ``partition`` (leadership moved away); returns them."""
        gone = [g for g in self._groups if group_partition(g, partitions) == partition]
        for g in gone:
            del self._groups[g]
        return gone

    def tombstones(self, group: str) -> Iterator[OffsetKey]:
        for tp in sorted(self._groups.get(group, {})):
            yield OffsetKey(group, tp.topic, tp.partition)
