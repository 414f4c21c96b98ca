"""Tests for kbroker.storage.batch: the fixed header the broker reads, validates and patches."""

from __future__ import annotations

import dataclasses
import re
import struct
import zlib

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import kbroker.storage.batch as batch_module
from kbroker.errors import CorruptRecordError, RecordTooLargeError
from kbroker.storage.batch import (
    CREATE_TIME,
    HEADER_SIZE,
    LOG_APPEND_TIME,
    LOG_OVERHEAD,
    MAGIC,
    TIMESTAMP_TYPE_BIT,
    BatchHeader,
    compute_crc,
    iter_batches,
    patched_prefix,
    read_header,
    validate_batch,
    with_log_append_time,
)
from kbroker.storage.compression import Codec
from kbroker.storage.records import BatchBuilder, decode_batch

PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_batch(
    n: int = 3,
    *,
    compression: str | None = None,
    base_offset: int = 0,
    leader_epoch: int = -1,
    first_ts: int = 1_700_000_000_000,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
) -> bytes:
    builder = BatchBuilder(
        compression, producer_id=producer_id, producer_epoch=producer_epoch, base_sequence=base_sequence
    )
    for i in range(n):
        builder.append(b"value-%d" % i, key=b"key-%d" % i, headers=[("h", b"%d" % i)], timestamp_ms=first_ts + i)
    return builder.build(base_offset, leader_epoch)


def crc32c_reference(data: bytes) -> int:
    """CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bit by bit: Kafka's batch checksum."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def patch(buf: bytes, offset: int, fmt: str, value: int, *, fix_crc: bool = False) -> bytes:
    """``buf`` with one field rewritten; ``fix_crc`` recomputes the CRC so only the field is wrong."""
    out = bytearray(buf)
    struct.pack_into(fmt, out, offset, value)
    if fix_crc:
        struct.pack_into(">I", out, 17, crc32c_reference(out[21:]))
    return bytes(out)


# --- the layout, as the module docstring draws it -------------------------------------------

# Rows of the docstring table: "offset size field type ...".
_ROW = re.compile(r"^\s+(\d+)\s+(\d+|\.\.\.)\s+(\w+)\s*(\w+)?", re.MULTILINE)
_FORMATS = {("int8", 1): ">b", ("int16", 2): ">h", ("int32", 4): ">i", ("int64", 8): ">q", ("uint32", 4): ">I"}


def docstring_table() -> list[tuple[int, int, str, str]]:
    rows = []
    for offset, size, name, type_ in _ROW.findall(batch_module.__doc__ or ""):
        if size != "...":
            rows.append((int(offset), int(size), name, type_))
    return rows


def test_docstring_table_is_contiguous_and_matches_header_size() -> None:
    rows = docstring_table()
    assert [name for _, _, name, _ in rows] == [
        "base_offset",
        "batch_length",
        "partition_leader_epoch",
        "magic",
        "crc",
        "attributes",
        "last_offset_delta",
        "first_timestamp",
        "max_timestamp",
        "producer_id",
        "producer_epoch",
        "base_sequence",
        "records_count",
    ]
    position = 0
    for offset, size, name, type_ in rows:
        assert offset == position, f"{name} documented at {offset}, follows a field ending at {position}"
        assert (type_, size) in _FORMATS, f"{name}: size {size} does not fit type {type_}"
        position += size
    assert position == HEADER_SIZE == 61
    assert LOG_OVERHEAD == 12  # base_offset + batch_length


def test_fields_sit_where_the_docstring_table_says() -> None:
    buf = make_batch(
        4,
        compression="gzip",
        base_offset=1234,
        leader_epoch=7,
        first_ts=1_000,
        producer_id=99,
        producer_epoch=3,
        base_sequence=40,
    )
    expected = {
        "base_offset": 1234,
        "batch_length": len(buf) - 12,
        "partition_leader_epoch": 7,
        "magic": MAGIC,
        "crc": crc32c_reference(buf[21:]),
        "attributes": int(Codec.GZIP),
        "last_offset_delta": 3,
        "first_timestamp": 1_000,
        "max_timestamp": 1_003,
        "producer_id": 99,
        "producer_epoch": 3,
        "base_sequence": 40,
        "records_count": 4,
    }
    for offset, size, name, type_ in docstring_table():
        (value,) = struct.unpack_from(_FORMATS[(type_, size)], buf, offset)
        assert value == expected[name], name


def test_read_header_agrees_with_raw_struct_reads() -> None:
    buf = make_batch(2, base_offset=50, leader_epoch=4, producer_id=8, producer_epoch=1, base_sequence=10)
    header = read_header(buf)
    assert header == BatchHeader(
        base_offset=50,
        batch_length=len(buf) - LOG_OVERHEAD,
        leader_epoch=4,
        magic=2,
        crc=crc32c_reference(buf[21:]),
        attributes=0,
        last_offset_delta=1,
        first_timestamp=1_700_000_000_000,
        max_timestamp=1_700_000_000_001,
        producer_id=8,
        producer_epoch=1,
        base_sequence=10,
        records_count=2,
    )
    assert read_header(b"\x00" * 5 + buf, 5) == header


def test_header_properties() -> None:
    header = read_header(make_batch(5, compression="zstd", base_offset=100, base_sequence=7))
    assert header.size == header.batch_length + 12
    assert header.last_offset == 104
    assert header.next_offset == 105
    assert header.codec == Codec.ZSTD
    assert header.timestamp_type == CREATE_TIME
    assert header.last_sequence == 11


def test_last_sequence_wraps_and_is_undefined_without_idempotence() -> None:
    assert read_header(make_batch(3, base_sequence=0x7FFFFFFF)).last_sequence == 1
    assert read_header(make_batch(3)).last_sequence == -1


def test_crc_is_crc32c_as_in_kafka() -> None:
    assert crc32c_reference(b"123456789") == 0xE3069283  # the standard CRC-32C check value
    buf = make_batch()
    assert read_header(buf).crc == crc32c_reference(buf[21:])
    assert read_header(buf).crc != zlib.crc32(buf[21:])  # not the IEEE CRC-32 of zlib


def test_compute_crc_covers_bytes_21_to_end_only() -> None:
    buf = make_batch()
    assert compute_crc(buf, 0, len(buf)) == crc32c_reference(buf[21:]) == read_header(buf).crc
    framed = b"junk" + buf + b"tail"
    assert compute_crc(framed, 4, len(buf)) == read_header(buf).crc


# --- validate_batch ---------------------------------------------------------------------------


def test_valid_batch_returns_its_header() -> None:
    buf = make_batch(compression="gzip")
    assert validate_batch(buf) == read_header(buf)
    assert validate_batch(b"\xff" * 9 + buf, 9) == read_header(buf)


@pytest.mark.parametrize("keep", [0, 1, 12, 17, HEADER_SIZE - 1, HEADER_SIZE, -1])
def test_truncated_batch_is_corrupt(keep: int) -> None:
    buf = make_batch()
    with pytest.raises(CorruptRecordError, match="truncated"):
        validate_batch(buf[:keep])


@pytest.mark.parametrize("magic", [0, 1, 3, -1])
def test_wrong_magic_is_corrupt(magic: int) -> None:
    buf = patch(make_batch(), 16, ">b", magic)
    with pytest.raises(CorruptRecordError, match="magic"):
        validate_batch(buf)


@pytest.mark.parametrize(
    "batch_length", [-1, 0, HEADER_SIZE - LOG_OVERHEAD - 1, (1 << 30) - LOG_OVERHEAD + 1, 2**31 - 1]
)
def test_impossible_length_is_corrupt(batch_length: int) -> None:
    buf = patch(make_batch(), 8, ">i", batch_length)
    with pytest.raises(CorruptRecordError, match="impossible length"):
        validate_batch(buf)


def test_length_beyond_the_buffer_is_truncated() -> None:
    buf = make_batch()
    longer = patch(buf, 8, ">i", len(buf) - LOG_OVERHEAD + 1)
    with pytest.raises(CorruptRecordError, match="truncated"):
        validate_batch(longer)


@pytest.mark.parametrize(
    ("last_offset_delta", "records_count"),
    [(2, 4), (0, 2), (-1, 0), (-1, 3), (2, -1)],
    ids=["more-records-than-offsets", "two-records-one-offset", "negative-delta", "negative-delta-3", "negative-count"],
)
def test_inconsistent_counts_are_corrupt(last_offset_delta: int, records_count: int) -> None:
    buf = patch(make_batch(3), 23, ">i", last_offset_delta)
    buf = patch(buf, 57, ">i", records_count, fix_crc=True)  # only the counts are wrong, not the CRC
    with pytest.raises(CorruptRecordError, match="inconsistent counts"):
        validate_batch(buf)


def test_fewer_records_than_the_offset_span_is_valid() -> None:
    # Compaction leaves holes: 3 records may span offsets 0..9.
    buf = patch(make_batch(3), 23, ">i", 9, fix_crc=True)
    header = validate_batch(buf)
    assert (header.records_count, header.next_offset) == (3, 10)


def test_negative_base_offset_is_corrupt() -> None:
    buf = patch(make_batch(), 0, ">q", -1)  # not covered by the CRC
    with pytest.raises(CorruptRecordError, match="negative base offset"):
        validate_batch(buf)


def test_crc_mismatch_is_corrupt_unless_the_check_is_off() -> None:
    buf = bytearray(make_batch())
    buf[-1] ^= 0x01
    with pytest.raises(CorruptRecordError, match="CRC"):
        validate_batch(buf)
    assert validate_batch(buf, check_crc=False).records_count == 3


def test_wrong_stored_crc_is_corrupt() -> None:
    buf = make_batch()
    with pytest.raises(CorruptRecordError, match="CRC"):
        validate_batch(patch(buf, 17, ">I", (read_header(buf).crc + 1) & 0xFFFFFFFF))


def test_oversize_batch_is_too_large_not_corrupt() -> None:
    buf = make_batch()
    assert validate_batch(buf, max_size=len(buf)).size == len(buf)
    with pytest.raises(RecordTooLargeError, match="max.message.bytes") as info:
        validate_batch(buf, max_size=len(buf) - 1)
    assert not isinstance(info.value, CorruptRecordError)
    assert info.value.code != CorruptRecordError.code


# --- patching: offsets, epochs, LogAppendTime -------------------------------------------------


def test_crc_covers_neither_base_offset_length_nor_epoch() -> None:
    buf = make_batch(leader_epoch=-1)
    original = read_header(buf)
    prefix = patched_prefix(original, 5_000_000_000, 42)
    assert len(prefix) == 17  # base offset, length, epoch and the magic byte
    patched = prefix + buf[17:]
    header = validate_batch(patched)
    assert (header.base_offset, header.leader_epoch) == (5_000_000_000, 42)
    assert header.crc == original.crc
    assert header.batch_length == original.batch_length
    assert patched[17:] == buf[17:]
    assert [r.offset for r in decode_batch(patched)] == [5_000_000_000, 5_000_000_001, 5_000_000_002]


def test_with_log_append_time_sets_bit_max_timestamp_and_a_valid_crc() -> None:
    buf = make_batch(compression="gzip", base_offset=10, leader_epoch=2, producer_id=5)
    original = read_header(buf)
    new_header = with_log_append_time(buf, 0, original, 1_800_000_000_000)
    assert len(new_header) == HEADER_SIZE
    patched = new_header + buf[HEADER_SIZE:]
    header = validate_batch(patched)
    assert header.attributes == original.attributes | TIMESTAMP_TYPE_BIT
    assert header.codec == Codec.GZIP
    assert header.timestamp_type == LOG_APPEND_TIME
    assert header.max_timestamp == 1_800_000_000_000
    assert header.crc == crc32c_reference(patched[21:]) != original.crc
    unchanged = ("base_offset", "batch_length", "leader_epoch", "first_timestamp", "producer_id", "records_count")
    for field in unchanged:
        assert getattr(header, field) == getattr(original, field), field
    with pytest.raises(CorruptRecordError, match="CRC"):  # the old CRC no longer matches
        validate_batch(buf[:21] + patched[21:])


def test_with_log_append_time_inside_a_larger_buffer_and_with_a_new_prefix() -> None:
    first, second = make_batch(2), make_batch(3, compression="zstd")
    buf = first + second
    header = validate_batch(buf, len(first))
    new_header = with_log_append_time(buf, len(first), header, 77)
    # What the log writes: new prefix, rest of the rewritten header, the untouched body.
    patched = patched_prefix(header, 900, 6) + new_header[17:] + second[HEADER_SIZE:]
    result = validate_batch(patched)
    assert (result.base_offset, result.leader_epoch, result.max_timestamp) == (900, 6, 77)
    assert {r.timestamp_ms for r in decode_batch(patched)} == {77}


# --- iter_batches -----------------------------------------------------------------------------


def test_iter_batches_walks_concatenated_batches() -> None:
    parts = [
        make_batch(1, base_offset=0),
        make_batch(4, compression="gzip", base_offset=1),
        make_batch(2, base_offset=5),
    ]
    buf = b"".join(parts)
    found = list(iter_batches(buf))
    assert [pos for pos, _ in found] == [0, len(parts[0]), len(parts[0]) + len(parts[1])]
    assert [h.base_offset for _, h in found] == [0, 1, 5]
    assert [h.records_count for _, h in found] == [1, 4, 2]
    assert [h.size for _, h in found] == [len(p) for p in parts]


def test_iter_batches_of_nothing_yields_nothing() -> None:
    assert list(iter_batches(b"")) == []


def test_iter_batches_yields_whole_batches_then_raises_on_a_partial_tail() -> None:
    whole = make_batch(2)
    batches = iter_batches(whole + make_batch(3)[:-5])
    assert next(batches)[1].records_count == 2
    with pytest.raises(CorruptRecordError, match="truncated"):
        next(batches)


def test_iter_batches_raises_on_corruption_in_the_middle() -> None:
    middle = bytearray(make_batch(2))
    middle[-3] ^= 0xFF
    with pytest.raises(CorruptRecordError, match="CRC"):
        list(iter_batches(make_batch(1) + bytes(middle) + make_batch(1)))


def test_iter_batches_applies_max_size_and_check_crc_to_every_batch() -> None:
    small, big = make_batch(1), make_batch(20)
    with pytest.raises(RecordTooLargeError):
        list(iter_batches(small + big, max_size=len(small)))
    damaged = bytearray(small + big)
    damaged[-1] ^= 0x10
    assert len(list(iter_batches(damaged, check_crc=False))) == 2


# --- corruption: a flipped byte is never served -----------------------------------------------


records_lists = st.lists(
    st.tuples(st.binary(max_size=40), st.one_of(st.none(), st.binary(max_size=10))), min_size=1, max_size=8
)
codecs = st.sampled_from(["none", "gzip", "zstd"])


def build(records: list[tuple[bytes, bytes | None]], codec: str) -> bytes:
    builder = BatchBuilder(codec)
    for i, (value, key) in enumerate(records):
        builder.append(value, key=key, headers=[("n", b"%d" % i)], timestamp_ms=1_000 + i)
    return builder.build(base_offset=100, leader_epoch=3)


def assert_detected(buf: bytes) -> None:
    with pytest.raises(CorruptRecordError):
        validate_batch(buf)
    with pytest.raises(CorruptRecordError):
        decode_batch(buf)


@PROPERTY
@given(records=records_lists, codec=codecs, data=st.data())
def test_any_single_flipped_byte_in_the_crc_region_is_detected(
    records: list[tuple[bytes, bytes | None]], codec: str, data: st.DataObject
) -> None:
    buf = bytearray(build(records, codec))
    position = data.draw(st.integers(17, len(buf) - 1), label="position")
    buf[position] ^= data.draw(st.integers(1, 255), label="xor mask")
    # A 32-bit CRC detects every error burst of up to 32 bits: this is a guarantee, not a likelihood.
    assert_detected(bytes(buf))


@PROPERTY
@given(records=records_lists, codec=codecs, data=st.data())
def test_several_flipped_bytes_in_the_crc_region_are_detected(
    records: list[tuple[bytes, bytes | None]], codec: str, data: st.DataObject
) -> None:
    buf = bytearray(build(records, codec))
    positions = data.draw(st.sets(st.integers(17, len(buf) - 1), min_size=2, max_size=8), label="positions")
    for position in positions:
        buf[position] ^= data.draw(st.integers(1, 255), label=f"mask at {position}")
    # Scattered multi-byte errors escape a 32-bit CRC with probability 2**-32 per case: never in practice.
    assert_detected(bytes(buf))


_LENGTH_OR_MAGIC = set(range(8, 12)) | {16}
prefix_flips = st.dictionaries(st.integers(0, 16), st.integers(1, 255), min_size=1, max_size=4)  # position -> mask


@PROPERTY
@given(records=records_lists, codec=codecs, flips=prefix_flips)
@example(records=[(b"v", None)], codec="none", flips={0: 0x80})  # base offset turns negative
@example(records=[(b"v", None)], codec="gzip", flips={7: 0x01, 12: 0xFF})  # offset and epoch move
@example(records=[(b"v", None)], codec="none", flips={11: 0x01})  # length one byte shorter
def test_flips_in_the_first_17_bytes_are_detected_or_only_move_offset_and_epoch(
    records: list[tuple[bytes, bytes | None]], codec: str, flips: dict[int, int]
) -> None:
    original = build(records, codec)
    buf = bytearray(original)
    for position, mask in flips.items():
        buf[position] ^= mask
    if flips.keys() & _LENGTH_OR_MAGIC:
        assert_detected(bytes(buf))
        return
    if struct.unpack_from(">q", buf, 0)[0] < 0:
        assert_detected(bytes(buf))
        return
    header = validate_batch(buf)
    before = read_header(original)
    assert header == dataclasses.replace(before, base_offset=header.base_offset, leader_epoch=header.leader_epoch)
    decoded = decode_batch(buf)
    assert [(r.key, r.value, r.timestamp_ms) for r in decoded] == [
        (r.key, r.value, r.timestamp_ms) for r in decode_batch(original)
    ]
    assert [r.offset for r in decoded] == [header.base_offset + i for i in range(len(records))]
