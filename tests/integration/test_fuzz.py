"""Fuzz a real broker: generated and mutated frames at the bootstrap and a worker endpoint.

Hypothesis drives two generators for a bounded number of inputs (``KBROKER_FUZZ_EXAMPLES``,
default 1,500 each):
- structured: a client message type with its real field names and hostile values (absurd and
  negative numbers, wrong types, path-like and huge names, nested junk), to any actor name;
- mutated: valid requests (Produce with a real batch, Fetch, ListOffsets, Metadata, CreateTopics,
  AlterConfigs, ...) with flipped bytes, cut or inserted bytes, fields replaced deep inside the
  msgpack header, and frames dropped, doubled or added (batches whose length, CRC, record count or
  offsets lie).
Afterwards: the same worker processes serve, the records acknowledged before the fuzzing read back
byte for byte, and nothing was written outside the data directory. The count of inputs tried and
answered is printed (``-s``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import msgpack
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _cluster import Cluster
from _failover import create_topic, read_topic
from test_bad_input import _assert_still_serving
from kbroker import Admin, Producer
from kbroker.storage.records import BatchBuilder
from kbroker.transport import codec
from kbroker.transport.messages import CLIENT_MESSAGE_TYPES, MESSAGE_TYPES
from kbroker.transport.messages_admin import AlterConfigs, AlterConfigsResource, ConfigEntry, CreatableTopic, CreateTopics, DescribeTopics
from kbroker.transport.messages_client import (
    Fetch, FetchPartition, FetchTopic, InitProducerId, ListOffsets, ListOffsetsPartition, ListOffsetsTopic, Metadata,
    Produce, ProducePartition, ProduceTopic,
)  # fmt: skip

EXAMPLES = int(os.environ.get("KBROKER_FUZZ_EXAMPLES", "1500"))
REQUEST_TYPES = sorted(n for n in CLIENT_MESSAGE_TYPES if not n.endswith("Response") and n != "ErrorResponse")
ACTORS = [None, "gateway", "replica-manager", "controller", "replica:fuzz-data:0", "", "x" * 300]

hostile_scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.sampled_from([-1, 0, 2**31, 2**63 - 1, 2**64 - 1, -(2**63)]),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
    st.text(max_size=40),
    st.sampled_from(["../x", "../../etc/passwd", "/abs", "a/b", ".", "..", "", "x" * 300, "__consumer_offsets", "fuzz-data"]),
    st.binary(max_size=80),
)
hostile_values = st.recursive(
    hostile_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12,
)


def _batch(count: int = 3) -> bytes:
    builder = BatchBuilder()
    for i in range(count):
        builder.append(b"fuzz-%d" % i, key=b"k%d" % i)
    return builder.build()


def _seeds() -> list[list[bytes]]:
    """Valid requests, encoded: what the mutator starts from."""
    messages = [
        Produce("fuzz", 1, 1000, (ProduceTopic("fuzz-scratch", (ProducePartition(0, _batch()),)),)),
        Produce("fuzz", -1, 1000, (ProduceTopic("fuzz-scratch", (ProducePartition(0, _batch(1)), ProducePartition(1, _batch(2)))),)),
        Fetch("fuzz", 10, 1, 1 << 20, 0, (FetchTopic("fuzz-data", (FetchPartition(0, 0, 1 << 16, -1),)),)),
        ListOffsets(0, (ListOffsetsTopic("fuzz-data", (ListOffsetsPartition(0, -1, -1),)),)),
        Metadata(("fuzz-data", "fuzz-scratch"), False),
        CreateTopics((CreatableTopic("fuzz-new", 2, 1, (ConfigEntry("retention.ms", "1000"),)),), 1000, True),
        AlterConfigs((AlterConfigsResource("fuzz-scratch", (ConfigEntry("retention.bytes", "100000"),)),), True),
        DescribeTopics(("fuzz-data",), True),
        InitProducerId(None, -1, -1, -1),
    ]
    return [[bytes(f) for f in codec.encode(m, 7, None)] for m in messages]


SEEDS = _seeds()


def _replace_deep(value: object, replacement: object, path: list[int]) -> object:
    """``value`` with one nested element (chosen by ``path``) replaced."""
    if not path or not isinstance(value, (dict, list)) or not value:
        return replacement
    if isinstance(value, dict):
        key = sorted(value, key=repr)[path[0] % len(value)]
        return {**value, key: _replace_deep(value[key], replacement, path[1:])}
    index = path[0] % len(value)
    return [*value[:index], _replace_deep(value[index], replacement, path[1:]), *value[index + 1 :]]


@st.composite
def structured(draw) -> list[bytes]:
    name = draw(st.sampled_from(REQUEST_TYPES + ["LeaderAndIsr-but-wrong", "Nope"]))
    cls = MESSAGE_TYPES.get(name)
    fields = list(getattr(cls, "__dataclass_fields__", {})) or ["x"]
    body = {f: draw(hostile_values) for f in fields if draw(st.booleans()) or True}
    header = {"v": draw(st.sampled_from([1, 1, 1, 0, 2])), "type": name, "id": draw(st.integers(0, 2**63 - 1)), "body": body}
    actor = draw(st.sampled_from(ACTORS))
    if actor is not None:
        header["to"] = actor
    frames = [msgpack.packb(header, use_bin_type=True)]
    frames += draw(st.lists(st.binary(max_size=200), max_size=3))
    return frames


@st.composite
def mutated(draw) -> list[bytes]:
    frames = list(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "field", "drop", "double", "junk"]))
        i = draw(st.integers(0, len(frames) - 1)) if frames else 0
        if op in ("flip", "cut", "insert") and frames and frames[i]:
            data = bytearray(frames[i])
            at = draw(st.integers(0, len(data) - 1))
            if op == "flip":
                data[at] ^= draw(st.integers(1, 255))
            elif op == "cut":
                del data[at:]
            else:
                data[at:at] = draw(st.binary(min_size=1, max_size=16))
            frames[i] = bytes(data)
        elif op == "field" and frames:
            try:
                header = msgpack.unpackb(frames[0], raw=False)
            except Exception:
                continue
            path = draw(st.lists(st.integers(0, 50), min_size=1, max_size=6))
            frames[0] = msgpack.packb(_replace_deep(header, draw(hostile_values), path), use_bin_type=True)
        elif op == "drop" and len(frames) > 1:
            del frames[i]
        elif op == "double" and frames:
            frames.insert(i, frames[i])
        elif op == "junk":
            frames.append(draw(st.binary(max_size=100)))
    return frames or [b""]


class _Fuzzer:
    def __init__(self, endpoints: list[str]) -> None:
        self.context = zmq.Context()
        self.sockets = []
        for endpoint in endpoints:
            sock = self.context.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(endpoint)
            self.sockets.append(sock)
        self.sent = self.answered = 0

    def send(self, frames: list[bytes], which: int) -> None:
        sock = self.sockets[which % len(self.sockets)]
        sock.send_multipart(frames)
        self.sent += 1
        if sock.poll(50):  # most inputs are answered at once; acks=0 produce and the like are not
            while sock.poll(0):
                sock.recv_multipart()
                self.answered += 1

    def close(self) -> None:
        self.context.destroy(linger=0)


def _files_outside(root: Path, data: Path) -> set[Path]:
    return {p for p in root.rglob("*") if data not in p.parents and p != data}


def test_generated_and_mutated_frames_never_hurt_the_broker(start_cluster, tmp_path: Path) -> None:
    data = tmp_path / "data"
    cluster: Cluster = start_cluster(workers=3, data_dir=data)
    before_outside = _files_outside(tmp_path, data)
    pids = cluster.wait_all_alive()
    with Admin(cluster.bootstrap, timeout=20) as admin:
        create_topic(admin, "fuzz-data", 3)
        create_topic(admin, "fuzz-scratch", 2)
        workers = admin.describe_cluster()
    with Producer(cluster.bootstrap, acks="all") as producer:
        for i in range(1000):
            producer.send("fuzz-data", b"precious-%d" % i, key=b"k%d" % (i % 10))
    precious = sorted((r.partition, r.offset, r.key, r.value) for r in read_topic(cluster.bootstrap, "fuzz-data"))
    assert len(precious) == 1000

    fuzzer = _Fuzzer([cluster.bootstrap, workers[0].endpoint, workers[1].endpoint])
    started = time.monotonic()
    try:
        fuzz_settings = settings(
            max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )

        @fuzz_settings
        @given(frames=structured(), which=st.integers(0, 2))
        def structured_inputs(frames: list[bytes], which: int) -> None:
            fuzzer.send(frames, which)

        @fuzz_settings
        @given(frames=mutated(), which=st.integers(0, 2))
        def mutated_inputs(frames: list[bytes], which: int) -> None:
            fuzzer.send(frames, which)

        structured_inputs()
        mutated_inputs()
    finally:
        fuzzer.close()
    print(f"\nfuzz: {fuzzer.sent} inputs ({fuzzer.answered} replies) in {time.monotonic() - started:.1f} s")

    _assert_still_serving(cluster, pids)
    after = sorted((r.partition, r.offset, r.key, r.value) for r in read_topic(cluster.bootstrap, "fuzz-data"))
    assert after[: len(precious)] == precious  # nothing acknowledged was lost or changed
    assert _files_outside(tmp_path, data) == before_outside, "a file was written outside the data dir"
    assert not any(p.name.startswith("..") or "etc" == p.name for p in data.rglob("*"))
