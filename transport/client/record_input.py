"""Checking what a user hands to ``Producer.send`` before it enters a batch.

Keys and values are bytes or None; ``str`` is encoded as UTF-8 and ``bytearray``/``memoryview``
are copied to ``bytes``. Headers are a list of ``(str, bytes)`` pairs (a ``str`` value is
encoded, None is kept, as Kafka allows null header values). Sizes are estimated the way
``storage.records.BatchBuilder`` estimates them, so "does it fit" agrees with the builder.

Pure, no state.
"""

from __future__ import annotations

from typing import Iterable

from kbroker.errors import InvalidRecordError, InvalidTimestampError
from kbroker.storage.batch import HEADER_SIZE

__all__ = [
    "RECORD_OVERHEAD",
    "HEADER_OVERHEAD",
    "BATCH_OVERHEAD",
    "to_bytes",
    "check_headers",
    "check_timestamp",
]

RECORD_OVERHEAD = 16  # BatchBuilder's estimate per record, on top of key and value bytes
HEADER_OVERHEAD = 8  # ... per header, on top of its name and value
BATCH_OVERHEAD = HEADER_SIZE + 5  # an empty batch: the fixed header plus the msgpack array header


def to_bytes(name: str, data: object) -> bytes | None:
    """``data`` as bytes (``str`` -> UTF-8); None stays None; other types are an ``InvalidRecordError``."""
    if data is None or data.__class__ is bytes:
        return data  # type: ignore[return-value]
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise InvalidRecordError(
        f"record {name} must be bytes, str or None, not {type(data).__name__}; serialize it first "
        f"(e.g. json.dumps(...).encode())"
    )


def check_headers(headers: Iterable[object]) -> tuple[list[tuple[str, bytes | None]], int]:
    """Validated headers as (str, bytes) pairs, and their estimated size in a batch."""
    if isinstance(headers, (str, bytes, dict)):
        raise InvalidRecordError(
            f"record headers must be a list of (str, bytes) pairs, not {type(headers).__name__}"
            + ("; use list(headers.items())" if isinstance(headers, dict) else "")
        )
    out: list[tuple[str, bytes | None]] = []
    size = 0
    for item in headers:
        try:
            name, value = item  # type: ignore[misc]
        except (TypeError, ValueError):
            raise InvalidRecordError(f"record headers must be (str, bytes) pairs, got {item!r}") from None
        if not isinstance(name, str):
            raise InvalidRecordError(f"record header names must be str, got {type(name).__name__}")
        value = to_bytes("header value", value)
        out.append((name, value))
        size += HEADER_OVERHEAD + len(name) + (len(value) if value else 0)
    return out, size


def check_timestamp(timestamp_ms: object) -> int:
    """An explicit record timestamp: a non-negative int of milliseconds since the Unix epoch."""
    if timestamp_ms.__class__ is not int:
        if isinstance(timestamp_ms, bool) or not isinstance(timestamp_ms, int):
            raise InvalidTimestampError(
                f"timestamp_ms must be an int (milliseconds since the Unix epoch), got {timestamp_ms!r}"
            )
        timestamp_ms = int(timestamp_ms)
    if timestamp_ms < 0:
        raise InvalidTimestampError(f"timestamp_ms must not be negative, got {timestamp_ms}")
    return timestamp_ms
