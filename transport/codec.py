"""Messages <-> ZeroMQ multipart frames, apart from any socket.

Wire layout of one message (docs/protocol.md is the full reference):

    frame 0      msgpack map  {"v": 1, "type": "Produce", "id": 42, "to": "gateway", "body": {...}}
    frame 1..n   raw payloads (record batches), referenced from the body by frame index

- ``v`` is the protocol version (1). ``type`` is a registered message type name (its class name).
  ``id`` is the correlation id (0 .. 2**63-1), copied into the reply. ``to`` names the actor the
  message is for; omitted (or nil) means the endpoint's default actor (a worker's gateway).
- ``body`` is a map with exactly the message's fields; nested structs are maps too, lists are
  arrays, ``Payload`` fields hold the index of their frame.

Invariants:
- ``decode`` raises ``kbroker.errors.InvalidRequestError`` for anything a hostile or buggy peer
  can send, with a message naming the field (``Produce.topics[0].partitions[1].records: ...``),
  and never any other exception type.
- Payload bytes are never re-encoded or copied: ``encode`` puts the caller's buffer object in the
  frame list as it is; ``decode`` hands out ``memoryview``s over the received frames.
- Every payload frame is referenced by exactly one field; an unreferenced or twice-referenced
  frame is an error, so the bytes a message holds are exactly its frames.
- Field rules (types, ranges, lengths) come from the annotations in ``schema.py``, compiled once
  per class by ``specs.py``. Pure: no sockets, no threads; safe to call from any thread.
"""

from __future__ import annotations

import threading
from typing import Any, NamedTuple, Sequence

import msgpack

from kbroker.errors import InvalidRequestError
from kbroker.transport import messages as _messages  # noqa: F401  (registers every message type)
from kbroker.transport.schema import INT64_MAX, MESSAGE_TYPES, Buffer, Message
from kbroker.transport.specs import DecodeContext, SpecError, describe, spec_for

__all__ = [
    "PROTOCOL_VERSION",
    "MAX_HEADER_BYTES",
    "MAX_PAYLOAD_FRAMES",
    "ACTOR_NAME_MAX",
    "Decoded",
    "encode",
    "decode",
    "peek_correlation_id",
]

PROTOCOL_VERSION = 1
MAX_HEADER_BYTES = 1 << 20
"""Default limit on frame 0 for requests; clients decoding responses pass a larger one."""
MAX_PAYLOAD_FRAMES = 10_000
ACTOR_NAME_MAX = 255
_HEADER_KEYS = frozenset({"v", "type", "id", "to", "body"})
_REQUIRED_HEADER_KEYS = ("v", "type", "id", "body")


class Decoded(NamedTuple):
    """One decoded message with its envelope fields."""

    message: Message
    correlation_id: int
    to: str | None
    payload_bytes: int  # total size of frames 1..n


for _cls in MESSAGE_TYPES.values():  # compile every spec at import: a schema mistake fails early
    spec_for(_cls)


# --- Encoding -------------------------------------------------------------------------------


def encode(message: Message, correlation_id: int, to: str | None = None) -> list[Buffer]:
    """Frames for ``message``: the msgpack header, then its payloads (the caller's own objects)."""
    cls = type(message)
    if MESSAGE_TYPES.get(cls.__name__) is not cls:
        raise TypeError(f"{cls.__name__} is not a registered message type")
    frames: list[Buffer] = [b""]
    body = spec_for(cls).encode(message, frames)
    header: dict[str, Any] = {"v": PROTOCOL_VERSION, "type": cls.__name__, "id": correlation_id, "body": body}
    if to is not None:
        header["to"] = to
    frames[0] = _packer().pack(header)
    return frames


_local = threading.local()


def _packer() -> msgpack.Packer:
    try:
        return _local.packer
    except AttributeError:
        packer = _local.packer = msgpack.Packer(use_bin_type=True, autoreset=True)
        return packer


# --- Decoding -------------------------------------------------------------------------------


def decode(
    frames: Sequence[Any],
    *,
    max_header_bytes: int = MAX_HEADER_BYTES,
    max_payload_frames: int = MAX_PAYLOAD_FRAMES,
) -> Decoded:
    """Validate and decode one message; raise ``InvalidRequestError`` naming what is wrong."""
    try:
        return _decode(frames, max_header_bytes, max_payload_frames)
    except InvalidRequestError:
        raise
    except Exception as exc:  # a bug here must still look like a rejected request to the peer
        raise InvalidRequestError(f"message could not be decoded ({type(exc).__name__}: {exc})") from exc


def _decode(frames: Sequence[Any], max_header_bytes: int, max_payload_frames: int) -> Decoded:
    if not isinstance(frames, (list, tuple)):
        raise InvalidRequestError(f"frames: expected a list of frames, got {type(frames).__name__}")
    if not frames:
        raise InvalidRequestError("frames: empty message; frame 0 must be the msgpack header")
    if len(frames) - 1 > max_payload_frames:
        raise InvalidRequestError(f"frames: {len(frames) - 1} payload frames, more than the limit of {max_payload_frames}")
    buffers = [_as_buffer(frame, i) for i, frame in enumerate(frames)]
    header = _unpack_header(buffers[0], max_header_bytes)
    cls, correlation_id, to = _check_header(header)
    ctx = DecodeContext(buffers)
    try:
        message = spec_for(cls).decode(header["body"], ctx)
    except SpecError as bad:
        raise InvalidRequestError(f"{bad.where(cls.__name__)}: {bad.reason}") from None
    for index in range(1, len(buffers)):
        if not ctx.used[index]:
            raise InvalidRequestError(f"frames[{index}]: payload frame not referenced by the {cls.__name__} body")
    payload_bytes = 0
    for index in range(1, len(buffers)):
        payload_bytes += len(buffers[index])
    return Decoded(message, correlation_id, to, payload_bytes)


def _as_buffer(frame: Any, index: int) -> Buffer:
    if type(frame) is bytes:
        return frame
    try:
        view = memoryview(frame)  # zmq.Frame, bytearray, memoryview: no copy
    except TypeError:
        raise InvalidRequestError(f"frames[{index}]: expected bytes, got {type(frame).__name__}") from None
    if not view.c_contiguous:
        raise InvalidRequestError(f"frames[{index}]: buffer is not contiguous")
    if view.ndim != 1 or view.format != "B":
        try:
            view = view.cast("B")
        except (TypeError, ValueError):
            raise InvalidRequestError(f"frames[{index}]: not a plain byte buffer") from None
    return view


def _unpack_header(buffer: Buffer, max_header_bytes: int) -> Any:
    size = len(buffer)
    if size == 0:
        raise InvalidRequestError("header: frame 0 is empty; it must be a msgpack map")
    if size > max_header_bytes:
        raise InvalidRequestError(f"header: {size} bytes, more than the limit of {max_header_bytes}")
    try:
        return msgpack.unpackb(buffer, raw=False, use_list=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types (ValueError, ExtraData, ...)
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise InvalidRequestError(f"header: frame 0 is not valid msgpack ({detail})") from None


def _check_header(header: Any) -> tuple[type, int, str | None]:
    if type(header) is not dict:
        raise InvalidRequestError(f"header: expected a map, got {describe(header)}")
    if header.keys() - _HEADER_KEYS:
        key = sorted(map(repr, header.keys() - _HEADER_KEYS))[0]
        raise InvalidRequestError(f"header.{key}: unknown key (a header has v, type, id, to, body)")
    for key in _REQUIRED_HEADER_KEYS:
        if key not in header:
            raise InvalidRequestError(f"header.{key}: required key is missing")
    version = header["v"]
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise InvalidRequestError(
            f"header.v: unsupported protocol version {version!r}; this broker speaks version {PROTOCOL_VERSION}"
        )
    type_name = header["type"]
    if type(type_name) is not str:
        raise InvalidRequestError(f"header.type: expected a string, got {describe(type_name)}")
    cls = MESSAGE_TYPES.get(type_name)
    if cls is None:
        raise InvalidRequestError(f"header.type: unknown message type {type_name[:100]!r}")
    correlation_id = header["id"]
    if type(correlation_id) is not int:
        raise InvalidRequestError(f"header.id: expected an integer, got {describe(correlation_id)}")
    if not 0 <= correlation_id <= INT64_MAX:
        raise InvalidRequestError(f"header.id: must be between 0 and {INT64_MAX}, got {correlation_id}")
    to = header.get("to")
    if to is not None:
        if type(to) is not str:
            raise InvalidRequestError(f"header.to: expected a string, got {describe(to)}")
        if len(to) > ACTOR_NAME_MAX:
            raise InvalidRequestError(f"header.to: {len(to)} characters, more than the limit of {ACTOR_NAME_MAX}")
    return cls, correlation_id, to


def peek_correlation_id(frames: Sequence[Any], *, max_header_bytes: int = MAX_HEADER_BYTES) -> int:
    """Best effort: the correlation id of a message that failed to decode, else 0."""
    try:
        header = _unpack_header(_as_buffer(frames[0], 0), max_header_bytes)
        correlation_id = header["id"]
        if type(correlation_id) is int and 0 <= correlation_id <= INT64_MAX:
            return correlation_id
    except Exception:
        pass
    return 0
