"""Public result types (DESIGN.md section 5), bootstrap addresses and acks."""

from __future__ import annotations

import dataclasses

import pytest

from kbroker.errors import InvalidConfigError, InvalidRequiredAcksError, KBrokerError
from kbroker.transport.client.types import (
    GroupInfo,
    GroupPartition,
    PartitionInfo,
    Record,
    RecordMetadata,
    TimestampType,
    TopicInfo,
    TopicPartition,
    WorkerInfo,
    normalize_bootstrap,
    parse_acks,
)

# Field names exactly as DESIGN.md section 5 spells them: these are the public contract.
CONTRACT = {
    TopicPartition: ("topic", "partition"),
    RecordMetadata: ("topic", "partition", "offset", "timestamp_ms"),
    Record: ("topic", "partition", "offset", "key", "value", "headers", "timestamp_ms", "timestamp_type"),
    WorkerInfo: ("id", "endpoint", "pid", "alive"),
    TopicInfo: ("name", "partitions", "config"),
    PartitionInfo: (
        "partition", "leader", "leader_epoch", "replicas", "isr",
        "log_start_offset", "high_watermark", "log_end_offset",
    ),
    GroupInfo: ("group_id", "state", "members", "partitions"),
    GroupPartition: ("topic", "partition", "member", "committed_offset", "high_watermark", "lag"),
}


@pytest.mark.parametrize("cls", list(CONTRACT), ids=lambda c: c.__name__)
def test_result_types_are_immutable_with_the_contract_fields(cls: type) -> None:
    if cls is Record:  # the one built per consumed record: an immutable named tuple, for speed
        assert issubclass(cls, tuple) and cls._fields == CONTRACT[cls]  # type: ignore[attr-defined]
        return
    assert dataclasses.is_dataclass(cls)
    assert tuple(f.name for f in dataclasses.fields(cls)) == CONTRACT[cls]
    assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert hasattr(cls, "__slots__")


def test_topic_partition_is_hashable_ordered_and_frozen() -> None:
    a, b, c = TopicPartition("a", 1), TopicPartition("a", 0), TopicPartition("b", 0)
    assert sorted([c, a, b]) == [b, a, c]
    assert {a, TopicPartition("a", 1)} == {a}
    assert {a: 1}[TopicPartition("a", 1)] == 1
    assert str(a) == "a-1"
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.partition = 2  # type: ignore[misc]


def test_record_metadata_and_record_know_their_partition() -> None:
    md = RecordMetadata("t", 3, 42, 1_700_000_000_000)
    assert md.topic_partition == TopicPartition("t", 3)
    rec = Record("t", 3, 42, b"k", None, [("h", b"v")], 5, TimestampType.CREATE_TIME)
    assert rec.topic_partition == TopicPartition("t", 3)
    assert rec.value is None
    with pytest.raises(AttributeError):
        rec.offset = 1  # type: ignore[misc]
    assert rec._replace(offset=43).offset == 43 and rec.offset == 42


def test_timestamp_type_speaks_kafka_python_and_kafka_names() -> None:
    create, append = TimestampType.CREATE_TIME, TimestampType.LOG_APPEND_TIME
    assert create == 0 and append == 1  # kafka-python's ConsumerRecord.timestamp_type values
    assert create == "CreateTime" and append == "LogAppendTime"  # Kafka's names
    assert create != "LogAppendTime" and append != 0
    assert str(append) == "LogAppendTime" and f"{create}" == "CreateTime"
    assert TimestampType.CreateTime is create and TimestampType.LogAppendTime is append
    assert TimestampType("LogAppendTime") is append and TimestampType(0) is create
    assert hash(append) == hash(1) and {0: "x"}[create] == "x"
    assert list(TimestampType) == [create, append]
    with pytest.raises(ValueError):
        TimestampType("NoTimestampType")


def test_types_with_lists_compare_by_value() -> None:
    p = PartitionInfo(0, 1, 3, [1, 2], [1], 0, 10, 12)
    assert TopicInfo("t", [p], {"retention.ms": "1000"}) == TopicInfo("t", [p], {"retention.ms": "1000"})
    g = GroupInfo("g", "Stable", ["m1"], [GroupPartition("t", 0, "m1", None, 10, None)])
    assert g.partitions[0].lag is None
    assert WorkerInfo(0, "tcp://127.0.0.1:7093", 123, True).alive


@pytest.mark.parametrize(
    "given, expected",
    [
        (None, "tcp://127.0.0.1:7092"),
        ("", "tcp://127.0.0.1:7092"),
        ("  ", "tcp://127.0.0.1:7092"),
        ("127.0.0.1:7092", "tcp://127.0.0.1:7092"),
        ("tcp://10.0.0.5:9000", "tcp://10.0.0.5:9000"),
        ("TCP://broker.example.com:1", "tcp://broker.example.com:1"),
        ("localhost", "tcp://localhost:7092"),
        ("tcp://localhost", "tcp://localhost:7092"),
        (" host:65535 ", "tcp://host:65535"),
        ("[::1]:7092", "tcp://[::1]:7092"),
        ("tcp://[fe80::1]", "tcp://[fe80::1]:7092"),
    ],
)
def test_normalize_bootstrap(given: str | None, expected: str) -> None:
    assert normalize_bootstrap(given) == expected


@pytest.mark.parametrize(
    "given",
    ["ipc:///tmp/x", "host:0", "host:70000", "host:port", "host:", ":7092", "::1:7092", "[::1", "[::1]x",
     "a b:1", "tcp://a/b:1", 7092],
)
def test_normalize_bootstrap_rejects_bad_addresses_naming_them(given: object) -> None:
    with pytest.raises(InvalidConfigError) as info:
        normalize_bootstrap(given)  # type: ignore[arg-type]
    assert isinstance(info.value, KBrokerError)
    if isinstance(given, str):
        assert repr(given) in info.value.message
    assert "host:port" in info.value.message


@pytest.mark.parametrize(
    "given, expected",
    [(0, 0), (1, 1), (-1, -1), ("all", -1), ("ALL", -1), ("0", 0), ("1", 1), ("-1", -1), (" all ", -1)],
)
def test_parse_acks(given: object, expected: int) -> None:
    assert parse_acks(given) == expected


@pytest.mark.parametrize("given", [2, -2, "2", "none", "", None, True, False, 1.0, [1]])
def test_parse_acks_rejects_anything_else_naming_the_value(given: object) -> None:
    with pytest.raises(InvalidRequiredAcksError) as info:
        parse_acks(given)
    assert f"acks={given!r}" in info.value.message


def test_the_client_core_pulls_in_no_sockets_or_actors() -> None:
    """Pure core: importing every module of kbroker.transport.client but the socket-using clients
    (Admin, Producer, Consumer) loads neither zmq nor pykka."""
    import subprocess
    import sys

    code = (
        "import sys, kbroker.transport.client as c\n"
        "[getattr(c, name) for name in c.__all__ if name not in ('Admin', 'Producer', 'Consumer')]\n"
        "import kbroker.transport.client.bench\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('zmq', 'pykka'))\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr
