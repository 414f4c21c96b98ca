"""Kafka-compatible key partitioning (murmur2) and KIP-480 sticky partitioning."""

from __future__ import annotations

import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kbroker.errors import InvalidRequestError, UnknownTopicOrPartitionError
from kbroker.transport.client import partitioner as partitioner_module
from kbroker.transport.client.partitioner import Partitioner, murmur2, partition_for_key, to_positive

# apache/kafka clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java, testMurmur2
KAFKA_UTILS_TEST = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}

# akka/pekko cluster-sharding-typed Murmur2Spec ("expected correct hash values from the kafka
# murmur2 impl", Utils.java): one vector per tail length 1, 2, 3, 0 and 1 again
AKKA_MURMUR2_SPEC = {
    b"1": -1993445489,
    b"12": 126087238,
    b"123": -267702483,
    b"1234": -1614185708,
    b"12345": -1188365604,
}

# dpkp/kafka-python test/test_partitioner.py and aio-libs/aiokafka tests/test_partitioner.py,
# test_murmur2_java_compatibility: "compare with output from Kafka's
# org.apache.kafka.clients.producer.Partitioner" with 1000 partitions
KAFKA_PARTITIONS_OF_1000 = {
    b"": 681,
    b"a": 524,
    b"ab": 434,
    b"abc": 107,
    b"123456789": 566,
    b"\x00 ": 742,
}


@pytest.mark.parametrize("key, expected", [*KAFKA_UTILS_TEST.items(), *AKKA_MURMUR2_SPEC.items()])
def test_murmur2_matches_kafka_utils(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


@pytest.mark.parametrize("key, expected", list(KAFKA_PARTITIONS_OF_1000.items()))
def test_partition_for_key_matches_kafka_partitioner(key: bytes, expected: int) -> None:
    assert partition_for_key(key, 1000) == expected
    assert Partitioner().partition("t", key, 1000) == expected


def _java_murmur2(data: bytes) -> int:
    """Kafka's Utils.murmur2 transcribed line by line, emulating Java's int (reference for the fast one)."""

    def i32(x: int) -> int:
        x &= 0xFFFFFFFF
        return x - (1 << 32) if x & 0x80000000 else x

    def ushr(x: int, n: int) -> int:  # Java's >>>
        return (x & 0xFFFFFFFF) >> n

    length = len(data)
    seed = i32(0x9747B28C)
    m = 0x5BD1E995
    r = 24
    h = i32(seed ^ length)
    for i in range(length // 4):
        i4 = i * 4
        k = i32(data[i4] + (data[i4 + 1] << 8) + (data[i4 + 2] << 16) + (data[i4 + 3] << 24))
        k = i32(k * m)
        k = i32(k ^ ushr(k, r))
        k = i32(k * m)
        h = i32(h * m)
        h = i32(h ^ k)
    rest = length % 4
    base = length & ~3
    if rest == 3:
        h = i32(h ^ (data[base + 2] << 16))
    if rest >= 2:
        h = i32(h ^ (data[base + 1] << 8))
    if rest >= 1:
        h = i32(h ^ data[base])
        h = i32(h * m)
    h = i32(h ^ ushr(h, 13))
    h = i32(h * m)
    h = i32(h ^ ushr(h, 15))
    return h


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_murmur2_equals_the_line_by_line_transcription(key: bytes) -> None:
    assert murmur2(key) == _java_murmur2(key)
    assert murmur2(bytearray(key)) == murmur2(memoryview(key)) == murmur2(key)


def test_long_keys_beyond_the_precompiled_structs() -> None:
    key = bytes(range(256)) * 3 + b"xy"
    assert murmur2(key) == _java_murmur2(key)


def test_to_positive_clears_the_sign_bit_like_kafka() -> None:
    assert to_positive(-1) == 0x7FFFFFFF
    assert to_positive(-(2**31)) == 0
    assert to_positive(5) == 5


def test_same_key_same_partition_and_the_memo_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(partitioner_module, "_HASH_CACHE_SIZE", 8)
    p = Partitioner()
    keys = [f"user-{i}".encode() for i in range(30)]
    first = [p.partition("t", k, 12) for k in keys]
    assert [p.partition("t", k, 12) for k in keys] == first == [partition_for_key(k, 12) for k in keys]
    assert len(p._hashes) <= 8


def test_explicit_partition_passes_through_with_a_range_check() -> None:
    p = Partitioner()
    assert p.partition("t", b"key", 3, partition=2) == 2
    for bad in (3, -1):
        with pytest.raises(UnknownTopicOrPartitionError, match=r"partition .* of topic 't' does not exist.*0\.\.2"):
            p.partition("t", None, 3, partition=bad)
    with pytest.raises(InvalidRequestError):
        p.partition("t", None, 3, partition=True)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError):
        p.partition("t", None, 3, partition="1")  # type: ignore[arg-type]


def test_keyless_records_stick_until_a_new_batch_then_move_to_another_available_partition() -> None:
    p = Partitioner(random.Random(7))
    first = p.partition("t", None, 6)
    assert all(p.partition("t", None, 6) == first for _ in range(50))
    seen = {first}
    current = first
    for _ in range(40):
        nxt = p.on_new_batch("t", current, 6, available=[0, 2, 4])
        assert nxt != current and nxt in (0, 2, 4)
        assert p.partition("t", None, 6, available=[0, 2, 4]) == nxt
        seen.add(nxt)
        current = nxt
    assert {0, 2, 4} <= seen
    other = p.partition("u", None, 6)  # topics stick independently
    assert 0 <= other < 6


def test_on_new_batch_for_a_partition_that_is_no_longer_sticky_keeps_the_current_one() -> None:
    p = Partitioner(random.Random(1))
    current = p.sticky_partition("t", 4)
    stale_prev = (current + 1) % 4
    assert p.on_new_batch("t", stale_prev, 4) == current


def test_sticky_choice_with_one_or_no_available_partition() -> None:
    p = Partitioner(random.Random(3))
    assert p.on_new_batch("t", 0, 5, available=[3]) == 3
    assert p.on_new_batch("t", 3, 5, available=[3]) == 3  # the only one: stays
    choices = {p.on_new_batch("t", p.sticky_partition("t", 5), 5, available=[]) for _ in range(60)}
    assert choices <= set(range(5)) and len(choices) > 1
    with pytest.raises(UnknownTopicOrPartitionError):
        p.sticky_partition("empty", 0)


def test_sticky_partition_follows_a_shrunken_partition_count() -> None:
    p = Partitioner(random.Random(5))
    p._sticky["t"] = 9
    assert 0 <= p.sticky_partition("t", 3) < 3


def test_partitioning_cost_per_record(capsys: pytest.CaptureFixture[str]) -> None:
    """Figures, not limits (machines are noisy): printed with -s, and kept loosely in check."""
    n = 20_000
    unique = [b"key-%08d" % i for i in range(n)]
    p = Partitioner()
    partition = p.partition
    t0 = time.perf_counter()
    for k in unique:
        partition("t", k, 12)
    unique_ns = (time.perf_counter() - t0) / n * 1e9
    t0 = time.perf_counter()
    for k in unique:
        partition("t", k, 12)  # now remembered
    repeated_ns = (time.perf_counter() - t0) / n * 1e9
    t0 = time.perf_counter()
    for _ in range(n):
        partition("t", None, 12)
    sticky_ns = (time.perf_counter() - t0) / n * 1e9
    with capsys.disabled():
        print(
            f"\n[partitioner] murmur2 12-byte unique keys {unique_ns:.0f} ns/record, repeated keys "
            f"{repeated_ns:.0f} ns/record, keyless sticky {sticky_ns:.0f} ns/record"
        )
    assert repeated_ns < unique_ns
    assert unique_ns < 20_000  # only catches a pathological regression
