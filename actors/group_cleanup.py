"""Which committed offsets a coordinator drops when topics are deleted (Kafka's
``GroupMetadataManager.cleanupGroupMetadata`` on topic deletion).

    MetadataSnapshot.deletions ──DeletionWatch.deleted_since──▶ topics deleted since the last look
    + the groups' committed offsets ──stale_offsets──▶ OffsetKeys to forget and tombstone

The metadata has no topic id, so a deletion is told by the worker's MetadataCache counting, per
name, the deletions it applied: a count that grew since the last look means "deleted" even when
a topic of the same name exists again (deleted and re-created between two looks).

Invariants:
- only topics this worker saw deleted lose offsets: a commit for a topic this worker's metadata
  does not know yet (created a moment ago) is never dropped;
- ``DeletionWatch`` starts from the counts it is given, so a deletion seen before the watch
  existed is not reported again (a re-created topic keeps its new offsets).
Limit: a topic deleted *and* re-created while this worker missed the updates (it was down, or a
full resend replaced both) looks unchanged; its old offsets stay unless the coordinator of the
time wrote tombstones. Pure: no I/O, no clock. Not thread-safe: owned by one actor.
"""

from __future__ import annotations

from typing import Any, Collection, Mapping

from kbroker.actors.group_assignor import TopicPartition
from kbroker.actors.group_offsets import OffsetKey

__all__ = ["DeletionWatch", "stale_offsets", "gone_topics"]


class DeletionWatch:
    """The deletion counts at the last look; ``deleted_since`` reports the names whose count grew."""

    def __init__(self, counts: Mapping[str, int]) -> None:
        self._last: Mapping[str, int] = counts
        self._seen: dict[str, int] = dict(counts)
        self.ever: set[str] = set(counts)  # every topic this worker saw deleted (now or before the watch)

    def deleted_since(self, counts: Mapping[str, int]) -> frozenset[str]:
        if counts is self._last:  # the cache shares one mapping until a deletion replaces it
            return frozenset()
        self._last = counts
        grown = frozenset(name for name, n in counts.items() if n > self._seen.get(name, 0))
        self._seen = dict(counts)
        self.ever |= grown
        return grown


def gone_topics(ever_deleted: Collection[str], live: Collection[str]) -> frozenset[str]:
    """The topics seen deleted that do not exist now (safe to forget whenever offsets are loaded)."""
    return frozenset(t for t in ever_deleted if t not in live)


def stale_offsets(offsets: Mapping[str, Mapping[TopicPartition, Any]], deleted: Collection[str]) -> list[OffsetKey]:
    """The committed offsets (group -> partition -> committed) of the ``deleted`` topics, sorted."""
    if not deleted:
        return []
    return sorted(
        (OffsetKey(group, tp.topic, tp.partition) for group, tps in offsets.items() for tp in tps if tp.topic in deleted),
        key=lambda k: (k.group, k.topic, k.partition),
    )
