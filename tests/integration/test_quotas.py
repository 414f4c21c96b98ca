"""Client byte-rate quotas against a real broker: throttled, never refused; other clients unaffected.

The checks are lower bounds on time (a quota must slow a greedy client down to its rate), which a
slow machine can only make longer, never break.
"""

from __future__ import annotations

import time

from _cluster import Cluster
from _failover import create_topic, read_topic
from kbroker import Admin, Consumer, Producer, TopicPartition
from kbroker.storage.records import BatchBuilder
from kbroker.transport.messages_client import Produce, ProducePartition, ProduceResponse, ProduceTopic

import pytest

RATE = 1_000_000  # bytes/s per client id, on each worker
TOTAL = 4_000_000


@pytest.mark.cluster(workers=1, args=["--producer-byte-rate", str(RATE), "--consumer-byte-rate", str(RATE)])
def test_a_greedy_client_is_slowed_to_its_quota_and_gets_everything(cluster: Cluster) -> None:
    with Admin(cluster.bootstrap, timeout=20) as admin:
        create_topic(admin, "quota", 1, rf=1)
        endpoint = admin.describe_cluster()[0].endpoint
    value = b"v" * 10_000
    started = time.monotonic()
    with Producer(cluster.bootstrap, acks=1, client_id="greedy", linger_ms=5) as producer:
        for _ in range(TOTAL // len(value)):
            producer.send("quota", value)
        producer.flush(120)
    produce_s = time.monotonic() - started
    # the first second's worth is the burst; the rest cannot arrive faster than the quota
    assert produce_s >= (TOTAL - RATE) / RATE * 0.9, f"{TOTAL} bytes produced in {produce_s:.2f} s: not throttled"

    batch = BatchBuilder()
    batch.append(b"small")
    other = cluster.connection(endpoint, timeout=10)
    reply = other.request(Produce("another-client", 1, 5000, (ProduceTopic("quota", (ProducePartition(0, batch.build()),)),)))
    assert isinstance(reply, ProduceResponse) and reply.throttle_time_ms == 0  # its own bucket

    started = time.monotonic()
    count = 0
    with Consumer(cluster.bootstrap, client_id="reader") as consumer:
        consumer.assign([TopicPartition("quota", 0)])
        while count < TOTAL // len(value) + 1:
            count += len(consumer.poll(1000))
            assert time.monotonic() - started < 90, f"only {count} records read"
    fetch_s = time.monotonic() - started
    assert fetch_s >= (TOTAL - 2 * RATE) / RATE * 0.9, f"{TOTAL} bytes fetched in {fetch_s:.2f} s: not throttled"
    print(f"\nquotas at {RATE / 1e6:g} MB/s: produced {TOTAL / 1e6:g} MB in {produce_s:.2f} s, fetched it in {fetch_s:.2f} s")
    assert len(read_topic(cluster.bootstrap, "quota")) == TOTAL // len(value) + 1  # nothing dropped
