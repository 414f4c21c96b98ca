"""docs/protocol.md stays true: every client message and struct has a table with the code's fields,
types and ranges in order; the error table is errors.py; a client written from the page alone
(zmq + msgpack + struct, no kbroker) talks to a real I/O thread."""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any, Callable, Iterator

import msgpack
import pytest
import zmq

from kbroker import errors
from kbroker.storage.records import decode_batch
from kbroker.transport import messages_acls, messages_admin, messages_client, messages_groups
from kbroker.transport.envelope import Envelope
from kbroker.transport.io_thread import IOThread
from kbroker.transport.messages import (
    MESSAGE_TYPES,
    Produce,
    ProducePartitionResponse,
    ProduceResponse,
    ProduceTopicResponse,
)
from kbroker.transport.specs import BoolSpec, IntSpec, OptionalSpec, PayloadSpec, StrSpec, StructSpec, TupleSpec, spec_for

DOC = Path(__file__).resolve().parents[3] / "docs" / "protocol.md"
CLIENT_TYPES = [
    n for m in (messages_client, messages_admin, messages_groups, messages_acls) for n in m.__all__ if n in MESSAGE_TYPES
]
_POWERS = {2**63 - 1: "2^63-1", 2**31 - 1: "2^31-1", 2**15 - 1: "2^15-1", -(2**63): "-2^63", -(2**31): "-2^31", -(2**15): "-2^15"}


def sections() -> dict[str, list[tuple[str, str, str]]]:
    """Heading name -> table rows (field, type, range)."""
    out: dict[str, list[tuple[str, str, str]]] = {}
    current = None
    for line in DOC.read_text().splitlines():
        heading = re.match(r"^#{3,4} (\w+)$", line)
        if heading:
            current = out.setdefault(heading.group(1), [])
            continue
        row = re.match(r"^\| `(\w+)` \|\s*([^|]*?)\s*\|\s*([^|]*?)\s*\|", line)
        if row and current is not None:
            current.append((row.group(1), row.group(2).strip(), row.group(3).strip()))
    return out


def wire_type(spec: Any) -> tuple[str, str]:
    if isinstance(spec, IntSpec):
        if spec.choices is not None:
            return "int", "one of " + ", ".join(map(str, spec.choices))
        return "int", f"{_POWERS.get(spec.lo, spec.lo)} .. {_POWERS.get(spec.hi, spec.hi)}"
    if isinstance(spec, BoolSpec):
        return "bool", ""
    if isinstance(spec, StrSpec):
        return "str", f"≤ {spec.max_len} chars"
    if isinstance(spec, OptionalSpec):
        kind, limits = wire_type(spec.inner)
        return f"{kind}, or nil", limits
    if isinstance(spec, TupleSpec):
        kind, limits = wire_type(spec.item)
        return f"array of {kind}", limits + (" each" if kind == "str" else "")
    if isinstance(spec, PayloadSpec):
        return "frame index", "1 .. n"
    assert isinstance(spec, StructSpec)
    return spec.name, ""


def reachable_structs() -> Iterator[StructSpec]:
    seen: set[type] = set()
    todo = [spec_for(MESSAGE_TYPES[name]) for name in CLIENT_TYPES]
    while todo:
        spec = todo.pop()
        if spec.cls in seen:
            continue
        seen.add(spec.cls)
        yield spec
        for _, field in spec.fields:
            while isinstance(field, (OptionalSpec, TupleSpec)):
                field = field.inner if isinstance(field, OptionalSpec) else field.item
            if isinstance(field, StructSpec):
                todo.append(field)


@pytest.mark.parametrize("spec", list(reachable_structs()), ids=lambda s: s.name)
def test_every_client_structure_is_documented_field_by_field(spec: StructSpec) -> None:
    doc = sections()
    assert spec.name in doc, f"docs/protocol.md has no section for {spec.name}"
    documented = doc[spec.name]
    expected = [(name, *wire_type(field)) for name, field in spec.fields]
    assert documented == expected


def test_internal_types_are_not_presented_as_client_messages() -> None:
    doc = sections()
    internal = set(MESSAGE_TYPES) - set(CLIENT_TYPES)
    assert not internal & set(doc)


def test_error_table_is_errors_py() -> None:
    rows = re.findall(r"^\| (-?\d+) \| `(\w+)` \| (yes|no) \|", DOC.read_text(), flags=re.MULTILINE)
    documented = {int(code): (name, retriable == "yes") for code, name, retriable in rows}
    actual = {code: (cls.__name__, cls.retriable) for code, cls in errors._BY_CODE.items()}
    assert documented == actual


# --- a client written from the page alone --------------------------------------------------


def crc32c(data: bytes, crc: int = 0) -> int:
    """The plain definition from section 7.3 of docs/protocol.md."""
    crc ^= 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def test_crc32c_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"6789", crc32c(b"12345")) == 0xE3069283


def build_batch_by_hand(records: list[list[Any]], first_timestamp: int) -> bytes:
    """Section 7.3 of docs/protocol.md: struct + msgpack and the CRC-32C defined there, no kbroker."""
    body = msgpack.packb(records, use_bin_type=True)
    header = bytearray(
        struct.pack(
            ">qiibIhiqqqhii",
            0,
            49 + len(body),
            -1,
            2,
            0,
            0,
            len(records) - 1,
            first_timestamp,
            first_timestamp + max(r[1] for r in records),
            -1,
            -1,
            -1,
            len(records),
        )
    )
    struct.pack_into(">I", header, 17, crc32c(body, crc32c(bytes(header[21:]))))
    return bytes(header) + body


def test_a_foreign_client_produces_by_the_book(make_io: Callable[..., IOThread]) -> None:
    received: list[list[Any]] = []

    def gateway(envelope: Envelope) -> None:
        message = envelope.message
        assert isinstance(message, Produce)
        partition = message.topics[0].partitions[0]
        records = decode_batch(partition.records)  # the storage engine's own reader and CRC check
        received.append(records)
        envelope.reply(
            ProduceResponse(
                (ProduceTopicResponse("orders", (ProducePartitionResponse(0, 0, None, 41, -1, 0, -1, -1),)),), 0
            )
        )

    io = make_io()
    io.register("gateway", gateway, default=True)
    batch = build_batch_by_hand([[0, 0, b"key", b"value", [["trace", b"abc"]]], [1, 5, None, None, []]], 1_700_000_000_000)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(io.endpoint)
        header = {
            "v": 1,
            "type": "Produce",
            "id": 1,
            "body": {
                "client_id": "demo",
                "acks": 1,
                "timeout_ms": 30000,
                "topics": [{"name": "orders", "partitions": [{"partition": 0, "records": 1}]}],
            },
        }
        sock.send_multipart([msgpack.packb(header, use_bin_type=True), batch])
        assert sock.poll(10_000)
        frames = sock.recv_multipart()
    finally:
        sock.close(linger=0)
    reply = msgpack.unpackb(frames[0], raw=False)
    assert reply["type"] == "ProduceResponse" and reply["id"] == 1 and "to" not in reply
    part = reply["body"]["topics"][0]["partitions"][0]
    assert part["error_code"] == 0 and part["base_offset"] == 41
    [records] = received
    assert [(r.offset, r.timestamp_ms, r.key, r.value, r.headers) for r in records] == [
        (0, 1_700_000_000_000, b"key", b"value", [("trace", b"abc")]),
        (1, 1_700_000_000_005, None, None, []),
    ]
