"""Requests to a group's coordinator: lookup, heartbeat, commit, committed offsets, admin calls.

    GroupClient ──Metadata("__consumer_offsets")──▶ bootstrap: leader of group_partition(G) = coordinator
                ──request (actor "group-coordinator")──▶ that worker
                   NotCoordinator / CoordinatorNotAvailable / timeout: look up again, retry

Each call retries retriable errors until its deadline (then raises the last error); other
errors are raised at once. Not thread-safe: owned by one thread (the consumer's polling thread,
or an Admin under its lock); ZeroMQ sockets are not thread-safe.
"""

from __future__ import annotations

import time
from typing import Mapping, TypeVar

from kbroker.errors import (
    CoordinatorNotAvailableError,
    KBrokerError,
    NotCoordinatorError,
    RequestTimedOutError,
    UnknownError,
    error_for_code,
)
from kbroker.transport.client.common import ConnectionPool
from kbroker.transport.client.types import TopicPartition
from kbroker.transport.messages_client import Metadata, MetadataResponse
from kbroker.transport.messages_groups import (
    GROUP_COORDINATOR,
    OFFSETS_TOPIC,
    GroupTopicPartitions,
    OffsetCommit,
    OffsetCommitPartition,
    OffsetCommitResponse,
    OffsetCommitTopic,
    OffsetFetch,
    OffsetFetchResponse,
    group_partition,
)
from kbroker.transport.schema import Message

__all__ = ["GroupClient", "commit_topics", "partitions_message"]

M = TypeVar("M", bound=Message)
_BACKOFF_S = 0.1


class GroupClient:
    def __init__(self, bootstrap: str, group_id: str, *, timeout_s: float, pool: ConnectionPool | None = None) -> None:
        self.bootstrap = bootstrap
        self.group_id = group_id
        self.timeout_s = timeout_s
        self._pool = pool or ConnectionPool(timeout=timeout_s)  # a pool with the client's CURVE keys, if any
        self._coordinator: str | None = None

    def close(self) -> None:
        self._pool.close()

    @property
    def coordinator(self) -> str | None:
        return self._coordinator

    def find_coordinator(self, timeout_s: float) -> str:
        """The endpoint of the worker leading the group's partition of ``__consumer_offsets``."""
        reply = self._pool.get(self.bootstrap).request(Metadata((OFFSETS_TOPIC,), True), timeout=max(0.01, timeout_s))
        if not isinstance(reply, MetadataResponse):
            raise UnknownError(f"expected MetadataResponse from {self.bootstrap}, got {type(reply).__name__}")
        topic = next((t for t in reply.topics if t.name == OFFSETS_TOPIC), None)
        if topic is None or topic.error_code or not topic.partitions:
            raise CoordinatorNotAvailableError(f"{OFFSETS_TOPIC} is not ready yet (no live worker to hold it?)")
        p = group_partition(self.group_id, len(topic.partitions))
        part = next((x for x in topic.partitions if x.partition == p), None)
        endpoints = {w.worker_id: w.endpoint for w in reply.workers}
        if part is None or part.leader_id not in endpoints:
            raise CoordinatorNotAvailableError(f"{OFFSETS_TOPIC}-{p} (coordinator of group {self.group_id!r}) has no leader right now")
        self._coordinator = endpoints[part.leader_id]
        return self._coordinator

    def request(self, message: Message, expected: type[M], timeout_s: float | None = None) -> M:
        """Send ``message`` to the coordinator; retriable errors (in the reply's ``error_code`` too)
        are retried with a new lookup until ``timeout_s``."""
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        last: KBrokerError = RequestTimedOutError(f"no answer from the coordinator of group {self.group_id!r}")
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise last
            try:
                return self.request_once(message, expected, remaining)
            except KBrokerError as exc:
                if not exc.retriable:
                    raise
                last = exc
            time.sleep(min(_BACKOFF_S, max(0.0, deadline - time.monotonic())))

    def request_once(self, message: Message, expected: type[M], timeout_s: float) -> M:
        """One try: lookup if needed, send, check the reply's error code (retriable errors raised too)."""
        deadline = time.monotonic() + timeout_s
        endpoint = self._coordinator or self.find_coordinator(timeout_s)
        conn = self._pool.get(endpoint)
        try:
            reply = conn.request(message, to=GROUP_COORDINATOR, timeout=max(0.01, deadline - time.monotonic()))
        except KBrokerError as exc:
            if exc.retriable or isinstance(exc, (NotCoordinatorError, CoordinatorNotAvailableError)):
                self._coordinator = None
            raise
        if not isinstance(reply, expected):
            raise UnknownError(f"expected {expected.__name__} from {endpoint}, got {type(reply).__name__}")
        code = getattr(reply, "error_code", 0)
        if code:
            error = error_for_code(code, getattr(reply, "error_message", None))
            if isinstance(error, (NotCoordinatorError, CoordinatorNotAvailableError)) or error.retriable:
                self._coordinator = None
            raise error
        return reply

    # --- offsets ----------------------------------------------------------------------------

    def commit(self, offsets: Mapping[TopicPartition, int], member_id: str, member_epoch: int, timeout_s: float | None = None) -> None:
        if not offsets:
            return
        self.request(OffsetCommit(self.group_id, member_id, member_epoch, commit_topics(offsets)), OffsetCommitResponse, timeout_s)

    def fetch_offsets(self, partitions: list[TopicPartition] | None, timeout_s: float | None = None) -> dict[TopicPartition, int | None]:
        topics = None if partitions is None else partitions_message(partitions)
        reply = self.request(OffsetFetch(self.group_id, topics), OffsetFetchResponse, timeout_s)
        return {
            TopicPartition(o.topic, o.partition): (o.committed_offset if o.committed_offset >= 0 else None)
            for o in reply.offsets
        }


def commit_topics(offsets: Mapping[TopicPartition, int]) -> tuple[OffsetCommitTopic, ...]:
    by_topic: dict[str, list[OffsetCommitPartition]] = {}
    for tp in sorted(offsets):
        by_topic.setdefault(tp.topic, []).append(OffsetCommitPartition(tp.partition, offsets[tp], None))
    return tuple(OffsetCommitTopic(t, tuple(ps)) for t, ps in by_topic.items())


def partitions_message(partitions: list[TopicPartition]) -> tuple[GroupTopicPartitions, ...]:
    by_topic: dict[str, list[int]] = {}
    for tp in sorted(set(partitions)):
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return tuple(GroupTopicPartitions(t, tuple(ps)) for t, ps in by_topic.items())
