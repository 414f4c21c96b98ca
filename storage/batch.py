"""Record batch header: the fixed binary part the broker reads and patches without decoding records.

A batch is the unit everywhere: producers build it, the log appends and replicates it, fetches return
it, consumers decode it. Layout (big-endian; the same fields and order as Kafka's v2 batch):

    offset size field
    0      8    base_offset            int64   first offset; assigned by the leader by patching
    8      4    batch_length           int32   bytes that follow this field (header rest + body)
    12     4    partition_leader_epoch int32   patched by the leader on append
    16     1    magic                  int8    MAGIC (format version of kbroker batches)
    17     4    crc                    uint32  CRC-32C (Castagnoli, as Kafka) of bytes [21, end of batch)
    21     2    attributes             int16   bits 0-2 codec, bit 3 timestamp type (1 = LogAppendTime)
    23     4    last_offset_delta      int32   offset of the last record minus base_offset
    27     8    first_timestamp        int64   timestamp of the first record (ms)
    35     8    max_timestamp          int64   largest record timestamp (ms); the broker time for LogAppendTime
    43     8    producer_id            int64   -1 when not idempotent
    51     2    producer_epoch         int16
    53     4    base_sequence          int32   sequence of the first record, -1 when not idempotent
    57     4    records_count          int32
    61     ...  body: msgpack array of records (see records.py), compressed per the codec bits

Invariants:
- The CRC covers neither base_offset, batch_length nor the leader epoch, so assigning offsets and
  epochs never touches the CRC; setting LogAppendTime rewrites attributes and max_timestamp and so
  recomputes the CRC (over the header tail; the body is only checksummed, never decoded).
- ``0 <= records_count <= last_offset_delta + 1``: compaction may leave fewer records than the
  offset span, never more.
- Nothing here decodes a record body; this module is the whole of the broker's per-batch hot path.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterator

from crc32c import crc32c

from kbroker.errors import CorruptRecordError, RecordTooLargeError

__all__ = [
    "HEADER_SIZE",
    "LOG_OVERHEAD",
    "MAGIC",
    "TIMESTAMP_TYPE_BIT",
    "CODEC_MASK",
    "CREATE_TIME",
    "LOG_APPEND_TIME",
    "BatchHeader",
    "read_header",
    "validate_batch",
    "iter_batches",
    "patched_prefix",
    "with_log_append_time",
    "compute_crc",
    "pack_header",
]

MAGIC = 2
HEADER_SIZE = 61
LOG_OVERHEAD = 12  # base_offset + batch_length: the bytes not counted by batch_length
CODEC_MASK = 0x07
TIMESTAMP_TYPE_BIT = 0x08
CREATE_TIME = 0
LOG_APPEND_TIME = 1
SUPPORTED_CODECS = frozenset({0, 1, 3, 4})  # none, gzip, lz4, zstd (snappy is not supported)
MAX_BATCH_SIZE = 1 << 30  # hard upper bound whatever the config says (length is an int32)

_HEADER = struct.Struct(">qiibIhiqqqhii")
_PREFIX = struct.Struct(">qii")  # base_offset, batch_length, leader_epoch
_CRC_AT = 17
_CRC_FROM = 21
_ATTR_AT = 21
_MAX_TS_AT = 35
assert _HEADER.size == HEADER_SIZE


@dataclass(frozen=True, slots=True)
class BatchHeader:
    """The decoded header of one batch (what the broker looks at)."""

    base_offset: int
    batch_length: int
    leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    first_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int

    @property
    def size(self) -> int:
        """Whole size of the batch in bytes, header included."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def codec(self) -> int:
        return self.attributes & CODEC_MASK

    @property
    def timestamp_type(self) -> int:
        return LOG_APPEND_TIME if self.attributes & TIMESTAMP_TYPE_BIT else CREATE_TIME

    @property
    def last_sequence(self) -> int:
        if self.base_sequence < 0:
            return -1
        return (self.base_sequence + self.last_offset_delta) & 0x7FFFFFFF


def read_header(buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    """Decode the header at ``pos`` without any validation (caller checked the length)."""
    return BatchHeader(*_HEADER.unpack_from(buf, pos))


def compute_crc(buf: bytes | bytearray | memoryview, pos: int, size: int) -> int:
    """CRC of the batch at ``pos`` spanning ``size`` bytes, over the bytes the CRC covers."""
    view = memoryview(buf)[pos + _CRC_FROM : pos + size]
    return crc32c(view)


def validate_batch(
    buf: bytes | bytearray | memoryview,
    pos: int = 0,
    *,
    check_crc: bool = True,
    max_size: int | None = None,
) -> BatchHeader:
    """Check the batch at ``pos`` is whole and intact; return its header.

    Raises ``CorruptRecordError`` for a torn, truncated or corrupt batch (wrong magic, impossible
    length or counts, CRC mismatch) and ``RecordTooLargeError`` when it exceeds ``max_size``.
    """
    available = len(buf) - pos
    if available < HEADER_SIZE:
        raise CorruptRecordError(f"truncated batch: {available} bytes at position {pos}, a header needs {HEADER_SIZE}")
    header = read_header(buf, pos)
    if header.magic != MAGIC:
        raise CorruptRecordError(f"batch at position {pos} has magic {header.magic}, expected {MAGIC}")
    size = header.size
    if size < HEADER_SIZE or size > MAX_BATCH_SIZE:
        raise CorruptRecordError(f"batch at position {pos} declares an impossible length {header.batch_length}")
    if size > available:
        raise CorruptRecordError(f"truncated batch at position {pos}: declares {size} bytes, {available} present")
    if max_size is not None and size > max_size:
        raise RecordTooLargeError(
            f"record batch of {size} bytes is larger than max.message.bytes={max_size}; "
            "send smaller batches or raise the topic's max.message.bytes"
        )
    if header.last_offset_delta < 0 or header.records_count < 0 or header.records_count > header.last_offset_delta + 1:
        raise CorruptRecordError(
            f"batch at position {pos} has inconsistent counts: {header.records_count} records "
            f"over last_offset_delta {header.last_offset_delta}"
        )
    if header.base_offset < 0:
        raise CorruptRecordError(f"batch at position {pos} has a negative base offset {header.base_offset}")
    if header.attributes & CODEC_MASK not in SUPPORTED_CODECS:
        raise CorruptRecordError(
            f"batch at position {pos} uses compression codec id {header.attributes & CODEC_MASK}; "
            "supported: 0 none, 1 gzip, 3 lz4, 4 zstd"
        )
    if check_crc and compute_crc(buf, pos, size) != header.crc:
        raise CorruptRecordError(f"batch at position {pos} (base offset {header.base_offset}) failed its CRC check")
    return header


def iter_batches(
    buf: bytes | bytearray | memoryview,
    *,
    check_crc: bool = True,
    max_size: int | None = None,
) -> Iterator[tuple[int, BatchHeader]]:
    """Yield ``(position, header)`` for each batch in ``buf``; raise on the first bad one.

    ``buf`` must hold whole batches only: a trailing partial batch is an error.
    """
    pos = 0
    end = len(buf)
    while pos < end:
        header = validate_batch(buf, pos, check_crc=check_crc, max_size=max_size)
        yield pos, header
        pos += header.size


def patched_prefix(header: BatchHeader, base_offset: int, leader_epoch: int) -> bytes:
    """The first 17 bytes of the batch (up to and including magic) with a new base offset and leader epoch.

    Writing this prefix followed by the batch's bytes from 17 on (zero-copy, ``os.writev``) gives the
    patched batch without copying the body; the CRC stays valid because it does not cover these.
    """
    return _PREFIX.pack(base_offset, header.batch_length, leader_epoch) + bytes((header.magic,))


def with_log_append_time(
    buf: bytes | bytearray | memoryview, pos: int, header: BatchHeader, timestamp_ms: int
) -> bytes:
    """The batch's full header rewritten for LogAppendTime at ``timestamp_ms`` (CRC recomputed).

    Returns the new ``HEADER_SIZE`` header bytes; the body (``buf[pos+HEADER_SIZE : pos+size]``)
    is unchanged, as in Kafka: readers take every record's time from ``max_timestamp``.
    """
    fields = list(_HEADER.unpack_from(buf, pos))
    fields[5] = header.attributes | TIMESTAMP_TYPE_BIT  # attributes
    fields[8] = timestamp_ms  # max_timestamp
    fields[4] = 0
    new_header = bytearray(_HEADER.pack(*fields))
    body = memoryview(buf)[pos + HEADER_SIZE : pos + header.size]
    crc = crc32c(body, crc32c(memoryview(new_header)[_CRC_FROM:]))
    struct.pack_into(">I", new_header, _CRC_AT, crc)
    return bytes(new_header)


def pack_header(
    *,
    base_offset: int,
    body_size: int,
    leader_epoch: int,
    attributes: int,
    last_offset_delta: int,
    first_timestamp: int,
    max_timestamp: int,
    producer_id: int,
    producer_epoch: int,
    base_sequence: int,
    records_count: int,
    body: bytes | memoryview,
) -> bytes:
    """Build a complete header for ``body`` (used by builders and the log cleaner)."""
    header = bytearray(
        _HEADER.pack(
            base_offset,
            HEADER_SIZE - LOG_OVERHEAD + body_size,
            leader_epoch,
            MAGIC,
            0,
            attributes,
            last_offset_delta,
            first_timestamp,
            max_timestamp,
            producer_id,
            producer_epoch,
            base_sequence,
            records_count,
        )
    )
    crc = crc32c(body, crc32c(memoryview(header)[_CRC_FROM:]))
    struct.pack_into(">I", header, _CRC_AT, crc)
    return bytes(header)
