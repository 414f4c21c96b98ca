"""Fetch-response batches -> Record objects: offsets below the fetch, partial tails, compaction gaps."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kbroker.errors import CorruptRecordError
from kbroker.storage.batch import pack_header, read_header, with_log_append_time
from kbroker.storage.records import LogRecord, build_batch, decode_batches, encode_records
from kbroker.transport.client.records import make_record, records_from_fetch
from kbroker.transport.client.types import Record, TimestampType


def at(offset: int, batch: bytes) -> bytes:
    """``batch`` with its base offset set (as the leader patches it)."""
    return offset.to_bytes(8, "big") + batch[8:]


def batch_of(base: int, values: list[bytes], ts: int = 1_000) -> bytes:
    return at(base, build_batch([(v, b"k" + v, [("h", v)], ts + i) for i, v in enumerate(values)]))


def test_records_come_out_with_their_partition_offsets_and_fields() -> None:
    data = batch_of(0, [b"a", b"b"]) + batch_of(2, [b"c"], ts=5_000)
    fetched = records_from_fetch("t", 3, data, 0)
    assert fetched.records == [
        Record("t", 3, 0, b"ka", b"a", (("h", b"a"),), 1_000, TimestampType.CREATE_TIME),
        Record("t", 3, 1, b"kb", b"b", (("h", b"b"),), 1_001, TimestampType.CREATE_TIME),
        Record("t", 3, 2, b"kc", b"c", (("h", b"c"),), 5_000, TimestampType.CREATE_TIME),
    ]
    assert fetched.next_offset == 3 and not fetched.partial_tail
    assert fetched.records[0].timestamp_type == "CreateTime"


def test_records_below_the_fetch_offset_are_skipped() -> None:
    data = batch_of(10, [b"a", b"b", b"c"]) + batch_of(13, [b"d"])
    fetched = records_from_fetch("t", 0, data, 12)
    assert [(r.offset, r.value) for r in fetched.records] == [(12, b"c"), (13, b"d")]
    assert fetched.next_offset == 14
    assert records_from_fetch("t", 0, batch_of(10, [b"a"]), 11).records == []  # whole batch below


def test_a_partial_trailing_batch_is_ignored_and_fetched_again() -> None:
    whole = batch_of(0, [b"a"])
    second = batch_of(1, [b"b", b"c"])
    for cut in (1, 30, len(second) - 1):
        fetched = records_from_fetch("t", 0, whole + second[:cut], 0)
        assert [r.value for r in fetched.records] == [b"a"]
        assert fetched.next_offset == 1 and fetched.partial_tail


def test_nothing_fetched() -> None:
    for empty in (None, b"", memoryview(b"")):
        fetched = records_from_fetch("t", 0, empty, 7)
        assert fetched.records == [] and fetched.next_offset == 7 and not fetched.partial_tail


def test_next_offset_passes_compaction_gaps_and_emptied_batches() -> None:
    kept = [LogRecord(5, 1_000, b"k", b"latest", [])]
    gapped = encode_records(kept, base_offset=3, codec=0, timestamp_type=0, leader_epoch=0, last_offset_delta=4)
    fetched = records_from_fetch("t", 0, gapped, 3)
    assert [r.offset for r in fetched.records] == [5]
    assert fetched.next_offset == 8  # the batch spans 3..7 even though 6 and 7 were cleaned away


def test_log_append_time_batches_give_the_broker_time_to_every_record() -> None:
    raw = batch_of(0, [b"a", b"b"])
    header = read_header(raw)
    patched = with_log_append_time(raw, 0, header, 77_000) + raw[61:]
    fetched = records_from_fetch("t", 0, patched, 0)
    assert [(r.timestamp_ms, r.timestamp_type) for r in fetched.records] == [
        (77_000, TimestampType.LOG_APPEND_TIME),
        (77_000, TimestampType.LOG_APPEND_TIME),
    ]
    assert fetched.records[0].timestamp_type == "LogAppendTime"


def test_compressed_batches_decode() -> None:
    data = at(0, build_batch([(b"x" * 50,)] * 3, compression="zstd"))
    assert [r.value for r in records_from_fetch("t", 0, data, 0).records] == [b"x" * 50] * 3


def test_a_corrupt_whole_batch_raises() -> None:
    good = batch_of(0, [b"a"])
    bad = bytearray(batch_of(1, [b"b"]))
    bad[-1] ^= 0xFF
    with pytest.raises(CorruptRecordError, match="CRC"):
        records_from_fetch("t", 0, good + bytes(bad), 0)


def test_make_record_equals_the_dataclass_constructor() -> None:
    args = ("t", 1, 2, b"k", None, [("h", b"v")], 3, TimestampType.LOG_APPEND_TIME)
    fast = make_record(*args)
    assert fast == Record(*args) and hash(fast.topic_partition)
    assert repr(fast) == repr(Record(*args))


record_strategy = st.tuples(
    st.one_of(st.none(), st.binary(max_size=30)),  # value
    st.one_of(st.none(), st.binary(max_size=10)),  # key
    st.lists(st.tuples(st.text(max_size=4), st.one_of(st.none(), st.binary(max_size=4))), max_size=2),
    st.integers(0, 2**42),  # timestamp
)


@settings(max_examples=80, deadline=None)
@given(
    batches=st.lists(
        st.tuples(
            st.lists(record_strategy, min_size=1, max_size=8),
            st.sampled_from(["none", "gzip", "zstd"]),
            st.booleans(),  # LogAppendTime
        ),
        min_size=1,
        max_size=4,
    ),
    skip=st.integers(0, 12),
    cut=st.integers(0, 80),
)
def test_same_records_as_storage_decode_batches(batches: list, skip: int, cut: int) -> None:
    """decode_batches is the reference decoder: same offsets, keys, values, headers and times."""
    parts, base = [], 0
    for records, codec, log_append in batches:
        raw = at(base, build_batch(records, compression=codec))
        if log_append:
            raw = with_log_append_time(raw, 0, read_header(raw), 123_456) + raw[61:]
        parts.append(raw)
        base += len(records)
    data = b"".join(parts)
    data = data[: len(data) - cut] if cut < len(parts[-1]) else data
    fetch_offset = min(skip, base - 1)
    expected = [r for r in decode_batches(data) if r.offset >= fetch_offset]
    fetched = records_from_fetch("t", 0, data, fetch_offset)
    assert [(r.offset, r.key, r.value, list(r.headers), r.timestamp_ms, int(r.timestamp_type)) for r in fetched.records] == [
        (r.offset, r.key, r.value, r.headers, r.timestamp_ms, r.timestamp_type) for r in expected
    ]


def _batch_with_body(body_items: object, count: int) -> bytes:
    body = msgpack.packb(body_items, use_bin_type=True)
    header = pack_header(
        base_offset=0, body_size=len(body), leader_epoch=0, attributes=0, last_offset_delta=max(count - 1, 0),
        first_timestamp=0, max_timestamp=0, producer_id=-1, producer_epoch=-1, base_sequence=-1,
        records_count=count, body=body,
    )
    return header + body


@pytest.mark.parametrize(
    "items, count, match",
    [
        (5, 1, "declares 1 records"),
        ([[0, 0, None, b"v", []], [1, 0]], 2, "malformed record"),
        ([[0, 0, None, b"v", []]], 2, "declares 2 records"),
    ],
)
def test_malformed_bodies_with_a_valid_crc_raise_corrupt_record(items: object, count: int, match: str) -> None:
    with pytest.raises(CorruptRecordError, match=match):
        records_from_fetch("t", 0, _batch_with_body(items, count), 0)


def test_an_undecodable_body_raises_corrupt_record() -> None:
    body = b"\xc1\xc1"  # never-used msgpack bytes
    header = pack_header(
        base_offset=0, body_size=len(body), leader_epoch=0, attributes=0, last_offset_delta=0,
        first_timestamp=0, max_timestamp=0, producer_id=-1, producer_epoch=-1, base_sequence=-1,
        records_count=1, body=body,
    )
    with pytest.raises(CorruptRecordError, match="undecodable"):
        records_from_fetch("t", 0, header + body, 0)
