"""Committed offsets: the __consumer_offsets record codec, the store, the group -> partition hash."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kbroker.actors.group_assignor import TopicPartition as TP
from kbroker.actors.group_offsets import Committed, OffsetKey, OffsetStore, decode_record, encode_key, encode_value
from kbroker.errors import CorruptRecordError
from kbroker.transport.messages_groups import group_partition


@given(st.text(min_size=1), st.text(min_size=1), st.integers(0, 2**31 - 1), st.integers(0, 2**62), st.none() | st.text(), st.integers(0, 2**50))
def test_records_round_trip(group: str, topic: str, partition: int, offset: int, metadata: str | None, ms: int) -> None:
    key = OffsetKey(group, topic, partition)
    committed = Committed(offset, metadata, ms)
    assert decode_record(encode_key(key), encode_value(committed)) == (key, committed)
    assert decode_record(encode_key(key), encode_value(None)) == (key, None)


@pytest.mark.parametrize("key, value", [(None, b"\x90"), (b"\xc1", None), (b"\x93\x01\xa1g\x01", None), (encode_key(OffsetKey("g", "t", 0)), b"\x92\x01\x02")])
def test_foreign_records_are_corrupt(key: bytes | None, value: bytes | None) -> None:
    with pytest.raises(CorruptRecordError, match="not a __consumer_offsets record"):
        decode_record(key, value)


def test_group_partition_is_stable_and_in_range() -> None:
    assert group_partition("billing", 8) == group_partition("billing", 8)
    assert group_partition("billing", 8) == zlib.crc32(b"billing") % 8  # what docs/protocol.md tells clients
    assert {group_partition(f"g{i}", 8) for i in range(200)} == set(range(8))
    with pytest.raises(ValueError):
        group_partition("g", 0)


def test_store_applies_in_log_order_tombstones_and_drops_partitions() -> None:
    store = OffsetStore()
    k = OffsetKey("g", "t", 0)
    skipped = store.apply_records([
        (encode_key(k), encode_value(Committed(5, None, 1))),
        (encode_key(k), encode_value(Committed(9, "m", 2))),
        (b"junk", b"junk"),
        (encode_key(OffsetKey("g", "t", 1)), encode_value(Committed(3, None, 2))),
    ])
    assert skipped == 1
    assert store.get("g", TP("t", 0)) == Committed(9, "m", 2)
    assert list(store.tombstones("g")) == [k, OffsetKey("g", "t", 1)]
    store.apply(k, None)
    assert store.offsets("g") == {TP("t", 1): Committed(3, None, 2)}
    store.apply(OffsetKey("g", "t", 1), None)
    assert store.groups() == []
    store.apply(OffsetKey("h", "t", 0), Committed(1, None, 0))
    p = group_partition("h", 8)
    assert store.drop_partition((p + 1) % 8, 8) == []
    assert store.drop_partition(p, 8) == ["h"] and store.groups() == []
