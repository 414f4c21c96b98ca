"""How ``kbroker consume`` prints one record: ``--format text`` or ``--format json``.

    text   VALUE, or KEY<TAB>VALUE with --print-key; raw bytes; a null key or value is ``null``
    json   one JSON object per line: topic, partition, offset, timestamp_ms, timestamp_type,
           key, value, headers ([[name, value], ...]); bytes as UTF-8 text when they decode,
           else as {"base64": "..."}; nulls as JSON null

Pure: bytes in, bytes out.
"""

from __future__ import annotations

import base64
import enum
import json
from typing import Any

__all__ = ["RecordFormat", "format_record"]


class RecordFormat(str, enum.Enum):
    text = "text"
    json = "json"


def _json_bytes(value: bytes | None) -> Any:
    if value is None:
        return None
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(value).decode("ascii")}


def format_record(record: Any, fmt: RecordFormat = RecordFormat.text, *, print_key: bool = False) -> bytes:
    """One output line (with its newline) for ``record``."""
    if fmt == RecordFormat.json:
        doc = {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "timestamp_ms": record.timestamp_ms,
            "timestamp_type": str(record.timestamp_type),
            "key": _json_bytes(record.key),
            "value": _json_bytes(record.value),
            "headers": [[name, _json_bytes(value)] for name, value in record.headers],
        }
        return json.dumps(doc, ensure_ascii=False).encode("utf-8") + b"\n"
    value = b"null" if record.value is None else bytes(record.value)
    if print_key:
        key = b"null" if record.key is None else bytes(record.key)
        return key + b"\t" + value + b"\n"
    return value + b"\n"
