"""The controller's model rendered as wire messages (read-only views; nothing here mutates).

- to workers: ``UpdateMetadata`` (full, or incremental: whole ``TopicState``s of the changed topics
  replace the worker's entries, ``deleted_topics`` are dropped, ``workers`` is always the complete
  live set) and ``LeaderAndIsr`` (only partitions with a replica on the receiving worker, and the
  endpoints of the live leaders it names);
- to clients: ``MetadataResponse``, ``DescribeTopicsResponse``, ``DescribeClusterResponse``
  (``CreateTopicResult`` and ``AlterIsrResponse`` come from the results in controller_changes).

Pure: functions of a ``ControllerState`` (and the ``ChangeSet`` being committed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from kbroker.actors.controller_changes import ChangeSet, Send
from kbroker.actors.controller_model import Partition, TopicPartition
from kbroker.actors.topic_names import validate_topic_name
from kbroker.actors.worker_liveness import WorkerState
from kbroker.errors import InvalidTopicError, LeaderNotAvailableError, UnknownTopicOrPartitionError
from kbroker.storage.config import CONFIG_KEYS
from kbroker.transport.messages_admin import (
    ConfigEntry,
    DescribeClusterResponse,
    DescribeTopicsResponse,
    PartitionDescription,
    TopicDescription,
    WorkerDescription,
)
from kbroker.transport.messages_client import MetadataResponse, PartitionMetadata, TopicMetadata, WorkerEndpoint
from kbroker.transport.messages_internal import LeaderAndIsr, TopicState, UpdateMetadata

if TYPE_CHECKING:
    from kbroker.actors.controller_state import ControllerState

__all__ = [
    "build_sends",
    "describe_cluster_response",
    "describe_topics_response",
    "full_update_metadata",
    "leader_and_isr",
    "live_endpoints",
    "metadata_response",
    "topic_state",
]

Offsets = Mapping[TopicPartition, tuple[int, int, int]]
"""(log start offset, high watermark, log end offset) per partition, as leaders reported them."""


def live_endpoints(state: "ControllerState", only: Iterable[int] | None = None) -> tuple[WorkerEndpoint, ...]:
    """Endpoints of the live workers (of those in ``only``, if given), by id."""
    wanted = None if only is None else set(only)
    return tuple(
        WorkerEndpoint(w, state.workers[w].endpoint)
        for w in state.live_workers()
        if wanted is None or w in wanted
    )


def topic_state(state: "ControllerState", name: str, parts: Sequence[Partition] | None = None) -> TopicState:
    """A topic with its overrides and ``parts`` (default: every partition)."""
    chosen = state.partitions[name] if parts is None else parts
    return TopicState(name, state.topics[name].config_entries(), tuple(p.to_state() for p in chosen))


def full_update_metadata(state: "ControllerState") -> UpdateMetadata:
    topics = tuple(topic_state(state, name) for name in sorted(state.topics))
    return _update_metadata(state, True, topics, ())


def leader_and_isr(state: "ControllerState", worker_id: int, parts: Iterable[Partition]) -> LeaderAndIsr | None:
    """LeaderAndIsr for ``worker_id`` with those of ``parts`` it holds a replica of (None if none)."""
    by_topic: dict[str, list[Partition]] = {}
    for part in sorted(parts, key=lambda p: p.tp):
        if worker_id in part.replicas:
            by_topic.setdefault(part.topic, []).append(part)
    if not by_topic:
        return None
    topics = tuple(topic_state(state, name, group) for name, group in by_topic.items())
    leaders = {p.leader for group in by_topic.values() for p in group}
    return LeaderAndIsr(
        state.settings.controller_id, state.controller_epoch, live_endpoints(state, leaders), topics
    )


def build_sends(state: "ControllerState", changes: ChangeSet, version_moved: bool) -> tuple[Send, ...]:
    """UpdateMetadata to every live worker (full to those in ``full_sync``), then LeaderAndIsr."""
    live = state.live_workers()
    sends: list[Send] = []
    incremental = None
    if version_moved:
        topics = tuple(topic_state(state, name) for name in sorted(changes.topics) if name in state.topics)
        incremental = _update_metadata(state, False, topics, tuple(changes.deleted_topics))
    full = full_update_metadata(state) if changes.full_sync else None
    for w in live:
        message = full if w in changes.full_sync else incremental
        if message is not None:
            sends.append(Send(w, message))
    changed = [changes.partitions[tp] for tp in sorted(changes.leader_changed)]
    for w in live:
        if w in changes.full_sync:
            parts: Iterable[Partition] = (p for name in sorted(state.partitions) for p in state.partitions[name])
        else:
            parts = changed
        message = leader_and_isr(state, w, parts)
        if message is not None:
            sends.append(Send(w, message))
    return tuple(sends)


def _update_metadata(
    state: "ControllerState", full: bool, topics: tuple[TopicState, ...], deleted: tuple[str, ...]
) -> UpdateMetadata:
    return UpdateMetadata(
        state.settings.controller_id,
        state.controller_epoch,
        state.metadata_version,
        full,
        live_endpoints(state),
        topics,
        deleted,
    )


# --- client responses ---------------------------------------------------------------------


def metadata_response(state: "ControllerState", names: Sequence[str] | None) -> MetadataResponse:
    """Metadata for ``names`` (None: every topic). Unknown or illegal names get a per-topic error;
    auto-creation is the shell's call (create first, then build the response)."""
    wanted = sorted(state.topics) if names is None else list(dict.fromkeys(names))
    topics = []
    for name in wanted:
        error = _topic_error(state, name)
        if error is not None:
            topics.append(TopicMetadata(name, error.code, error.message, ()))
            continue
        parts = tuple(
            PartitionMetadata(
                p.partition,
                0 if p.online else LeaderNotAvailableError.code,
                p.leader,
                p.leader_epoch,
                p.replicas,
                p.isr,
            )
            for p in state.partitions[name]
        )
        topics.append(TopicMetadata(name, 0, None, parts))
    return MetadataResponse(live_endpoints(state), state.settings.controller_id, tuple(topics))


def describe_topics_response(
    state: "ControllerState",
    names: Sequence[str] | None,
    include_configs: bool,
    offsets: Offsets | None = None,
) -> DescribeTopicsResponse:
    """Topics with partitions (offsets -1 unless given) and, if asked, every effective config."""
    wanted = sorted(state.topics) if names is None else list(dict.fromkeys(names))
    offsets = offsets or {}
    out = []
    for name in wanted:
        error = _topic_error(state, name)
        if error is not None:
            out.append(TopicDescription(name, error.code, error.message, (), ()))
            continue
        parts = tuple(
            PartitionDescription(
                p.partition, p.leader, p.leader_epoch, p.replicas, p.isr, *offsets.get(p.tp, (-1, -1, -1))
            )
            for p in state.partitions[name]
        )
        configs = _effective_entries(state, name) if include_configs else ()
        out.append(TopicDescription(name, 0, None, parts, configs))
    return DescribeTopicsResponse(tuple(out))


def describe_cluster_response(
    state: "ControllerState", cluster_id: str, controller_endpoint: str
) -> DescribeClusterResponse:
    """Every worker ever registered, by id; pid -1 unless it is alive or fenced (running)."""
    workers = tuple(
        WorkerDescription(w, s.endpoint, -1 if s.state is WorkerState.DEAD else s.pid, s.alive)
        for w, s in sorted(state.workers.items())
    )
    return DescribeClusterResponse(cluster_id, controller_endpoint, workers)


def _effective_entries(state: "ControllerState", name: str) -> tuple[ConfigEntry, ...]:
    values = state.effective_config(name).to_strings()
    return tuple(ConfigEntry(key, values[key]) for key in CONFIG_KEYS)


def _topic_error(state: "ControllerState", name: str) -> InvalidTopicError | UnknownTopicOrPartitionError | None:
    if name in state.topics:
        return None
    try:
        validate_topic_name(name, allow_internal=True)
    except InvalidTopicError as exc:
        return exc
    return UnknownTopicOrPartitionError(f"topic {name!r} does not exist; create it first (kbroker topics create)")
