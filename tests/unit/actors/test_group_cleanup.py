"""Which committed offsets go when topics are deleted: the deletion counts of the MetadataCache,
DeletionWatch (a delete + re-create between two looks still counts) and stale_offsets."""

from __future__ import annotations

from kbroker.actors.group_assignor import TopicPartition
from kbroker.actors.group_cleanup import DeletionWatch, gone_topics, stale_offsets
from kbroker.actors.group_offsets import Committed, OffsetKey
from kbroker.actors.metadata_cache import MetadataCache
from kbroker.transport.messages_internal import PartitionState, TopicState, UpdateMetadata


def _topic(name: str, partitions: int = 1) -> TopicState:
    return TopicState(name, (), tuple(PartitionState(p, 0, 0, 0, (0,), (0,)) for p in range(partitions)))


def _committed(offset: int) -> Committed:
    return Committed(offset, None, 0)


def test_stale_offsets_are_those_of_deleted_topics_in_every_group() -> None:
    offsets = {
        "billing": {TopicPartition("events", 4): _committed(1), TopicPartition("orders", 0): _committed(7)},
        "audit": {TopicPartition("events", 0): _committed(3), TopicPartition("events", 4): _committed(2)},
        "other": {TopicPartition("orders", 1): _committed(9)},
    }
    assert stale_offsets(offsets, {"events"}) == [
        OffsetKey("audit", "events", 0), OffsetKey("audit", "events", 4), OffsetKey("billing", "events", 4),
    ]
    assert stale_offsets(offsets, set()) == []
    assert stale_offsets(offsets, {"missing"}) == []
    assert stale_offsets({}, {"events"}) == []


def test_gone_topics_are_the_deleted_ones_not_live_again() -> None:
    assert gone_topics({"a", "b", "c"}, {"b": object(), "x": object()}) == {"a", "c"}
    assert gone_topics(set(), {"b"}) == frozenset()


def test_the_watch_reports_deletions_since_its_last_look_including_a_re_created_topic() -> None:
    watch = DeletionWatch({"old": 1})
    assert watch.ever == {"old"}  # seen deleted before the watch: not reported, but known
    counts = {"old": 1}
    assert watch.deleted_since(counts) == frozenset()
    assert watch.deleted_since({"old": 1, "events": 1}) == {"events"}
    assert watch.deleted_since({"old": 1, "events": 1}) == frozenset()  # equal counts, new mapping
    assert watch.deleted_since({"old": 2, "events": 1}) == {"old"}  # deleted again (it had been re-created)
    assert watch.ever == {"old", "events"}


def test_the_cache_counts_each_deletion_even_a_delete_and_re_create_it_applies_in_one_look() -> None:
    cache = MetadataCache()
    watch = DeletionWatch(cache.snapshot.deletions)
    cache.apply(UpdateMetadata(0, 1, 1, True, (), (_topic("events", 6), _topic("orders")), ()))
    assert watch.deleted_since(cache.snapshot.deletions) == frozenset()
    before = cache.snapshot.deletions
    cache.add_endpoints(())
    assert cache.snapshot.deletions is before  # shared until a deletion: the watch's fast path
    cache.apply(UpdateMetadata(0, 1, 2, False, (), (), ("events",)))
    cache.apply(UpdateMetadata(0, 1, 3, False, (), (_topic("events", 6),), ()))  # re-created, same shape
    assert set(cache.snapshot.topics) == {"events", "orders"}
    assert watch.deleted_since(cache.snapshot.deletions) == {"events"}
    cache.apply(UpdateMetadata(0, 1, 4, True, (), (_topic("events", 6),), ()))  # a full update drops orders
    assert cache.snapshot.deletions == {"events": 1, "orders": 1}
    assert watch.deleted_since(cache.snapshot.deletions) == {"orders"}
    assert not cache.apply(UpdateMetadata(0, 1, 4, False, (), (), ("events",))).applied
    assert cache.snapshot.deletions == {"events": 1, "orders": 1}  # an ignored update counts nothing
