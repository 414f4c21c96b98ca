"""The public result types of the client bindings, and the two client-side settings every client
parses the same way (bootstrap address, acks).

DESIGN.md section 5 names these types; ``from kbroker import ...`` re-exports them. All are
small frozen dataclasses with slots:

    TopicPartition(topic, partition)                     hashable, ordered by (topic, partition)
    RecordMetadata(topic, partition, offset, timestamp_ms)
    Record(topic, partition, offset, key, value, headers, timestamp_ms, timestamp_type)
    WorkerInfo(id, endpoint, pid, alive)
    TopicInfo(name, partitions: list[PartitionInfo], config)
    PartitionInfo(partition, leader, leader_epoch, replicas, isr,
                  log_start_offset, high_watermark, log_end_offset)
    GroupInfo(group_id, state, members, partitions: list[GroupPartition])
    GroupPartition(topic, partition, member, committed_offset, high_watermark, lag)

``Record.timestamp_type`` is a ``TimestampType``: an ``IntEnum`` equal to 0 (CreateTime) or 1
(LogAppendTime), as kafka-python's ``ConsumerRecord.timestamp_type`` is, whose ``str()`` is
Kafka's name ("CreateTime" / "LogAppendTime", as Java's ``TimestampType.toString()``), and which
also compares equal to that name. So ``rec.timestamp_type == 0``,
``rec.timestamp_type == "CreateTime"`` and ``rec.timestamp_type is TimestampType.CREATE_TIME``
all hold for a CreateTime record.

Types whose fields are lists or dicts (``Record``'s headers, ``TopicInfo``, ``PartitionInfo``,
``GroupInfo``) are frozen (no rebinding) but not hashable; the others are hashable.

Pure: no sockets, no threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, NamedTuple

from kbroker.errors import InvalidConfigError, InvalidRequiredAcksError

__all__ = [
    "TimestampType",
    "TopicPartition",
    "RecordMetadata",
    "Record",
    "Header",
    "WorkerInfo",
    "TopicInfo",
    "PartitionInfo",
    "GroupInfo",
    "GroupPartition",
    "ReplicaStatus",
    "WorkerStats",
    "DEFAULT_BOOTSTRAP",
    "DEFAULT_PORT",
    "BOOTSTRAP_ENV",
    "normalize_bootstrap",
    "parse_acks",
]

Header = tuple[str, bytes]

DEFAULT_PORT = 7092
DEFAULT_BOOTSTRAP = f"127.0.0.1:{DEFAULT_PORT}"
BOOTSTRAP_ENV = "KBROKER_BOOTSTRAP"
"""Environment variable the CLI reads when ``--bootstrap`` is not given (the caller reads it)."""

_TS_NAMES = ("CreateTime", "LogAppendTime")


class TimestampType(IntEnum):
    """Where a record's timestamp comes from (Kafka's ``TimestampType``; the values are the batch bit)."""

    CREATE_TIME = 0
    """Set by the producer (``send(timestamp_ms=...)`` or the producer's clock)."""
    LOG_APPEND_TIME = 1
    """Set by the broker when it appended the batch (topic config ``message.timestamp.type``)."""

    # Kafka's spelling, as aliases: TimestampType.CreateTime is TimestampType.CREATE_TIME.
    CreateTime = 0
    LogAppendTime = 1

    def __str__(self) -> str:
        return _TS_NAMES[self]

    def __format__(self, spec: str) -> str:
        return format(_TS_NAMES[self], spec)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return other == _TS_NAMES[self]
        return int.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    __hash__ = int.__hash__

    @classmethod
    def _missing_(cls, value: object) -> TimestampType | None:
        if isinstance(value, str) and value in _TS_NAMES:
            return cls(_TS_NAMES.index(value))
        return None


@dataclass(frozen=True, slots=True, order=True)
class TopicPartition:
    """A partition of a topic: hashable (a dict key, a set member) and ordered by (topic, partition)."""

    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}-{self.partition}"


@dataclass(frozen=True, slots=True)
class RecordMetadata:
    """What a producer future resolves to: where the record was written.

    ``offset`` is -1 with ``acks=0`` (the broker does not answer) and when the broker reported the
    batch as a duplicate of one it had already written without saying where. ``timestamp_ms`` is
    the broker's time for LogAppendTime topics, else the record's CreateTime.
    """

    topic: str
    partition: int
    offset: int
    timestamp_ms: int

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


class Record(NamedTuple):
    """One consumed record. ``value`` None is a tombstone; ``headers`` is a tuple of (str, bytes)
    pairs, ``()`` when the record has none.

    Immutable, like the other result types, but a named tuple rather than a dataclass: the consumer
    builds one per record, and ``tuple.__new__`` does it in a third of the time (what kafka-python's
    ``ConsumerRecord`` is too)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...]
    timestamp_ms: int
    timestamp_type: TimestampType

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One worker process (Kafka: a broker) as ``Admin.describe_cluster()`` reports it."""

    id: int
    endpoint: str
    pid: int | None
    alive: bool


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    """One partition of a topic; ``leader`` is a worker id, -1 while no replica leads."""

    partition: int
    leader: int
    leader_epoch: int
    replicas: list[int]
    isr: list[int]
    log_start_offset: int
    high_watermark: int
    log_end_offset: int


@dataclass(frozen=True, slots=True)
class TopicInfo:
    """A topic as ``Admin.describe_topic()`` reports it; ``config`` maps Kafka config names to values."""

    name: str
    partitions: list[PartitionInfo]
    config: dict[str, str]


@dataclass(frozen=True, slots=True)
class GroupPartition:
    """A partition consumed by a group.

    ``member`` is the member id it is assigned to (None: unassigned); ``committed_offset`` and
    ``lag`` (high watermark - committed offset) are None while the group has committed nothing
    for the partition.
    """

    topic: str
    partition: int
    member: str | None
    committed_offset: int | None
    high_watermark: int
    lag: int | None


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """A consumer group as ``Admin.describe_group()`` reports it; ``members`` are member ids."""

    group_id: str
    state: str
    members: list[str]
    partitions: list[GroupPartition]


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    """One replica as the worker holding it reports it (``WorkerStats.replicas``); offsets -1: no answer."""

    topic: str
    partition: int
    is_leader: bool
    leader_epoch: int
    log_start_offset: int
    high_watermark: int
    log_end_offset: int
    size_bytes: int


@dataclass(frozen=True, slots=True)
class WorkerStats:
    """A worker's counters (since its process started) and replicas, from ``Admin.describe_worker_stats()``.

    ``uptime_ms`` is None (counters 0, no replicas) when the worker is not alive or did not answer;
    ``error`` then says why.
    """

    id: int
    endpoint: str
    pid: int | None
    alive: bool
    uptime_ms: int | None
    produce_requests: int
    fetch_requests: int
    bytes_in: int
    bytes_out: int
    replicas: list[ReplicaStatus]
    error: str | None = None


# --- settings ------------------------------------------------------------------------------


def normalize_bootstrap(address: str | None = None) -> str:
    """``host:port``, ``tcp://host:port``, ``host`` or None/"" -> ``tcp://host:port``.

    The port defaults to 7092 and the whole address to 127.0.0.1:7092. IPv6 hosts are written in
    brackets (``[::1]:7092``). Anything else raises ``InvalidConfigError`` naming the value.
    Reading ``KBROKER_BOOTSTRAP`` is the caller's business (the CLI does it).
    """
    if address is None:
        address = ""
    if not isinstance(address, str):
        raise InvalidConfigError(
            f"bootstrap address must be a string, host:port or tcp://host:port (e.g. {DEFAULT_BOOTSTRAP}), "
            f"not {type(address).__name__}"
        )
    text = address.strip()
    if not text:
        text = DEFAULT_BOOTSTRAP
    rest = text
    if "://" in text:
        scheme, _, rest = text.partition("://")
        if scheme.lower() != "tcp":
            raise _bad_bootstrap(address, f"only tcp:// is supported, not {scheme}://")
    host, port = _split_host_port(address, rest)
    return f"tcp://{host}:{port}"


def _split_host_port(original: str, rest: str) -> tuple[str, int]:
    if rest.startswith("["):
        close = rest.find("]")
        if close < 0:
            raise _bad_bootstrap(original, "unclosed '[' around an IPv6 host")
        host = rest[: close + 1]
        tail = rest[close + 1 :]
        if tail and not tail.startswith(":"):
            raise _bad_bootstrap(original, "expected ':port' after the IPv6 host")
        port_text = tail[1:] if tail else ""
        if host == "[]":
            raise _bad_bootstrap(original, "empty host")
    else:
        host, sep, port_text = rest.rpartition(":")
        if not sep:
            host, port_text = rest, ""
        if ":" in host:
            raise _bad_bootstrap(original, "write IPv6 hosts in brackets, e.g. [::1]:7092")
        if not host:
            raise _bad_bootstrap(original, "empty host")
    if any(ch.isspace() for ch in host) or "/" in host:
        raise _bad_bootstrap(original, f"{host!r} is not a host name or address")
    if port_text == "":
        if rest.endswith(":"):
            raise _bad_bootstrap(original, "empty port")
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise _bad_bootstrap(original, f"port {port_text!r} is not a number between 1 and 65535")
    return host, int(port_text)


def _bad_bootstrap(address: str, why: str) -> InvalidConfigError:
    return InvalidConfigError(
        f"bootstrap address {address!r} is not valid: {why}; expected host:port or tcp://host:port "
        f"(default {DEFAULT_BOOTSTRAP})"
    )


_ACKS = {0: 0, 1: 1, -1: -1, "0": 0, "1": 1, "-1": -1, "all": -1}


def parse_acks(value: Any) -> int:
    """0, 1, "all", -1, "0", "1", "-1" -> 0, 1 or -1 (the wire value); else ``InvalidRequiredAcksError``."""
    key: object = None  # True == 1 and 1.0 == 1 in Python, but neither is a valid acks value
    if isinstance(value, str):
        key = value.strip().lower()
    elif isinstance(value, int) and not isinstance(value, bool):
        key = int(value)
    try:
        return _ACKS[key]
    except (KeyError, TypeError):
        raise InvalidRequiredAcksError(
            f"acks={value!r} is not valid: use 0 (no reply), 1 (leader wrote it) or 'all' "
            "(every in-sync replica has it); -1, '0', '1' and '-1' are accepted too"
        ) from None
