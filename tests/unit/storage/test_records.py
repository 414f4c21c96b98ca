"""Tests for kbroker.storage.records: building batches (producers) and decoding them (consumers)."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kbroker.errors import CorruptRecordError, InvalidRecordError
from kbroker.storage.batch import (
    CREATE_TIME,
    HEADER_SIZE,
    LOG_APPEND_TIME,
    TIMESTAMP_TYPE_BIT,
    pack_header,
    read_header,
    validate_batch,
    with_log_append_time,
)
from kbroker.storage.compression import Codec, compress
from kbroker.storage.records import (
    BatchBuilder,
    LogRecord,
    build_batch,
    decode_batch,
    decode_batches,
    encode_records,
)

PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
TS = 1_700_000_000_000


def crafted_batch(body: bytes, *, records_count: int = 1, attributes: int = 0, base_offset: int = 0) -> bytes:
    """A batch with a correct header and CRC around an arbitrary body."""
    header = pack_header(
        base_offset=base_offset,
        body_size=len(body),
        leader_epoch=0,
        attributes=attributes,
        last_offset_delta=max(records_count - 1, 0),
        first_timestamp=TS,
        max_timestamp=TS,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        records_count=records_count,
        body=body,
    )
    return header + body


def with_append_time(buf: bytes, timestamp_ms: int) -> bytes:
    return with_log_append_time(buf, 0, read_header(buf), timestamp_ms) + buf[HEADER_SIZE:]


# --- BatchBuilder -----------------------------------------------------------------------------


def test_builder_counts_and_returns_offset_deltas() -> None:
    builder = BatchBuilder()
    assert len(builder) == 0
    empty_size = builder.estimated_size
    assert [builder.append(b"v", timestamp_ms=TS) for _ in range(3)] == [0, 1, 2]
    assert len(builder) == 3
    assert builder.estimated_size > empty_size


def test_estimated_size_grows_with_payload() -> None:
    small, large = BatchBuilder(), BatchBuilder()
    small.append(b"x", timestamp_ms=TS)
    large.append(b"x" * 1000, key=b"k" * 100, headers=[("h", b"y" * 100)], timestamp_ms=TS)
    assert large.estimated_size - small.estimated_size >= 1200
    assert abs(len(large.build()) - large.estimated_size) < 100


def test_empty_builder_cannot_build() -> None:
    with pytest.raises(InvalidRecordError, match="empty batch"):
        BatchBuilder().build()


def test_round_trip_of_keys_values_tombstones_and_headers() -> None:
    builder = BatchBuilder()
    builder.append(b"v0", key=b"k0", headers=[("trace", b"\x00\x01"), ("empty", b"")], timestamp_ms=TS)
    builder.append(b"v1", key=None, timestamp_ms=TS + 1)
    builder.append(None, key=b"gone", timestamp_ms=TS + 2)  # tombstone
    builder.append(b"", key=b"", timestamp_ms=TS + 3)  # empty is not None
    assert decode_batch(builder.build()) == [
        LogRecord(0, TS, b"k0", b"v0", [("trace", b"\x00\x01"), ("empty", b"")], CREATE_TIME),
        LogRecord(1, TS + 1, None, b"v1", [], CREATE_TIME),
        LogRecord(2, TS + 2, b"gone", None, [], CREATE_TIME),
        LogRecord(3, TS + 3, b"", b"", [], CREATE_TIME),
    ]


def test_str_is_encoded_as_utf8_and_buffers_become_bytes() -> None:
    builder = BatchBuilder()
    builder.append("héllo ✓", key="ключ", headers=[("name", "välue")], timestamp_ms=TS)
    builder.append(bytearray(b"ba"), key=memoryview(b"mv"), headers=[("h", bytearray(b"x"))], timestamp_ms=TS)
    first, second = decode_batch(builder.build())
    assert first.value == "héllo ✓".encode("utf-8")
    assert first.key == "ключ".encode("utf-8")
    assert first.headers == [("name", "välue".encode("utf-8"))]
    assert (second.value, second.key, second.headers) == (b"ba", b"mv", [("h", b"x")])
    assert all(type(part) is bytes for part in (first.value, first.key, second.value, second.key))


def test_base_offset_epoch_and_producer_fields() -> None:
    buf = build_batch(
        [(b"a", None, None, TS), (b"b", None, None, TS)],
        base_offset=500,
        producer_id=12,
        producer_epoch=3,
        base_sequence=77,
    )
    header = validate_batch(buf)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (12, 3, 77)
    assert [r.offset for r in decode_batch(buf)] == [500, 501]
    builder = BatchBuilder()
    builder.append(b"x", timestamp_ms=TS)
    assert read_header(builder.build(base_offset=9, leader_epoch=4)).leader_epoch == 4


def test_build_batch_accepts_short_tuples() -> None:
    records = decode_batch(build_batch([(b"only-value",), (b"v", b"k"), (b"v", b"k", [("h", b"1")], 5)]))
    assert [(r.value, r.key, r.headers) for r in records] == [
        (b"only-value", None, []),
        (b"v", b"k", []),
        (b"v", b"k", [("h", b"1")]),
    ]
    assert records[2].timestamp_ms == 5


@pytest.mark.parametrize("codec", ["none", "gzip", "zstd", Codec.GZIP, None])
def test_compression_sets_the_codec_bits(codec: str | Codec | None) -> None:
    buf = build_batch([(b"payload " * 50, b"k", None, TS)] * 10, compression=codec)
    expected = Codec.NONE if codec is None else Codec(codec) if isinstance(codec, Codec) else Codec[codec.upper()]
    assert read_header(buf).codec == expected
    assert [r.value for r in decode_batch(buf)] == [b"payload " * 50] * 10


def test_compressed_body_is_smaller_for_repetitive_data() -> None:
    records = [(b"same value " * 20, b"key", None, TS)] * 20
    plain = build_batch(records)
    assert len(build_batch(records, compression="gzip")) < len(plain) // 4
    assert len(build_batch(records, compression="zstd")) < len(plain) // 4


# --- timestamps -------------------------------------------------------------------------------


def test_explicit_timestamps_with_negative_deltas() -> None:
    buf = build_batch([(value, None, None, ts) for value, ts in [(b"a", 1_000), (b"b", 900), (b"c", 1_100), (b"d", 0)]])
    header = read_header(buf)
    assert header.first_timestamp == 1_000  # the first record's, not the smallest
    assert header.max_timestamp == 1_100
    assert [r.timestamp_ms for r in decode_batch(buf)] == [1_000, 900, 1_100, 0]
    assert {r.timestamp_type for r in decode_batch(buf)} == {CREATE_TIME}


def test_implicit_timestamp_is_the_wall_clock_in_ms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("kbroker.storage.records.time.time", lambda: 1_650_000_000.1239)
    builder = BatchBuilder()
    builder.append(b"now")
    builder.append(b"explicit", timestamp_ms=5)
    assert [r.timestamp_ms for r in decode_batch(builder.build())] == [1_650_000_000_123, 5]


def test_log_append_time_reads_every_record_at_max_timestamp() -> None:
    buf = build_batch([(b"a", None, None, 10), (b"b", None, None, 30), (b"c", None, None, 20)], compression="gzip")
    records = decode_batch(with_append_time(buf, 99_999))
    assert [(r.value, r.timestamp_ms, r.timestamp_type) for r in records] == [
        (b"a", 99_999, LOG_APPEND_TIME),
        (b"b", 99_999, LOG_APPEND_TIME),
        (b"c", 99_999, LOG_APPEND_TIME),
    ]


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"value": 42}, "record value must be bytes, str or None, not int"),
        ({"value": b"v", "key": 3.5}, "record key must be bytes, str or None, not float"),
        ({"value": [b"v"]}, "record value must be bytes, str or None, not list"),
        ({"value": b"v", "headers": [("h", b"1", b"2")]}, "headers must be \\(str, bytes\\) pairs"),
        ({"value": b"v", "headers": [42]}, "headers must be \\(str, bytes\\) pairs"),
        ({"value": b"v", "headers": [(b"h", b"1")]}, "header names must be str, got bytes"),
        ({"value": b"v", "headers": [("h", 7)]}, "record header value must be bytes, str or None, not int"),
        ({"value": b"v", "timestamp_ms": -1}, "timestamp_ms must be a non-negative int"),
        ({"value": b"v", "timestamp_ms": 1.5}, "timestamp_ms must be a non-negative int"),
        ({"value": b"v", "timestamp_ms": "1000"}, "timestamp_ms must be a non-negative int"),
        ({"value": b"v", "timestamp_ms": True}, "timestamp_ms must be a non-negative int"),
    ],
    ids=lambda item: item if isinstance(item, str) else None,
)
def test_bad_input_raises_invalid_record_naming_the_problem(kwargs: dict, message: str) -> None:
    builder = BatchBuilder()
    with pytest.raises(InvalidRecordError, match=message):
        builder.append(**kwargs)
    assert len(builder) == 0  # a rejected record leaves no trace


def test_unknown_compression_is_invalid() -> None:
    with pytest.raises(InvalidRecordError, match="unknown compression 'brotli'"):
        BatchBuilder("brotli")
    with pytest.raises(InvalidRecordError, match="unknown compression"):
        build_batch([(b"v",)], compression="brotli")


# --- encode_records (the cleaner's writer) ----------------------------------------------------


def test_encode_records_keeps_offsets_gaps_and_span() -> None:
    records = [
        LogRecord(10, TS + 5, b"a", b"1", [("h", b"x")]),
        LogRecord(12, TS, None, b"2", []),
        LogRecord(15, TS + 9, b"c", None, []),
    ]
    buf = encode_records(
        records, base_offset=10, codec=Codec.ZSTD, timestamp_type=CREATE_TIME, leader_epoch=4, last_offset_delta=9
    )
    header = validate_batch(buf)
    assert (header.base_offset, header.records_count, header.last_offset_delta, header.next_offset) == (10, 3, 9, 20)
    assert (header.leader_epoch, header.codec) == (4, Codec.ZSTD)
    assert (header.first_timestamp, header.max_timestamp) == (TS + 5, TS + 9)
    assert decode_batch(buf) == records


def test_encode_records_span_defaults_to_the_last_record() -> None:
    records = [LogRecord(7, TS, b"k", b"v", [])]
    buf = encode_records(records, base_offset=5, codec=0, timestamp_type=CREATE_TIME, leader_epoch=0)
    assert read_header(buf).last_offset_delta == 2
    assert decode_batch(buf)[0].offset == 7


def test_encode_records_log_append_time() -> None:
    records = [LogRecord(0, 50, b"k", b"v", [], LOG_APPEND_TIME), LogRecord(1, 50, b"k", b"w", [], LOG_APPEND_TIME)]
    buf = encode_records(records, base_offset=0, codec=Codec.GZIP, timestamp_type=LOG_APPEND_TIME, leader_epoch=1)
    header = read_header(buf)
    assert header.attributes & TIMESTAMP_TYPE_BIT
    assert header.codec == Codec.GZIP
    assert decode_batch(buf) == records


def test_encode_records_of_nothing_is_invalid() -> None:
    with pytest.raises(InvalidRecordError, match="empty"):
        encode_records([], base_offset=0, codec=0, timestamp_type=CREATE_TIME, leader_epoch=0)


# --- decode_batches (fetch responses) ---------------------------------------------------------


def three_batches() -> list[bytes]:
    return [
        build_batch([(b"a", None, None, TS)], base_offset=0),
        build_batch([(b"b", None, None, TS), (b"c", None, None, TS)], base_offset=1, compression="gzip"),
        build_batch([(b"d", None, None, TS)], base_offset=3),
    ]


def test_decode_batches_reads_every_batch_in_order() -> None:
    records = decode_batches(b"".join(three_batches()))
    assert [(r.offset, r.value) for r in records] == [(0, b"a"), (1, b"b"), (2, b"c"), (3, b"d")]
    assert decode_batches(b"") == []


@pytest.mark.parametrize("cut", [1, 11, 12, 20, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 1])
def test_decode_batches_skips_a_partial_tail(cut: int) -> None:
    first, second, third = three_batches()
    assert cut < len(third)
    buf = first + second + third[:cut]
    assert [r.value for r in decode_batches(buf)] == [b"a", b"b", b"c"]
    assert [r.value for r in decode_batches(first + second + third[:-1])] == [b"a", b"b", b"c"]
    with pytest.raises(CorruptRecordError, match="truncated"):
        decode_batches(buf, allow_partial_tail=False)


@pytest.mark.parametrize("damaged", [0, 1, 2], ids=["first", "middle", "last-whole"])
def test_decode_batches_raises_on_corruption_of_a_whole_batch(damaged: int) -> None:
    parts = [bytearray(part) for part in three_batches()]
    parts[damaged][-1] ^= 0x40
    with pytest.raises(CorruptRecordError, match="CRC"):
        decode_batches(b"".join(parts))


def test_decode_batches_raises_on_a_partial_batch_in_the_middle_of_whole_ones() -> None:
    first, second, third = three_batches()
    torn = second[: HEADER_SIZE + 2]
    assert len(second) <= len(torn) + len(third)  # its declared size fits in what follows: not a tail
    with pytest.raises(CorruptRecordError):
        decode_batches(first + torn + third)


# --- bodies that pass the CRC but are not records ---------------------------------------------


def test_undecodable_body_is_corrupt() -> None:
    with pytest.raises(CorruptRecordError, match="undecodable body"):
        decode_batch(crafted_batch(b"\xc1"))  # 0xc1 is never valid msgpack


def test_record_count_mismatch_is_corrupt() -> None:
    body = msgpack.packb([[0, 0, None, b"v", []]], use_bin_type=True)
    with pytest.raises(CorruptRecordError, match="declares 2 records, body holds 1"):
        decode_batch(crafted_batch(body, records_count=2))
    with pytest.raises(CorruptRecordError, match="no list"):
        decode_batch(crafted_batch(msgpack.packb({"not": "a list"}), records_count=1))


@pytest.mark.parametrize("record", [[0, 0, None], 42, [0, 0, None, b"v", [["h"]]], [0, None, None, b"v", []]])
def test_malformed_record_is_corrupt(record: object) -> None:
    body = msgpack.packb([record], use_bin_type=True)
    with pytest.raises(CorruptRecordError, match="malformed record"):
        decode_batch(crafted_batch(body))


def test_unsupported_or_unknown_codec_in_a_valid_batch_is_corrupt() -> None:
    body = msgpack.packb([[0, 0, None, b"v", []]], use_bin_type=True)
    for codec_id in (2, 5, 6, 7):  # snappy is not supported; 5-7 are no codec at all
        with pytest.raises(CorruptRecordError):
            decode_batch(crafted_batch(body, attributes=codec_id))


def test_body_that_does_not_decompress_is_corrupt() -> None:
    with pytest.raises(CorruptRecordError, match="decompress a gzip"):
        decode_batch(crafted_batch(b"definitely not gzip", attributes=int(Codec.GZIP)))
    good = compress(Codec.ZSTD, msgpack.packb([[0, 0, None, b"v", []]], use_bin_type=True))
    assert decode_batch(crafted_batch(good, attributes=int(Codec.ZSTD)))[0].value == b"v"


# --- property: anything built decodes to what went in -----------------------------------------

header_lists = st.lists(st.tuples(st.text(max_size=8), st.binary(max_size=16)), max_size=3)
record_tuples = st.tuples(
    st.one_of(st.none(), st.binary(max_size=64)),  # value (None = tombstone)
    st.one_of(st.none(), st.binary(max_size=16)),  # key
    header_lists,
    st.integers(0, 2**53),  # timestamp_ms
)
record_lists = st.lists(record_tuples, min_size=1, max_size=25)


@PROPERTY
@given(records=record_lists, base_offset=st.integers(0, 2**62), append_time=st.none() | st.integers(0, 2**53))
def _build_decode_round_trip(
    codec: str, records: list[tuple], base_offset: int, append_time: int | None
) -> None:
    buf = build_batch(records, compression=codec, base_offset=base_offset)
    header = validate_batch(buf)
    assert header.codec == Codec[codec.upper()]
    assert (header.records_count, header.last_offset_delta) == (len(records), len(records) - 1)
    assert header.first_timestamp == records[0][3]
    assert header.max_timestamp == max(r[3] for r in records)
    expected = [
        LogRecord(base_offset + i, ts, key, value, list(headers), CREATE_TIME)
        for i, (value, key, headers, ts) in enumerate(records)
    ]
    assert decode_batch(buf) == expected
    assert decode_batches(buf + buf[: len(buf) // 2]) == expected
    if append_time is not None:
        patched = with_append_time(buf, append_time)
        at_append_time = [r._replace(timestamp_ms=append_time, timestamp_type=LOG_APPEND_TIME) for r in expected]
        assert decode_batch(patched) == at_append_time


@pytest.mark.parametrize("codec", ["none", "gzip", "zstd", "lz4"])
def test_arbitrary_records_round_trip_for_every_codec(codec: str) -> None:
    if codec == "lz4":
        pytest.importorskip("lz4.frame")
    _build_decode_round_trip(codec)
