"""Log maintenance end to end: compaction and time retention on a real ``kbroker start --workers 3``.

The broker runs with ``--log-retention-check-interval-ms 200`` so that every worker's maintenance
(retention, the cleaner) runs often. Compaction cleans closed segments wholly below the high
watermark only, never the active segment, so each test rolls segments on purpose: ``segment.bytes``
is small and every flush below is a batch of its own, bigger than a segment. Everything waits on a
condition with a deadline.
"""

from __future__ import annotations

import time

import pytest

from _cluster import Cluster, wait_until
from kbroker import Admin, Consumer, Producer, Record, TopicPartition
from kbroker.actors.names import REPLICA_MANAGER
from kbroker.errors import OffsetOutOfRangeError
from kbroker.transport.messages_internal import DescribeReplicas, DescribeReplicasResponse, ReplicaKey

pytestmark = pytest.mark.cluster(workers=3, args=["--log-retention-check-interval-ms", "200"])

MAINTENANCE_DEADLINE_S = 20.0
PAD_KEY = b"pad"  # filler records that roll segments; they are not part of what the tests check
PAD_VALUE = b"." * 1100  # bigger than segment.bytes: the segment before it is closed


def _create(admin: Admin, name: str, config: dict[str, object]) -> None:
    admin.create_topic(name, partitions=1, replication_factor=3, config=config)

    def ready() -> bool:
        p = admin.describe_topic(name).partitions[0]
        return p.leader >= 0 and len(p.isr) == 3 and p.high_watermark >= 0

    wait_until(ready, 20, f"{name}-0 to have a leader and an ISR of 3", interval=0.05)


def _roll(producer: Producer, topic: str, batches: int = 2) -> None:
    """Close the active segment: append ``batches`` filler batches, each bigger than a segment."""
    for _ in range(batches):
        producer.send(topic, PAD_VALUE, key=PAD_KEY, partition=0).result(20)


def _read_from_zero(bootstrap: str, topic: str, timeout_s: float = 10) -> list[Record]:
    """Everything below the high watermark, reading from offset 0."""
    tp = TopicPartition(topic, 0)
    with Consumer(bootstrap, auto_offset_reset="earliest") as consumer:
        consumer.assign([tp])
        consumer.seek(tp, 0)
        out: list[Record] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            out.extend(consumer.poll(200))
            if consumer.caught_up():
                break
        assert consumer.caught_up(), f"could not read {topic}-0 up to its high watermark in {timeout_s:g} s"
    return out


def _replica_views(cluster: Cluster, admin: Admin, topic: str) -> dict[int, tuple[int, int]]:
    """Worker id -> (log start offset, log end offset) of its replica of ``topic``-0."""
    views = {}
    for worker in admin.describe_cluster():
        reply = cluster.connection(worker.endpoint, timeout=5).request(
            DescribeReplicas((ReplicaKey(topic, 0),)), to=REPLICA_MANAGER, timeout=5
        )
        assert isinstance(reply, DescribeReplicasResponse), reply
        for d in reply.replicas:
            if d.error_code == 0:
                views[worker.id] = (d.log_start_offset, d.log_end_offset)
    return views


def test_compacted_topic_keeps_the_latest_value_per_key_and_drops_old_tombstones(cluster: Cluster) -> None:
    topic = "compacted"
    live = [b"live-%d" % i for i in range(6)]
    doomed = [b"gone-%d" % i for i in range(3)]
    rounds = 4
    with Admin(cluster.bootstrap, timeout=10) as admin:
        _create(admin, topic, {
            "cleanup.policy": "compact",
            "segment.bytes": 1024,
            "min.cleanable.dirty.ratio": 0.01,
            "delete.retention.ms": 3_600_000,  # tombstones stay until the test lowers this below
        })  # fmt: skip
        with Producer(cluster.bootstrap, acks="all", linger_ms=0) as producer:
            for r in range(rounds):  # several values per key, each round a batch of its own
                for key in live + doomed:
                    producer.send(topic, b"%s=%d" % (key, r) + b"#" * 100, key=key, partition=0)
                producer.flush(20)
            for key in doomed:
                producer.send(topic, None, key=key, partition=0)
            producer.flush(20)
            _roll(producer, topic)

            latest = {key: b"%s=%d" % (key, rounds - 1) + b"#" * 100 for key in live}

            def compacted() -> list[Record] | None:
                records = [r for r in _read_from_zero(cluster.bootstrap, topic) if r.key != PAD_KEY]
                keys = [r.key for r in records]
                return records if len(keys) == len(set(keys)) == len(live) + len(doomed) else None

            records = wait_until(compacted, MAINTENANCE_DEADLINE_S, "one record per key after cleaning", interval=0.2)
            assert {r.key: r.value for r in records if r.key in latest} == latest
            assert {r.key: r.value for r in records if r.key in doomed} == dict.fromkeys(doomed)  # the tombstones, kept
            offsets = [r.offset for r in records]
            assert offsets == sorted(offsets)  # compaction never moves an offset

            admin.alter_topic_config(topic, {"delete.retention.ms": 500})

            seen: list[list[tuple[int, bytes | None, bool]]] = [[]]

            def tombstones_gone() -> list[Record] | None:
                # A tombstone goes in the first pass after it is delete.retention.ms old (by its
                # timestamp); a pass needs dirty data, so each look adds a rolled segment.
                _roll(producer, topic, 1)
                records = [r for r in _read_from_zero(cluster.bootstrap, topic) if r.key != PAD_KEY]
                seen[0] = [(r.offset, r.key, r.value is None) for r in records]
                return records if {r.key for r in records} == set(live) else None

            try:
                survivors = wait_until(tombstones_gone, MAINTENANCE_DEADLINE_S, "tombstoned keys to vanish", interval=0.2)
            except AssertionError as exc:
                raise AssertionError(f"{exc}; last read (offset, key, tombstone): {seen[0]}") from None
        assert {r.key: r.value for r in survivors} == latest
        assert len(survivors) == len(live)


def test_short_retention_drops_old_segments_and_readers_restart_at_the_log_start(cluster: Cluster) -> None:
    topic = "short-lived"
    tp = TopicPartition(topic, 0)
    with Admin(cluster.bootstrap, timeout=10) as admin:
        _create(admin, topic, {"retention.ms": 1000, "segment.bytes": 1024})
        with Producer(cluster.bootstrap, acks="all", linger_ms=0) as producer:
            for i in range(8):  # eight batches of ~1.3 KB: one segment each
                for j in range(12):
                    producer.send(topic, b"%03d-%02d" % (i, j) + b"x" * 100, key=b"k%d" % j, partition=0)
                producer.flush(20)
        end = admin.describe_topic(topic).partitions[0].log_end_offset
        assert end == 96

        def trimmed() -> int | None:
            p = admin.describe_topic(topic).partitions[0]
            views = _replica_views(cluster, admin, topic)
            everywhere = len(views) == 3 and all(start > 0 for start, _ in views.values())
            return p.log_start_offset if p.log_start_offset > 0 and everywhere else None

        start = wait_until(trimmed, MAINTENANCE_DEADLINE_S, "log start offset > 0 on the leader and both followers", interval=0.1)
        assert start <= end

        with Consumer(cluster.bootstrap, auto_offset_reset="none") as strict:
            strict.assign([tp])
            strict.seek(tp, 0)
            with pytest.raises(OffsetOutOfRangeError):
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    strict.poll(200)

        with Producer(cluster.bootstrap, acks="all") as producer:
            fresh = producer.send(topic, b"fresh", key=b"new", partition=0).result(20)
        assert fresh.offset == end  # offsets go on from the log end, whatever was deleted
        with Consumer(cluster.bootstrap, auto_offset_reset="earliest") as consumer:
            consumer.assign([tp])
            consumer.seek(tp, 0)  # below the log start: OffsetOutOfRange, reset to the earliest offset
            got: list[Record] = []
            deadline = time.monotonic() + 10
            while not any(r.value == b"fresh" for r in got) and time.monotonic() < deadline:
                got.extend(consumer.poll(200))
        assert got and got[-1].value == b"fresh" and got[-1].offset == end, got[-3:]
        offsets = [r.offset for r in got]
        assert offsets[0] >= start and offsets == list(range(offsets[0], end + 1))  # from the new log start, no gaps
