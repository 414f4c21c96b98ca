"""Turning the record batches of a fetch response into ``Record`` objects for one partition.

A fetch answer for a partition holds whole batches starting with the one that contains
``fetch_offset`` (so its first records may lie below it) and may end with a batch cut short by
``max_bytes`` (docs/protocol.md section 3). This module:

- validates every whole batch (CRC included; a corrupt one raises ``CorruptRecordError``) and
  decodes its body (layout in ``storage/records.py``) straight into ``Record`` objects. This is
  what ``storage.records.decode_batches`` does, minus its intermediate ``LogRecord`` per record,
  which costs ~1.2 us of a ~2.7 us record; the tests hold the two to the same output;
- skips records below ``fetch_offset`` and ignores a partial trailing batch, as Kafka clients do;
- reports ``next_offset``: the offset after the last whole batch. This is where the next fetch
  starts, even when compaction removed the batch's last records or all of them (a batch's offset
  span is ``last_offset_delta + 1`` whatever its record count), so a consumer never fetches the
  same emptied batch forever.

Records come out as ``Record`` named tuples built with ``tuple.__new__`` (~0.15 us; a frozen
dataclass with 8 fields cost ~1 us through its ``__init__``, ~0.4 us setting its slots directly),
headers as a tuple of ``(name, value)`` pairs, ``()`` when there are none: a record holding only
strings, bytes and numbers is dropped from the garbage collector's watch, which halves the cost
per record of a consumer that keeps records for a while (a list per record kept every record
under the collector's eye).

Pure: no sockets, no threads.
"""

from __future__ import annotations

from typing import NamedTuple

import msgpack

from kbroker.errors import CorruptRecordError
from kbroker.storage.batch import CODEC_MASK, HEADER_SIZE, BatchHeader, read_header, validate_batch
from kbroker.storage.compression import decompress
from kbroker.transport.client.types import Record, TimestampType

__all__ = ["FetchedRecords", "records_from_fetch", "make_record"]

_TIMESTAMP_TYPES = (TimestampType.CREATE_TIME, TimestampType.LOG_APPEND_TIME)
_new_record = tuple.__new__  # Record is a NamedTuple: build it without its Python __new__


class FetchedRecords(NamedTuple):
    records: list[Record]  # offsets >= fetch_offset, in offset order
    next_offset: int  # where the next fetch starts (fetch_offset if no whole batch came)
    partial_tail: bool  # a trailing batch was cut short (harmless; it comes whole next time)


def make_record(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: list,
    timestamp_ms: int,
    timestamp_type: TimestampType,
) -> Record:
    """A ``Record``, equal to ``Record(...)``, built ~3x faster (for the consumer's hot path)."""
    return _new_record(Record, (topic, partition, offset, key, value, headers, timestamp_ms, timestamp_type))


def records_from_fetch(
    topic: str,
    partition: int,
    data: bytes | bytearray | memoryview | None,
    fetch_offset: int,
) -> FetchedRecords:
    """The records at or after ``fetch_offset`` in ``data`` (a FetchPartitionResponse's ``records``)."""
    out: list[Record] = []
    next_offset = fetch_offset
    if not data:
        return FetchedRecords(out, next_offset, False)
    view = memoryview(data)
    end = len(view)
    pos = 0
    partial = False
    while pos < end:
        remaining = end - pos
        if remaining < HEADER_SIZE or read_header(view, pos).size > remaining:
            partial = True  # cut short by max_bytes: the next fetch brings it whole
            break
        header = validate_batch(view, pos)
        if header.next_offset > fetch_offset and header.records_count:
            _decode_into(out, topic, partition, view, pos, header, fetch_offset)
        if header.next_offset > next_offset:
            next_offset = header.next_offset
        pos += header.size
    return FetchedRecords(out, next_offset, partial)


def _decode_into(
    out: list[Record], topic: str, partition: int, view: memoryview, pos: int, header: BatchHeader, fetch_offset: int
) -> None:
    """Append the records of the validated batch at ``pos`` with offsets >= ``fetch_offset``."""
    codec = header.attributes & CODEC_MASK
    raw = view[pos + HEADER_SIZE : pos + header.size]
    try:
        items = msgpack.unpackb(decompress(codec, raw) if codec else raw, use_list=False, raw=False)
    except CorruptRecordError:
        raise
    except Exception as exc:  # msgpack and the codecs raise several unrelated exception types
        raise CorruptRecordError(f"batch at base offset {header.base_offset} has an undecodable body: {exc}") from exc
    if not isinstance(items, tuple) or len(items) != header.records_count:
        raise CorruptRecordError(
            f"batch at base offset {header.base_offset} declares {header.records_count} records, body holds "
            f"{len(items) if isinstance(items, tuple) else 'no list'}"
        )
    base = header.base_offset
    ts_type = _TIMESTAMP_TYPES[header.timestamp_type]
    log_append = ts_type is TimestampType.LOG_APPEND_TIME
    first_ts = header.first_timestamp
    max_ts = header.max_timestamp
    append = out.append
    new_record = _new_record
    try:
        for delta, ts_delta, key, value, headers in items:
            offset = base + delta
            if offset < fetch_offset:
                continue
            append(new_record(Record, (
                topic, partition, offset, key, value, tuple([(h[0], h[1]) for h in headers]) if headers else (),
                max_ts if log_append else first_ts + ts_delta, ts_type,
            )))  # fmt: skip
    except (TypeError, ValueError, IndexError) as exc:
        raise CorruptRecordError(f"batch at base offset {header.base_offset} has a malformed record: {exc}") from exc
