"""Deleting a topic deletes the consumer groups' committed offsets of it (Kafka's
cleanupGroupMetadata): a group re-reads a re-created topic from the beginning, other topics keep
their offsets, and neither a coordinator SIGKILL nor a full restart brings the old offsets back."""

from __future__ import annotations

import os
import signal
from typing import Callable

import pytest

from _cluster import Cluster, wait_until
from _groups import FAST, create_topic
from kbroker import Admin, Consumer, GroupIdNotFoundError, Producer, TopicPartition
from kbroker.transport.client.group_client import GroupClient

pytestmark = pytest.mark.timeout(240)

EVENTS_4 = TopicPartition("events", 4)
ORDERS = [TopicPartition("orders", p) for p in range(2)]


def _produce(cluster: Cluster, topic: str, partition: int, values: list[bytes]) -> None:
    with Producer(cluster.bootstrap) as producer:
        for value in values:
            producer.send(topic, value, partition=partition)
        producer.flush(30)


def _committed(cluster: Cluster, group: str) -> dict[TopicPartition, int | None]:
    with Consumer(cluster.bootstrap, group_id=group, request_timeout_ms=30_000) as reader:
        return {tp: reader.committed(tp) for tp in [EVENTS_4, *ORDERS]}


def test_deleting_a_topic_deletes_its_committed_offsets_for_good(start_cluster: Callable[..., Cluster]) -> None:
    cluster = start_cluster()
    create_topic(cluster, "events", 6)
    create_topic(cluster, "orders", 2)
    _produce(cluster, "events", 4, [b"old-%d" % i for i in range(8)])
    _produce(cluster, "orders", 0, [b"o-%d" % i for i in range(5)])
    _produce(cluster, "orders", 1, [b"o-%d" % i for i in range(5)])

    consumer = Consumer(cluster.bootstrap, group_id="billing", enable_auto_commit=False, request_timeout_ms=20_000, **FAST)
    try:
        consumer.subscribe(["events"])
        wait_until(lambda: consumer.poll(50) is not None and len(consumer.assignment()) == 6, 30, "billing owning events")
        consumer.commit({EVENTS_4: 1})  # within the re-created partition's log: no out-of-range reset hides the bug
    finally:
        consumer.close()
    admin = Admin(cluster.bootstrap, timeout=20)
    try:
        wait_until(lambda: admin.describe_group("billing").state == "Empty", 20, "billing empty")
        assert admin.reset_offsets("billing", "orders", offset=3) == {ORDERS[0]: 3, ORDERS[1]: 3}
        assert admin.reset_offsets("audit", "events", offset=2, partitions=[4]) == {EVENTS_4: 2}  # only events
        assert _committed(cluster, "billing") == {EVENTS_4: 1, ORDERS[0]: 3, ORDERS[1]: 3}

        admin.delete_topic("events")
        create_topic(cluster, "events", 6)
        _produce(cluster, "events", 4, [b"new"])

        with Consumer(cluster.bootstrap, group_id="billing", auto_offset_reset="earliest", enable_auto_commit=False,
                      request_timeout_ms=20_000, **FAST) as reader:
            reader.subscribe(["events"])
            got: list = []
            wait_until(lambda: got.extend(reader.poll(100)) or got, 30, "the re-created topic's record")
            assert [(r.partition, r.offset, r.value) for r in got] == [(4, 0, b"new")]
        assert _committed(cluster, "billing") == {EVENTS_4: None, ORDERS[0]: 3, ORDERS[1]: 3}
        wait_until(lambda: "audit" not in admin.list_groups(), 20, "audit gone (no offsets, no members)")
        assert "billing" in admin.list_groups()
        with pytest.raises(GroupIdNotFoundError):
            admin.describe_group("audit")

        client = GroupClient(cluster.bootstrap, "billing", timeout_s=10)
        try:
            endpoint = client.find_coordinator(10)
        finally:
            client.close()
        pid = next(w.pid for w in admin.describe_cluster() if w.endpoint == endpoint)
        os.kill(pid, signal.SIGKILL)
        assert _committed(cluster, "billing") == {EVENTS_4: None, ORDERS[0]: 3, ORDERS[1]: 3}  # the new coordinator
        assert "audit" not in admin.list_groups()
        wait_until(lambda: len([w for w in admin.describe_cluster() if w.alive]) == 3, 30, "the killed worker back")
    finally:
        admin.close()

    assert cluster.stop() == 0
    again = start_cluster(data_dir=cluster.data_dir)
    assert _committed(again, "billing") == {EVENTS_4: None, ORDERS[0]: 3, ORDERS[1]: 3}
    with Admin(again.bootstrap, timeout=20) as admin:
        assert "audit" not in admin.list_groups()
