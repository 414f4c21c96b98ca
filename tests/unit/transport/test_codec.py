"""Tests for kbroker.transport.codec: round trips of every message type, zero-copy payloads, and
hostile input (every bad case is an InvalidRequestError naming the field, never anything else)."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kbroker.errors import InvalidRequestError
from kbroker.transport import codec
from kbroker.transport.codec import MAX_HEADER_BYTES, decode, encode, peek_correlation_id
from kbroker.transport.messages import (
    MESSAGE_TYPES,
    DescribeCluster,
    ErrorResponse,
    Fetch,
    FetchPartitionResponse,
    FetchResponse,
    FetchTopicResponse,
    Produce,
    ProducePartition,
    ProduceTopic,
    ReplicaAppend,
)
from kbroker.transport.specs import BoolSpec, IntSpec, OptionalSpec, PayloadSpec, StrSpec, StructSpec, TupleSpec, spec_for

# --- strategies derived from the compiled specs ---------------------------------------------


def strategy_for(spec: Any) -> st.SearchStrategy[Any]:
    if isinstance(spec, IntSpec):
        if spec.choices is not None:
            return st.sampled_from(spec.choices)
        return st.integers(spec.lo, spec.hi)
    if isinstance(spec, BoolSpec):
        return st.booleans()
    if isinstance(spec, StrSpec):
        return st.text(max_size=min(spec.max_len, 12))
    if isinstance(spec, OptionalSpec):
        return st.none() | strategy_for(spec.inner)
    if isinstance(spec, TupleSpec):
        return st.lists(strategy_for(spec.item), max_size=3).map(tuple)
    if isinstance(spec, PayloadSpec):
        return st.binary(max_size=64)
    if isinstance(spec, StructSpec):
        return st.builds(spec.cls, *[strategy_for(field) for _, field in spec.fields])
    raise AssertionError(f"no strategy for {spec!r}")


any_message = st.sampled_from(sorted(MESSAGE_TYPES)).flatmap(lambda name: strategy_for(spec_for(MESSAGE_TYPES[name])))


def produce(records: bytes = b"batch-bytes") -> Produce:
    return Produce("client-1", -1, 30_000, (ProduceTopic("orders", (ProducePartition(0, records),)),))


def valid_header(**overrides: Any) -> dict[str, Any]:
    header = {
        "v": 1,
        "type": "Produce",
        "id": 7,
        "to": "gateway",
        "body": {
            "client_id": "c",
            "acks": 1,
            "timeout_ms": 1000,
            "topics": [{"name": "t", "partitions": [{"partition": 0, "records": 1}]}],
        },
    }
    header.update(overrides)
    return header


def frames_of(header: Any, *payloads: bytes) -> list[bytes]:
    return [msgpack.packb(header, use_bin_type=True), *payloads]


def rejected(frames: Any, **kwargs: Any) -> str:
    with pytest.raises(InvalidRequestError) as info:
        decode(frames, **kwargs)
    return info.value.message


# --- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MESSAGE_TYPES))
def test_every_message_type_round_trips(name: str) -> None:
    @settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow], deadline=None)
    @given(strategy_for(spec_for(MESSAGE_TYPES[name])), st.integers(0, 2**63 - 1), st.none() | st.text(max_size=20))
    def check(message: Any, correlation_id: int, to: str | None) -> None:
        frames = encode(message, correlation_id, to)
        decoded = decode(frames)
        assert decoded.message == message
        assert type(decoded.message) is type(message)
        assert decoded.correlation_id == correlation_id
        assert decoded.to == to
        assert decoded.payload_bytes == sum(len(f) for f in frames[1:])

    check()


@given(any_message)
@settings(max_examples=100, deadline=None)
def test_round_trip_through_zmq_frames(message: Any) -> None:
    frames = [zmq.Frame(bytes(f)) for f in encode(message, 1)]
    assert decode(frames).message == message


def test_messages_are_frozen_and_slotted() -> None:
    message = produce()
    with pytest.raises(AttributeError):
        message.acks = 0  # type: ignore[misc]
    assert not hasattr(message, "__dict__")


def test_payloads_are_neither_copied_on_encode_nor_on_decode() -> None:
    payload = b"x" * 100_000
    frames = encode(produce(payload), 3)
    assert frames[1] is payload
    zmq_frames = [zmq.Frame(frames[0]), zmq.Frame(payload)]
    records = decode(zmq_frames).message.topics[0].partitions[0].records
    assert isinstance(records, memoryview) and records.obj is zmq_frames[1]
    assert records == payload
    from_bytes = decode(frames).message.topics[0].partitions[0].records
    assert from_bytes is payload


def test_payload_frames_follow_body_order() -> None:
    message = ReplicaAppend("t", 0, 1, 2, 0, (b"a", b"bb", b"ccc"), 0, 0)
    frames = encode(message, 1)
    assert frames[1:] == [b"a", b"bb", b"ccc"]
    assert msgpack.unpackb(frames[0])["body"]["batches"] == [1, 2, 3]


def test_optional_payload_none_uses_no_frame() -> None:
    part = FetchPartitionResponse(0, 6, "not leader", -1, -1, -1, 2, 5, None)
    message = FetchResponse(0, 0, (FetchTopicResponse("t", (part,)),))
    frames = encode(message, 9)
    assert len(frames) == 1
    assert decode(frames).message == message


def test_header_layout() -> None:
    header = msgpack.unpackb(encode(produce(), 42, "gateway")[0])
    assert header == {
        "v": 1,
        "type": "Produce",
        "id": 42,
        "to": "gateway",
        "body": {
            "client_id": "client-1",
            "acks": -1,
            "timeout_ms": 30_000,
            "topics": [{"name": "orders", "partitions": [{"partition": 0, "records": 1}]}],
        },
    }
    assert "to" not in msgpack.unpackb(encode(DescribeCluster(), 1)[0])


def test_encode_refuses_unregistered_types() -> None:
    with pytest.raises(TypeError, match="not a registered message type"):
        encode(ProduceTopic("t", ()), 1)  # type: ignore[arg-type]


def test_to_may_be_nil() -> None:
    assert decode(frames_of(valid_header(to=None), b"r")).to is None


# --- hostile input --------------------------------------------------------------------------


def body_with(**changes: Any) -> dict[str, Any]:
    body = valid_header()["body"]
    body.update(changes)
    return body


def partition_with(**changes: Any) -> dict[str, Any]:
    part = {"partition": 0, "records": 1}
    part.update(changes)
    return body_with(topics=[{"name": "t", "partitions": [part]}])


HOSTILE_HEADERS = [
    # (header, expected substring in the message)
    ([1, 2, 3], "header: expected a map"),
    ("Produce", "header: expected a map"),
    (valid_header(extra=1), "header.'extra': unknown key"),
    ({k: v for k, v in valid_header().items() if k != "v"}, "header.v: required key is missing"),
    ({k: v for k, v in valid_header().items() if k != "body"}, "header.body: required key is missing"),
    ({k: v for k, v in valid_header().items() if k != "id"}, "header.id: required key is missing"),
    (valid_header(v=2), "header.v: unsupported protocol version 2"),
    (valid_header(v=True), "header.v: unsupported protocol version True"),
    (valid_header(v="1"), "header.v: unsupported protocol version '1'"),
    (valid_header(type="Nope"), "header.type: unknown message type 'Nope'"),
    (valid_header(type=3), "header.type: expected a string"),
    (valid_header(type="ProduceTopic"), "header.type: unknown message type 'ProduceTopic'"),
    (valid_header(id=-1), "header.id: must be between 0 and"),
    (valid_header(id=2**64 - 1), "header.id: must be between 0 and"),
    (valid_header(id=True), "header.id: expected an integer, got a boolean"),
    (valid_header(id=1.5), "header.id: expected an integer, got a float"),
    (valid_header(to=5), "header.to: expected a string"),
    (valid_header(to="x" * 300), "header.to: 300 characters"),
    (valid_header(body=[1]), "Produce: expected a map, got an array"),
    (valid_header(body=body_with(acks=2)), "Produce.acks: must be one of -1, 0, 1, got 2"),
    (valid_header(body=body_with(acks=True)), "Produce.acks: expected an integer, got a boolean"),
    (valid_header(body=body_with(acks="all")), "Produce.acks: expected an integer, got a string"),
    (valid_header(body=body_with(timeout_ms=-5)), "Produce.timeout_ms: must be between 0 and 2147483647, got -5"),
    (valid_header(body=body_with(timeout_ms=2**40)), "Produce.timeout_ms: must be between 0 and 2147483647"),
    (valid_header(body=body_with(client_id=b"bytes")), "Produce.client_id: expected a string, got binary data"),
    (valid_header(body=body_with(client_id="x" * 2000)), "Produce.client_id: 2000 characters, more than the limit"),
    (valid_header(body=body_with(client_id=None)), "Produce.client_id: expected a string, got nil"),
    (valid_header(body=body_with(topics={"t": 1})), "Produce.topics: expected an array, got a map"),
    (valid_header(body=body_with(topics=[5])), "Produce.topics[0]: expected a map, got an integer"),
    (valid_header(body=body_with(surprise=1)), "Produce.surprise: unknown field"),
    (valid_header(body={k: v for k, v in body_with().items() if k != "acks"}), "Produce.acks: required field is missing"),
    (valid_header(body=body_with(topics=[{"name": "t"}])), "Produce.topics[0].partitions: required field is missing"),
    (valid_header(body=partition_with(partition=-1)), "Produce.topics[0].partitions[0].partition: must be between 0"),
    (valid_header(body=partition_with(partition=False)), "Produce.topics[0].partitions[0].partition: expected an integer"),
    (valid_header(body=partition_with(records=5)), "Produce.topics[0].partitions[0].records: frame index 5 out of range"),
    (valid_header(body=partition_with(records=0)), "Produce.topics[0].partitions[0].records: frame index 0 out of range"),
    (valid_header(body=partition_with(records=True)), "Produce.topics[0].partitions[0].records: expected a frame index"),
    (valid_header(body=partition_with(records=b"inline")), "Produce.topics[0].partitions[0].records: expected a frame index"),
    (valid_header(body=partition_with(records=None)), "Produce.topics[0].partitions[0].records: expected a frame index"),
]


@pytest.mark.parametrize("header, expected", HOSTILE_HEADERS, ids=[e for _, e in HOSTILE_HEADERS])
def test_hostile_header_is_rejected_naming_the_field(header: Any, expected: str) -> None:
    assert expected in rejected(frames_of(header, b"payload"))


def test_frames_that_are_not_a_list() -> None:
    assert "frames: expected a list of frames, got str" in rejected("garbage")
    assert "frames: expected a list of frames, got bytes" in rejected(b"\x80")
    assert "frames: expected a list of frames, got NoneType" in rejected(None)


def test_empty_and_non_bytes_frames() -> None:
    assert "frames: empty message" in rejected([])
    assert "frames[0]: expected bytes, got int" in rejected([5])
    assert "frames[1]: expected bytes, got str" in rejected([frames_of(valid_header())[0], "text"])
    assert "header: frame 0 is empty" in rejected([b""])


def test_malformed_msgpack() -> None:
    assert "header: frame 0 is not valid msgpack" in rejected([b"\xc1"])
    assert "header: frame 0 is not valid msgpack" in rejected([b"\x92\x01"])  # truncated array
    assert "header: frame 0 is not valid msgpack" in rejected([msgpack.packb({}) + b"\x00"])  # trailing bytes
    assert "header: frame 0 is not valid msgpack" in rejected([msgpack.packb({1: 2})])  # int map key
    assert "header: frame 0 is not valid msgpack" in rejected([b"\xa2\xff\xfe"])  # invalid UTF-8 str
    assert "header: frame 0 is not valid msgpack" in rejected([b"\xdd\xff\xff\xff\xff"])  # absurd array length


def test_msgpack_extension_types_are_rejected() -> None:
    header = valid_header(id=msgpack.ExtType(5, b"xx"))
    assert "header.id: expected an integer, got ExtType" in rejected(frames_of(header, b"r"))


def test_deeply_nested_header_is_rejected() -> None:
    nested = b"\x91" * 100_000 + b"\x00"
    assert "header" in rejected([nested])


def test_oversized_header_frame() -> None:
    big = frames_of(valid_header(body=body_with(client_id="x" * 900)), b"r")
    assert f"header: {len(big[0])} bytes, more than the limit of 100" in rejected(big, max_header_bytes=100)
    assert len(frames_of(valid_header(), b"r")[0]) < MAX_HEADER_BYTES


def test_too_many_frames() -> None:
    frames = frames_of(valid_header(), *([b"r"] * 11))
    assert "frames: 11 payload frames, more than the limit of 10" in rejected(frames, max_payload_frames=10)


def test_unreferenced_payload_frame() -> None:
    assert "frames[2]: payload frame not referenced by the Produce body" in rejected(frames_of(valid_header(), b"a", b"b"))


def test_payload_frame_referenced_twice() -> None:
    header = valid_header(body={**body_with(), "topics": [{"name": "t", "partitions": [{"partition": 0, "records": 1}, {"partition": 1, "records": 1}]}]})
    assert "Produce.topics[0].partitions[1].records: frame 1 is referenced twice" in rejected(frames_of(header, b"a"))


def test_non_contiguous_and_multibyte_buffers() -> None:
    import array

    header = frames_of(valid_header())[0]
    ints = array.array("i", [1, 2, 3])
    decoded = decode([header, memoryview(ints)])
    assert decoded.payload_bytes == ints.itemsize * 3
    strided = memoryview(b"abcdef")[::2]
    assert "frames[1]: buffer is not contiguous" in rejected([header, strided])


def test_list_of_ints_with_a_bool_is_rejected() -> None:
    header = {
        "v": 1,
        "type": "DeleteTopics",
        "id": 1,
        "body": {"topic_names": ["a", 5], "timeout_ms": 10},
    }
    assert "DeleteTopics.topic_names[1]: expected a string, got an integer (5)" in rejected(frames_of(header))


def test_fetch_limits() -> None:
    body = {
        "client_id": "c",
        "max_wait_ms": 500,
        "min_bytes": 1,
        "max_bytes": -1,
        "isolation_level": 0,
        "topics": [],
    }
    message = rejected(frames_of({"v": 1, "type": "Fetch", "id": 1, "body": body}))
    assert message.startswith("Fetch.max_bytes: must be between 0 and")
    body["max_bytes"] = 1 << 20
    body["isolation_level"] = 2
    assert "Fetch.isolation_level: must be one of 0, 1, got 2" in rejected(frames_of({"v": 1, "type": "Fetch", "id": 1, "body": body}))
    body["isolation_level"] = 1
    assert isinstance(decode(frames_of({"v": 1, "type": "Fetch", "id": 1, "body": body})).message, Fetch)


def test_peek_correlation_id() -> None:
    assert peek_correlation_id(frames_of(valid_header(id=99, v=7))) == 99
    assert peek_correlation_id([b"\xc1"]) == 0
    assert peek_correlation_id([]) == 0
    assert peek_correlation_id(frames_of(valid_header(id=-3))) == 0


# --- fuzzing: nothing but InvalidRequestError escapes ---------------------------------------

msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=8) | st.binary(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)


def decodes_or_rejects(frames: Any) -> None:
    try:
        decode(frames)
    except InvalidRequestError as exc:
        assert exc.message
    # any other exception fails the test


@given(st.lists(st.binary(max_size=40), max_size=4))
@settings(max_examples=300, deadline=None)
def test_random_frames(frames: list[bytes]) -> None:
    decodes_or_rejects(frames)


@given(st.sampled_from(sorted(MESSAGE_TYPES)), msgpack_values, st.integers(0, 3))
@settings(max_examples=400, deadline=None)
def test_random_bodies(type_name: str, body: Any, payload_frames: int) -> None:
    decodes_or_rejects(frames_of({"v": 1, "type": type_name, "id": 1, "body": body}, *([b"p"] * payload_frames)))


@given(any_message, st.data())
@settings(max_examples=300, deadline=None)
def test_mutated_valid_headers(message: Any, data: st.DataObject) -> None:
    frames = encode(message, 5)
    header = bytearray(frames[0])
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(header) - 1))
        header[position] = data.draw(st.integers(0, 255))
    decodes_or_rejects([bytes(header), *frames[1:]])


@given(any_message, st.data())
@settings(max_examples=200, deadline=None)
def test_changed_field_values(message: Any, data: st.DataObject) -> None:
    frames = encode(message, 5)
    header = msgpack.unpackb(frames[0])
    body = header["body"]
    if body:
        key = data.draw(st.sampled_from(sorted(body)))
        body[key] = data.draw(msgpack_values)
    decodes_or_rejects([msgpack.packb(header, use_bin_type=True), *frames[1:]])


def test_unexpected_internal_failure_is_still_invalid_request(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any) -> Any:
        raise KeyError("bug")

    monkeypatch.setattr(codec, "_check_header", boom)
    assert "message could not be decoded (KeyError" in rejected(frames_of(valid_header(), b"r"))


def test_error_response_round_trip() -> None:
    frames = encode(ErrorResponse(42, "bad"), 3)
    assert decode(frames).message == ErrorResponse(42, "bad")
