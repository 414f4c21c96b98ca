"""``Admin``: topic and cluster administration against the bootstrap endpoint (the controller).

    Admin(bootstrap) ── one Connection (DEALER) ──▶ bootstrap endpoint ──▶ Controller actor
        create_topic / delete_topic / alter_topic_config    CreateTopics / DeleteTopics / AlterConfigs
        list_topics / describe_topic                         Metadata / DescribeTopics
        describe_cluster                                     DescribeCluster
        list_groups / describe_group / delete_group / reset_offsets   (admin_groups.py: the coordinators)
        describe_worker_stats                                DescribeWorkerStats to each live worker

Every method sends one request and waits at most ``timeout`` seconds for its answer. Failures
are raised as the ``KBrokerError`` subclass of the broker's error code (``error_for_code``), with
the broker's message; a broker that does not answer gives ``RequestTimedOutError``. Mutations
are not retried automatically (a retried create could report ``TopicAlreadyExists`` for the
topic it created itself); callers decide.

Config values may be given as text (Kafka's form) or as Python values: ``True`` -> ``"true"``,
``86400000`` -> ``"86400000"``, ``["compact", "delete"]`` -> ``"compact,delete"``. In
``alter_topic_config`` a ``None`` value removes the override (back to the broker default).

Thread-safe: requests are serialized by a lock (one socket, one request at a time).
"""

from __future__ import annotations

import os
import threading
from typing import Any, Mapping

from kbroker.errors import (
    InvalidConfigError,
    InvalidPartitionsError,
    InvalidReplicationFactorError,
    InvalidTopicError,
    UnknownError,
    error_for_code,
)
from kbroker.transport.client.admin_acls import AclAdmin
from kbroker.transport.client.admin_groups import GroupAdmin
from kbroker.transport.client.common import curve_setup, resolve_bootstrap
from kbroker.transport.client.types import PartitionInfo, TopicInfo, WorkerInfo, WorkerStats
from kbroker.transport.client.worker_stats import gather_worker_stats
from kbroker.transport.connection import Connection
from kbroker.transport.messages_admin import (
    AlterConfigs,
    AlterConfigsResource,
    AlterConfigsResponse,
    ConfigEntry,
    CreatableTopic,
    CreateTopics,
    CreateTopicsResponse,
    DeleteTopics,
    DeleteTopicsResponse,
    DescribeCluster,
    DescribeClusterResponse,
    DescribeTopics,
    DescribeTopicsResponse,
)
from kbroker.transport.messages_client import Metadata, MetadataResponse, TopicMetadata
from kbroker.transport.schema import Message

__all__ = ["Admin", "config_text"]

DEFAULT_TIMEOUT = 30.0


def config_text(name: str, value: Any) -> str | None:
    """A config value in Kafka's text form (None stays None: remove the override)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and not isinstance(value, bool):
        return repr(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else list(value)
        if all(isinstance(item, str) for item in items):
            return ",".join(items)
    raise InvalidConfigError(f"topic config {name!r}: cannot use {value!r} ({type(value).__name__}); give the value as text")


def _entries(config: Mapping[str, Any] | None, *, allow_none: bool) -> tuple[ConfigEntry, ...]:
    if config is None:
        return ()
    if not isinstance(config, Mapping):
        raise InvalidConfigError(f"topic configs are a mapping of name -> value, not {type(config).__name__}")
    entries = []
    for name, value in config.items():
        if not isinstance(name, str):
            raise InvalidConfigError(f"topic config names are strings, got {name!r}")
        if value is None and not allow_none:
            raise InvalidConfigError(f"topic config {name!r} needs a value, got None")
        entries.append(ConfigEntry(name, config_text(name, value)))
    return tuple(entries)


def _check_name(name: object) -> str:
    if not isinstance(name, str):
        raise InvalidTopicError(f"a topic name must be a string, not {type(name).__name__}")
    return name


class Admin(GroupAdmin, AclAdmin):
    """Topic and cluster administration. ``Admin(bootstrap)``; a context manager; see the module docstring.

    ``bootstrap``: ``host:port`` or ``tcp://host:port``; default ``$KBROKER_BOOTSTRAP``, else
    ``127.0.0.1:7092``. ``curve_secret_key`` (this client's ``NAME.key_secret``) and
    ``curve_server_key`` (the broker's public ``.key``) turn on CURVE; see transport/curve.py.
    ACLs: ``create_acls`` / ``list_acls`` / ``delete_acls`` (admin_acls.py).
    """

    def __init__(
        self,
        bootstrap: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        curve_secret_key: str | os.PathLike[str] | None = None,
        curve_server_key: str | os.PathLike[str] | None = None,
    ) -> None:
        self._socket_setup = curve_setup(curve_secret_key, curve_server_key)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise InvalidConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.bootstrap = resolve_bootstrap(bootstrap)
        self.timeout = float(timeout)
        self._lock = threading.Lock()
        self._connection: Connection | None = Connection(self.bootstrap, timeout=self.timeout, socket_setup=self._socket_setup)
        self._worker_connections: dict[str, Connection] = {}  # describe_worker_stats, by endpoint

    def __enter__(self) -> Admin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Admin({self.bootstrap!r}{', closed' if self._connection is None else ''})"

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
            for conn in self._worker_connections.values():
                conn.close()
            self._worker_connections.clear()

    def _request(self, message: Message, expected: type[Message]) -> Any:
        with self._lock:
            if self._connection is None:
                raise RuntimeError(f"{self!r} is closed")
            reply = self._connection.request(message)
        if not isinstance(reply, expected):
            raise UnknownError(f"expected {expected.__name__} from {self.bootstrap}, got {type(reply).__name__}")
        return reply

    # --- topics -------------------------------------------------------------------------------

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        """Create a topic. ``replication_factor`` None: the broker default (capped by the live workers)."""
        _check_name(name)
        if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
            raise InvalidPartitionsError(f"partitions must be a positive integer, got {partitions!r}")
        if replication_factor is None:
            factor = -1
        elif isinstance(replication_factor, bool) or not isinstance(replication_factor, int) or replication_factor < 1:
            raise InvalidReplicationFactorError(f"replication_factor must be a positive integer or None, got {replication_factor!r}")
        else:
            factor = replication_factor
        topic = CreatableTopic(name, partitions, factor, _entries(config, allow_none=False))
        reply: CreateTopicsResponse = self._request(
            CreateTopics((topic,), round(self.timeout * 1000), False), CreateTopicsResponse
        )
        for result in reply.topics:
            if result.error_code:
                raise error_for_code(result.error_code, result.error_message)

    def delete_topic(self, name: str) -> None:
        """Delete a topic and its data."""
        _check_name(name)
        reply: DeleteTopicsResponse = self._request(DeleteTopics((name,), round(self.timeout * 1000)), DeleteTopicsResponse)
        for result in reply.topics:
            if result.error_code:
                raise error_for_code(result.error_code, result.error_message)

    def list_topics(self) -> list[str]:
        """Names of every topic, sorted."""
        return [t.name for t in self._topic_metadata()]

    def _topic_metadata(self) -> list[TopicMetadata]:
        """Every topic's metadata (partitions, leaders, replicas), sorted by name (for the CLI)."""
        reply: MetadataResponse = self._request(Metadata(None, False), MetadataResponse)
        return sorted((t for t in reply.topics if t.error_code == 0), key=lambda t: t.name)

    def describe_topic(self, name: str) -> TopicInfo:
        """Partitions (leader, replicas, ISR, offsets; -1 where the leader did not answer) and effective config."""
        _check_name(name)
        reply: DescribeTopicsResponse = self._request(DescribeTopics((name,), True), DescribeTopicsResponse)
        if len(reply.topics) != 1:
            raise UnknownError(f"asked to describe {name!r}, got {len(reply.topics)} topics")
        topic = reply.topics[0]
        if topic.error_code:
            raise error_for_code(topic.error_code, topic.error_message)
        partitions = [
            PartitionInfo(
                p.partition, p.leader_id, p.leader_epoch, list(p.replicas), list(p.isr),
                p.log_start_offset, p.high_watermark, p.log_end_offset,
            )  # fmt: skip
            for p in sorted(topic.partitions, key=lambda p: p.partition)
        ]
        config = {entry.name: entry.value for entry in topic.configs if entry.value is not None}
        return TopicInfo(topic.name, partitions, config)

    def alter_topic_config(self, name: str, config: Mapping[str, Any]) -> None:
        """Set (value) or remove (None) config overrides; keys not named keep their values."""
        _check_name(name)
        entries = _entries(config, allow_none=True)
        if not entries:
            raise InvalidConfigError("alter_topic_config needs at least one config to change")
        reply: AlterConfigsResponse = self._request(
            AlterConfigs((AlterConfigsResource(name, entries),), False), AlterConfigsResponse
        )
        for result in reply.resources:
            if result.error_code:
                raise error_for_code(result.error_code, result.error_message)

    # --- cluster ------------------------------------------------------------------------------

    def describe_cluster(self) -> list[WorkerInfo]:
        """Every worker the controller knows, by id; ``pid`` None while a worker is not running."""
        reply: DescribeClusterResponse = self._request(DescribeCluster(), DescribeClusterResponse)
        return [
            WorkerInfo(w.worker_id, w.endpoint, None if w.pid < 0 else w.pid, w.alive)
            for w in sorted(reply.workers, key=lambda w: w.worker_id)
        ]

    def describe_worker_stats(self, timeout: float | None = None) -> list[WorkerStats]:
        """Every worker with its traffic counters and replicas (state, offsets, size on disk), by id.

        Live workers are asked in parallel, each on its own endpoint; one that does not answer
        within ``timeout`` (default: the smaller of the Admin's timeout and 2 s) comes back with
        ``uptime_ms`` None and ``error`` set, instead of failing the call.
        """
        workers = self.describe_cluster()
        wait = min(self.timeout, 2.0) if timeout is None else timeout
        with self._lock:
            if self._connection is None:
                raise RuntimeError(f"{self!r} is closed")
            return gather_worker_stats(workers, self._worker_connections, wait, socket_setup=self._socket_setup)
