"""The vocabulary wire messages are written in: named field types with their limits, and the
decorators that declare messages.

A message is a frozen, slotted dataclass whose fields are annotated with the named types below.
The codec (``codec.py``) reads the annotations once per class and derives both the encoder and
the validating decoder from them, so a limit written here is a limit enforced on the wire:

    int fields      Annotated[int, Range(lo, hi)] or Annotated[int, OneOf(...)]   never a bool
    bool fields     bool                                                           never an int
    str fields      Annotated[str, MaxLen(n)]        n characters (after UTF-8 decoding)
    optional        X | None                         msgpack nil
    lists           tuple[X, ...]                    msgpack array, decoded to a tuple
    nested structs  a @struct class                  msgpack map with exactly its field names
    payloads        Payload                          bytes in their own ZeroMQ frame; the body
                                                     holds the frame's index (1..n)

Invariants:
- Every field of every message is required on the wire (no implicit defaults), so a client in
  another language sees the whole schema in docs/protocol.md and nothing is guessed.
- A message type's wire name is its class name and never changes once published; registering
  two classes under one name is an error at import time.
- Pure: no sockets, no threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, TypeVar

__all__ = [
    "Range",
    "OneOf",
    "MaxLen",
    "PAYLOAD",
    "Buffer",
    "Payload",
    "Message",
    "MESSAGE_TYPES",
    "message",
    "struct",
    "INT16_MIN",
    "INT16_MAX",
    "INT32_MIN",
    "INT32_MAX",
    "INT64_MIN",
    "INT64_MAX",
    "NAME_MAX",
    "TEXT_MAX",
    "Int16",
    "Int32",
    "Int64",
    "Offset",
    "FetchOffset",
    "Epoch",
    "PartitionId",
    "PartitionCount",
    "ReplicationFactor",
    "WorkerId",
    "ErrorCode",
    "TimestampMs",
    "ByteCount",
    "DurationMs",
    "Acks",
    "IsolationLevel",
    "ProducerId",
    "ProducerEpoch",
    "Name",
    "Text",
    "Endpoint",
]


@dataclass(frozen=True, slots=True)
class Range:
    """An int field holds ``lo <= value <= hi``."""

    lo: int
    hi: int


@dataclass(frozen=True, slots=True)
class OneOf:
    """An int field holds one of ``values``."""

    values: tuple[int, ...]

    def __init__(self, *values: int) -> None:
        object.__setattr__(self, "values", tuple(values))


@dataclass(frozen=True, slots=True)
class MaxLen:
    """A str field holds at most ``n`` characters."""

    n: int


class _PayloadMarker:
    __slots__ = ()

    def __repr__(self) -> str:
        return "PAYLOAD"


PAYLOAD = _PayloadMarker()
"""Marks a field carried as a separate raw frame (see ``Payload``)."""

INT16_MIN, INT16_MAX = -(2**15), 2**15 - 1
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
NAME_MAX = 1024  # topic names, client ids, config names: the broker applies its own stricter rules
TEXT_MAX = 65536  # error messages, config values

Buffer = bytes | bytearray | memoryview
"""What a payload is in memory: any contiguous bytes-like object (a ``zmq.Frame`` works too when
encoding). Decoded payloads are read-only ``memoryview``s over the received frame: no copy."""

Payload = Annotated[Buffer, PAYLOAD]

Int16 = Annotated[int, Range(INT16_MIN, INT16_MAX)]
Int32 = Annotated[int, Range(INT32_MIN, INT32_MAX)]
Int64 = Annotated[int, Range(INT64_MIN, INT64_MAX)]
Offset = Annotated[int, Range(-1, INT64_MAX)]
"""A log offset; -1 where unknown or not applicable."""
FetchOffset = Annotated[int, Range(0, INT64_MAX)]
Epoch = Annotated[int, Range(-1, INT32_MAX)]
"""A leader epoch (or controller / partition epoch); -1 where unknown."""
PartitionId = Annotated[int, Range(0, INT32_MAX)]
PartitionCount = Annotated[int, Range(-1, INT32_MAX)]
"""A number of partitions; -1 asks for the broker default."""
ReplicationFactor = Annotated[int, Range(-1, INT16_MAX)]
"""A replication factor; -1 asks for the broker default."""
WorkerId = Annotated[int, Range(-1, INT32_MAX)]
"""A worker (Kafka: broker) id; -1 for none (no leader, no controller)."""
ErrorCode = Annotated[int, Range(INT16_MIN, INT16_MAX)]
"""0 for success, else a code from kbroker.errors."""
TimestampMs = Annotated[int, Range(-1, INT64_MAX)]
"""Milliseconds since the Unix epoch; -1 where unknown."""
ByteCount = Annotated[int, Range(0, INT32_MAX)]
DurationMs = Annotated[int, Range(0, INT32_MAX)]
Acks = Annotated[int, OneOf(-1, 0, 1)]
"""0: no response; 1: the leader wrote it; -1 (all): every in-sync replica has it."""
IsolationLevel = Annotated[int, OneOf(0, 1)]
"""0: read uncommitted (up to the high watermark); 1: read committed (up to the last stable offset)."""
ProducerId = Annotated[int, Range(-1, INT64_MAX)]
ProducerEpoch = Annotated[int, Range(-1, INT16_MAX)]
Name = Annotated[str, MaxLen(NAME_MAX)]
Text = Annotated[str, MaxLen(TEXT_MAX)]
Endpoint = Annotated[str, MaxLen(NAME_MAX)]
"""A ZeroMQ endpoint such as ``tcp://10.0.0.5:7093``."""


class Message:
    """Base of every registered message type (requests, responses and internal messages)."""

    __slots__ = ()


MESSAGE_TYPES: dict[str, type[Message]] = {}
"""Wire name -> message class, filled by ``@message``."""

_T = TypeVar("_T")


def struct(cls: type[_T]) -> type[_T]:
    """Declare a nested part of a message: a frozen, slotted dataclass, not sendable on its own."""
    return dataclass(frozen=True, slots=True)(cls)


def message(cls: type[_T]) -> type[_T]:
    """Declare a message type: frozen, slotted dataclass registered under its class name."""
    if not issubclass(cls, Message):
        raise TypeError(f"{cls.__name__} must subclass Message")
    built = dataclass(frozen=True, slots=True)(cls)
    name = built.__name__
    if name in MESSAGE_TYPES:
        raise RuntimeError(f"message type {name!r} registered twice")
    MESSAGE_TYPES[name] = built
    return built

