"""Client and worker requests of the controller, as calls on ``ControllerState``.

    request                    here                      the shell then
    CreateTopics               create_topics(...)        persists + sends each Changes, replies
    DeleteTopics               delete_topics(...)        (same)
    AlterConfigs               alter_configs(...)        (same)
    Metadata                   metadata(...)             (same; auto-created topics are Changes;
                                                         __consumer_offsets is created on first ask)
    DescribeTopics             describe_plan(...)        asks each leader's replica manager, then
                               offsets_from(...)         builds the response from the state

Each function returns the response and the ``Changes`` of every operation it applied, in order;
the shell must persist and send them (controller_changes.py) before it replies. Per-topic
failures are ``error_code``/``error_message`` in the response (the ``KBrokerError``'s code and
message); a failed operation changes nothing. Pure: no sockets, no clocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from kbroker.actors.controller_changes import Changes
from kbroker.actors.controller_model import TopicPartition
from kbroker.actors.controller_state import ControllerState
from kbroker.actors.controller_views import Offsets
from kbroker.actors.group_offsets import OFFSETS_TOPIC_PARTITIONS
from kbroker.actors.topic_names import validate_topic_name
from kbroker.errors import InvalidConfigError, InvalidTopicError, KBrokerError
from kbroker.transport.messages_admin import (
    AlterConfigs,
    AlterConfigsResponse,
    AlterConfigsResult,
    ConfigEntry,
    CreateTopicResult,
    CreateTopics,
    CreateTopicsResponse,
    DeleteTopicResult,
    DeleteTopics,
    DeleteTopicsResponse,
)
from kbroker.transport.messages_groups import OFFSETS_TOPIC
from kbroker.transport.messages_client import Metadata, MetadataResponse
from kbroker.transport.messages_internal import DescribeReplicas, DescribeReplicasResponse, ReplicaKey

__all__ = [
    "Applied",
    "alter_configs",
    "create_topics",
    "delete_topics",
    "describe_plan",
    "metadata",
    "offsets_from",
]


@dataclass(frozen=True, slots=True)
class Applied:
    """A response and the changes to persist and send before it goes out."""

    response: object
    changes: tuple[Changes, ...]


def _configs(entries: Iterable[ConfigEntry]) -> dict[str, object]:
    out: dict[str, object] = {}
    for entry in entries:
        if entry.name in out:
            raise InvalidConfigError(f"topic config {entry.name!r} is given twice")
        out[entry.name] = entry.value
    return out


def create_topics(state: ControllerState, request: CreateTopics) -> Applied:
    results, changes = [], []
    for topic in request.topics:
        try:
            created = state.create_topic(
                topic.name,
                topic.num_partitions,
                topic.replication_factor,
                _configs(topic.configs),
                validate_only=request.validate_only,
            )
        except KBrokerError as exc:
            results.append(CreateTopicResult(topic.name, exc.code, exc.message, -1, -1, ()))
            continue
        results.append(created.result())
        changes.append(created.changes)
    return Applied(CreateTopicsResponse(tuple(results)), tuple(changes))


def delete_topics(state: ControllerState, request: DeleteTopics) -> Applied:
    results, changes = [], []
    for name in request.topic_names:
        try:
            changes.append(state.delete_topic(name))
        except KBrokerError as exc:
            results.append(DeleteTopicResult(name, exc.code, exc.message))
            continue
        results.append(DeleteTopicResult(name, 0, None))
    return Applied(DeleteTopicsResponse(tuple(results)), tuple(changes))


def alter_configs(state: ControllerState, request: AlterConfigs) -> Applied:
    results, changes = [], []
    for resource in request.resources:
        try:
            altered = state.alter_config(resource.topic, _configs(resource.configs), validate_only=request.validate_only)
        except KBrokerError as exc:
            results.append(AlterConfigsResult(resource.topic, exc.code, exc.message))
            continue
        results.append(AlterConfigsResult(resource.topic, 0, None))
        changes.append(altered.changes)
    return Applied(AlterConfigsResponse(tuple(results)), tuple(changes))


def metadata(state: ControllerState, request: Metadata, *, auto_create: bool) -> Applied:
    """Metadata; unknown (legal, non-internal) topics are created with the defaults first when both
    the broker (``auto_create``) and the request allow it. A creation that fails (no live worker)
    leaves the topic unknown in the response, which clients retry."""
    changes = []
    if request.allow_auto_topic_creation and request.topics is not None and OFFSETS_TOPIC in request.topics:
        created = create_offsets_topic(state)  # whatever auto_create says: the broker's own topic
        if created is not None:
            changes.append(created)
    if auto_create and request.allow_auto_topic_creation and request.topics is not None:
        for name in dict.fromkeys(request.topics):
            if name in state.topics or not _creatable(name):
                continue
            try:
                changes.append(state.create_topic(name).changes)
            except KBrokerError:
                continue
    response: MetadataResponse = state.metadata_response(request.topics)
    return Applied(response, tuple(changes))


def create_offsets_topic(state: ControllerState) -> Changes | None:
    """Create ``__consumer_offsets`` (compacted, replication factor min(3, live workers)) if missing."""
    if OFFSETS_TOPIC in state.topics:
        return None
    factor = min(3, len(state.live_workers()))
    if factor < 1:
        return None
    config = {"cleanup.policy": "compact", "min.insync.replicas": "1"}
    try:
        return state.create_topic(OFFSETS_TOPIC, OFFSETS_TOPIC_PARTITIONS, factor, config, internal=True).changes
    except KBrokerError:
        return None


def _creatable(name: str) -> bool:
    try:
        validate_topic_name(name)
    except InvalidTopicError:
        return False
    return True


def describe_plan(state: ControllerState, names: Iterable[str] | None) -> dict[int, DescribeReplicas]:
    """Whom to ask for offsets: every live leader of a partition of ``names`` (None: every topic)."""
    wanted = sorted(state.topics) if names is None else [n for n in dict.fromkeys(names) if n in state.topics]
    live = set(state.live_workers())
    keys: dict[int, list[ReplicaKey]] = {}
    for name in wanted:
        for part in state.partitions[name]:
            if part.leader in live:
                keys.setdefault(part.leader, []).append(ReplicaKey(name, part.partition))
    return {w: DescribeReplicas(tuple(k)) for w, k in sorted(keys.items())}


def offsets_from(answers: Mapping[int, DescribeReplicasResponse]) -> Offsets:
    """(log start, high watermark, log end) per partition, from the leaders' own answers only."""
    out: dict[TopicPartition, tuple[int, int, int]] = {}
    for _worker_id, answer in sorted(answers.items()):
        for replica in answer.replicas:
            if replica.error_code == 0 and replica.is_leader:
                out[(replica.topic, replica.partition)] = (
                    replica.log_start_offset,
                    replica.high_watermark,
                    replica.log_end_offset,
                )
    return out
