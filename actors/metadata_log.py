"""The controller's metadata log: cluster metadata persisted with the storage engine itself.

    DATA/controller/__cluster_metadata-0/     a storage Log (segments, indexes, checkpoints)
        batch = one controller operation      all of its records, appended and fsynced at once
        record key   = the entity's key       "topic/orders", "partition/orders/3", "worker/0",
                                              "meta/version", "acl/topic/read/<principal>/<name>"
        record value = msgpack map            {"type": "topic"|"partition"|"worker"|"version"|"acl", ...}
                       or nil (tombstone)     the entity was deleted (a topic and its partitions)

Each record holds the whole state of its entity, never a delta, so the latest record per key is
the truth and replay is "apply every record in offset order" (controller_model.MetadataImage).
That makes the log safe to compact: the log uses ``cleanup.policy=compact`` and the storage
engine's crash-safe cleaner keeps one record per key, dropping tombstones after
``delete.retention.ms``. Choice: compaction instead of snapshots. The log stays about the size of
the live metadata plus the dirty tail, and there is no second on-disk format to keep consistent;
a snapshot would only add a faster start for clusters far larger than kbroker targets.
Every batch ends with a "meta/version" record, so the metadata version and controller epoch
survive compaction; batches carry the controller epoch as their leader epoch, so an append from
an older controller epoch is fenced by the log itself.

Invariants:
- a batch is all of one operation or absent (the Log cuts torn tails on open);
- replaying the log rebuilds exactly the image of the live ``ControllerState`` (liveness aside:
  it is never persisted);
- the high watermark is the log end: an appended batch is committed once fsynced.
Not thread-safe: owned by the controller actor.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final, Protocol, Sequence

import msgpack

from kbroker.actors.acls import AclBinding
from kbroker.actors.controller_model import (
    MetadataImage,
    MetadataRecord,
    Partition,
    Removal,
    Topic,
    VersionStamp,
    WorkerRegistration,
)
from kbroker.errors import CorruptRecordError
from kbroker.storage.config import TopicConfig
from kbroker.storage.log import Log
from kbroker.storage.log_rules import Clock, system_clock
from kbroker.storage.records import BatchBuilder, decode_batches

__all__ = ["METADATA_DIR", "METADATA_LOG_CONFIG", "MetadataLog", "decode_record", "encode_record"]

METADATA_DIR: Final = Path("controller") / "__cluster_metadata-0"
"""Where the metadata log lives, relative to the data directory."""

METADATA_LOG_CONFIG: Final = TopicConfig(
    cleanup_policy=frozenset({"compact"}),
    segment_bytes=8 << 20,
    segment_ms=24 * 3_600_000,
    delete_retention_ms=24 * 3_600_000,
    min_cleanable_dirty_ratio=0.5,
    max_message_bytes=(1 << 31) - 1,  # one operation is one batch, however many partitions it touches
)

_READ_BYTES: Final = 1 << 20


class _LogLike(Protocol):  # storage.Log or storage.MemoryLog
    log_start_offset: int
    log_end_offset: int

    def append(self, data: bytes, leader_epoch: int = -1, now_ms: int | None = None) -> Any: ...
    def read(self, offset: int, max_bytes: int = ..., max_offset: int | None = None) -> Any: ...
    def flush(self, now_ms: int | None = None) -> None: ...
    def update_high_watermark(self, offset: int) -> int: ...
    def clean(self, now_ms: int | None = None, *, force: bool = False) -> Any: ...
    def close(self) -> None: ...


class MetadataLog:
    """Append controller operations; replay them into a ``MetadataImage``."""

    def __init__(self, log: _LogLike) -> None:
        self.log = log
        log.update_high_watermark(log.log_end_offset)

    @classmethod
    def open(
        cls, data_dir: str | os.PathLike, *, config: TopicConfig = METADATA_LOG_CONFIG, clock: Clock = system_clock
    ) -> "MetadataLog":
        """Open (or create) ``data_dir/controller/__cluster_metadata-0`` (recovering a torn tail)."""
        return cls(Log.open(Path(data_dir) / METADATA_DIR, config, clock))

    def replay(self) -> MetadataImage:
        """Every record from the log start, applied in order; raises ``CorruptRecordError`` if the
        result breaks the model's invariants."""
        image = MetadataImage()
        offset = self.log.log_start_offset
        while offset < self.log.log_end_offset:
            result = self.log.read(offset, _READ_BYTES)
            if not result.data:
                break
            for record in decode_batches(result.data, allow_partial_tail=False):
                image.apply(decode_record(record.key, record.value))
            offset = result.next_offset
        image.check()
        return image

    def append(self, records: Sequence[MetadataRecord], now_ms: int) -> int:
        """Persist one operation's records as one fsynced batch; returns its last offset (-1: none)."""
        if not records:
            return -1
        builder = BatchBuilder()
        epoch = -1
        for record in records:
            key, value = encode_record(record)
            builder.append(value, key, None, now_ms)
            if isinstance(record, VersionStamp):
                epoch = record.controller_epoch
        result = self.log.append(builder.build(), leader_epoch=epoch, now_ms=now_ms)
        self.log.flush(now_ms)
        self.log.update_high_watermark(self.log.log_end_offset)
        return result.last_offset

    def maybe_compact(self, now_ms: int, *, force: bool = False) -> Any:
        """One cleaner pass if enough of the log is dirty (call it on a timer); its result or None."""
        return self.log.clean(now_ms, force=force)

    def close(self) -> None:
        self.log.close()


# --- record codec -----------------------------------------------------------------------------


def encode_record(record: MetadataRecord) -> tuple[bytes, bytes | None]:
    """(key, value) bytes for one record; a ``Removal`` has no value (a tombstone)."""
    key = record.key.encode("utf-8")
    if isinstance(record, Removal):
        return key, None
    if isinstance(record, Topic):
        body: dict[str, Any] = {
            "type": "topic",
            "name": record.name,
            "configs": [list(pair) for pair in record.configs],
            "partitions": record.partition_count,
        }
    elif isinstance(record, Partition):
        body = {
            "type": "partition",
            "topic": record.topic,
            "partition": record.partition,
            "replicas": list(record.replicas),
            "leader": record.leader,
            "leader_epoch": record.leader_epoch,
            "partition_epoch": record.partition_epoch,
            "isr": list(record.isr),
        }
    elif isinstance(record, WorkerRegistration):
        body = {"type": "worker", "worker_id": record.worker_id, "endpoint": record.endpoint,
                "incarnation": record.incarnation}
    elif isinstance(record, AclBinding):
        body = {"type": "acl", "principal": record.principal, "resource_type": record.resource_type,
                "resource_name": record.resource_name, "operation": record.operation}
    elif isinstance(record, VersionStamp):
        body = {"type": "version", "metadata_version": record.metadata_version,
                "controller_epoch": record.controller_epoch}
    else:
        raise TypeError(f"not a metadata record: {record!r}")
    return key, msgpack.packb(body, use_bin_type=True)


def decode_record(key: bytes | None, value: bytes | None) -> MetadataRecord:
    """The record stored under ``key``; ``CorruptRecordError`` if it cannot be one."""
    try:
        text = bytes(key).decode("utf-8") if key is not None else ""
        if value is None:
            record: MetadataRecord = Removal(_removal_key(text))
        else:
            record = _decode_body(msgpack.unpackb(value, raw=False))
    except CorruptRecordError:
        raise
    except Exception as exc:  # msgpack, utf-8, missing fields, wrong types: all mean a bad record
        raise CorruptRecordError(f"undecodable metadata record {key!r}: {type(exc).__name__}: {exc}") from exc
    if record.key != text:
        raise CorruptRecordError(f"metadata record stored under {text!r} describes {record.key!r}")
    return record


def _decode_body(body: dict[str, Any]) -> MetadataRecord:
    kind = body["type"]
    if kind == "topic":
        configs = tuple((_text(k), _text(v)) for k, v in body["configs"])
        return Topic(_text(body["name"]), configs, _int(body["partitions"]))
    if kind == "partition":
        return Partition(
            _text(body["topic"]),
            _int(body["partition"]),
            tuple(_int(r) for r in body["replicas"]),
            _int(body["leader"]),
            _int(body["leader_epoch"]),
            _int(body["partition_epoch"]),
            tuple(_int(r) for r in body["isr"]),
        )
    if kind == "worker":
        return WorkerRegistration(_int(body["worker_id"]), _text(body["endpoint"]), _int(body["incarnation"]))
    if kind == "acl":
        return AclBinding(_text(body["principal"]), _text(body["resource_type"]), _text(body["resource_name"]), _text(body["operation"]))
    if kind == "version":
        return VersionStamp(_int(body["metadata_version"]), _int(body["controller_epoch"]))
    raise CorruptRecordError(f"unknown metadata record type {kind!r}")


def _removal_key(key: str) -> str:
    kind, _, rest = key.partition("/")
    if kind == "topic" and rest:
        return key
    if kind == "partition" and rest.rpartition("/")[0] and rest.rpartition("/")[2].isdigit():
        return key
    if kind == "worker" and rest.isdigit():
        return key
    if kind == "acl" and rest:
        return key
    raise CorruptRecordError(f"tombstone under {key!r}, which is no topic, partition or worker key")


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an int, got {value!r}")
    return value


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a str, got {value!r}")
    return value
