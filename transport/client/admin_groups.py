"""Consumer-group administration, mixed into ``Admin``: list, describe (with lag), delete, reset offsets.

    list_groups        ListGroups to every live worker's "group-coordinator" (each lists its own groups)
    describe_group     DescribeGroup to the group's coordinator + the topics' high watermarks
                       (DescribeTopics): lag = high watermark - committed offset, per partition
    delete_group       DeleteGroup (tombstones in __consumer_offsets); only without active members
    reset_offsets      target offsets (log start / high watermark / an offset / ListOffsets by
                       timestamp at each leader), committed from outside the group: refused
                       (GroupNotEmpty) while the group has active members

Requests to a coordinator retry its moves (NotCoordinator, CoordinatorNotAvailable) until the
Admin's timeout. Runs under the Admin's lock; the sockets it opens are closed before it returns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from kbroker.errors import GroupIdNotFoundError, InvalidConfigError, LeaderNotAvailableError, UnknownError, error_for_code
from kbroker.transport.client.common import ConnectionPool
from kbroker.transport.client.group_client import GroupClient
from kbroker.transport.client.types import GroupInfo, GroupPartition, TopicPartition
from kbroker.transport.messages_client import (
    READ_UNCOMMITTED,
    ListOffsets,
    ListOffsetsPartition,
    ListOffsetsResponse,
    ListOffsetsTopic,
    Metadata,
    MetadataResponse,
)
from kbroker.transport.messages_groups import (
    GROUP_COORDINATOR,
    DeleteGroup,
    DeleteGroupResponse,
    DescribeGroup,
    DescribeGroupResponse,
    ListedGroup,
    ListGroups,
    ListGroupsResponse,
)

if TYPE_CHECKING:
    from kbroker.transport.client.types import TopicInfo, WorkerInfo

__all__ = ["GroupAdmin"]

RESET_TARGETS = ("earliest", "latest")


class GroupAdmin:
    """The group half of ``Admin`` (expects ``bootstrap``, ``timeout``, ``describe_topic``, ``describe_cluster``)."""

    bootstrap: str
    timeout: float

    if TYPE_CHECKING:
        def describe_topic(self, name: str) -> TopicInfo: ...
        def describe_cluster(self) -> list[WorkerInfo]: ...

    def _group_client(self, group_id: object) -> GroupClient:
        if not isinstance(group_id, str) or not group_id:
            raise InvalidConfigError(f"a group id must be a non-empty string, got {group_id!r}")
        return GroupClient(self.bootstrap, group_id, timeout_s=self.timeout, pool=self._pool())

    def _pool(self) -> ConnectionPool:
        return ConnectionPool(timeout=self.timeout, socket_setup=getattr(self, "_socket_setup", None))

    def list_group_listings(self) -> list[ListedGroup]:
        """Every group (with members or committed offsets): id, state, member count; sorted by id."""
        workers = [w for w in self.describe_cluster() if w.alive]
        pool = self._pool()
        found: dict[str, ListedGroup] = {}
        try:
            for w in workers:
                reply = pool.get(w.endpoint).request(ListGroups(), to=GROUP_COORDINATOR, timeout=min(self.timeout, 5.0))
                if not isinstance(reply, ListGroupsResponse):
                    raise UnknownError(f"expected ListGroupsResponse from {w.endpoint}, got {type(reply).__name__}")
                if reply.error_code:
                    raise error_for_code(reply.error_code, reply.error_message)
                for g in reply.groups:
                    found[g.group_id] = g
        finally:
            pool.close()
        return [found[g] for g in sorted(found)]

    def list_groups(self) -> list[str]:
        """Ids of every consumer group (with active members or committed offsets), sorted."""
        return [g.group_id for g in self.list_group_listings()]

    def describe_group(self, group_id: str) -> GroupInfo:
        """State, members, and per partition: owner, committed offset, high watermark and lag."""
        client = self._group_client(group_id)
        try:
            reply = client.request(DescribeGroup(group_id), DescribeGroupResponse)
        finally:
            client.close()
        if reply.state == "Dead":
            raise GroupIdNotFoundError(f"no consumer group {group_id!r} (no members, no committed offsets)")
        owner: dict[TopicPartition, str] = {}
        for m in reply.members:
            for t in m.assignment:
                for p in t.partitions:
                    owner[TopicPartition(t.topic, p)] = m.member_id
        committed = {TopicPartition(o.topic, o.partition): o.committed_offset for o in reply.offsets if o.committed_offset >= 0}
        tps = sorted(set(owner) | set(committed))
        watermarks = self._high_watermarks({tp.topic for tp in tps})
        partitions = []
        for tp in tps:
            hw = watermarks.get(tp, -1)
            offset = committed.get(tp)
            lag = max(0, hw - offset) if offset is not None and hw >= 0 else None
            partitions.append(GroupPartition(tp.topic, tp.partition, owner.get(tp), offset, hw, lag))
        return GroupInfo(reply.group_id, reply.state, [m.member_id for m in reply.members], partitions)

    def _high_watermarks(self, topics: Iterable[str]) -> dict[TopicPartition, int]:
        out: dict[TopicPartition, int] = {}
        for topic in sorted(topics):
            try:
                info = self.describe_topic(topic)
            except Exception:
                continue  # deleted since: no watermark, no lag
            for p in info.partitions:
                out[TopicPartition(topic, p.partition)] = p.high_watermark
        return out

    def delete_group(self, group_id: str) -> None:
        """Delete a group with no active members: its committed offsets are removed."""
        client = self._group_client(group_id)
        try:
            client.request(DeleteGroup(group_id), DeleteGroupResponse)
        finally:
            client.close()

    def reset_offsets(
        self,
        group_id: str,
        topic: str,
        *,
        to: str | None = None,
        offset: int | None = None,
        timestamp_ms: int | None = None,
        partitions: Iterable[int] | None = None,
    ) -> dict[TopicPartition, int]:
        """Set the group's committed offsets of ``topic`` (all partitions, or ``partitions``) to
        ``to="earliest"|"latest"``, to ``offset`` (clamped to the log), or to the first offset at or
        after ``timestamp_ms`` (the high watermark where none is). Only for a group with no active
        members (else GroupNotEmptyError). Returns the offsets committed."""
        chosen = [name for name, value in (("to", to), ("offset", offset), ("timestamp_ms", timestamp_ms)) if value is not None]
        if len(chosen) != 1:
            raise InvalidConfigError(f"reset_offsets needs exactly one of to=, offset=, timestamp_ms= (got {chosen or 'none'})")
        if to is not None and to not in RESET_TARGETS:
            raise InvalidConfigError(f"to={to!r}: use 'earliest' or 'latest' (or offset= / timestamp_ms=)")
        for name, value in (("offset", offset), ("timestamp_ms", timestamp_ms)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise InvalidConfigError(f"{name} must be an integer >= 0, got {value!r}")
        client = self._group_client(group_id)
        try:
            info = self.describe_topic(topic)
            wanted = {p.partition for p in info.partitions} if partitions is None else set(partitions)
            known = {p.partition: p for p in info.partitions}
            unknown = sorted(wanted - set(known))
            if unknown:
                raise InvalidConfigError(f"topic {topic!r} has no partition(s) {unknown} (it has {len(known)})")
            found: dict[int, int] = {}
            if timestamp_ms is not None:
                found = self._offsets_for_time(topic, sorted(wanted), timestamp_ms)
            targets: dict[TopicPartition, int] = {}
            for p in sorted(wanted):
                part = known[p]
                if to == "earliest":
                    target = part.log_start_offset
                elif to == "latest":
                    target = part.high_watermark
                elif offset is not None:
                    target = min(max(offset, part.log_start_offset), part.high_watermark)
                else:
                    target = found.get(p, -1)
                    target = part.high_watermark if target < 0 else target
                if target < 0:
                    raise UnknownError(f"the leader of {topic}-{p} has not reported its offsets yet; retry")
                targets[TopicPartition(topic, p)] = target
            client.commit(targets, "", -1)
        finally:
            client.close()
        return targets

    def _offsets_for_time(self, topic: str, partitions: list[int], timestamp_ms: int) -> dict[int, int]:
        pool = self._pool()
        try:
            meta = pool.get(self.bootstrap).request(Metadata((topic,), False), timeout=self.timeout)
            if not isinstance(meta, MetadataResponse):
                raise UnknownError(f"expected MetadataResponse, got {type(meta).__name__}")
            endpoints = {w.worker_id: w.endpoint for w in meta.workers}
            by_leader: dict[str, list[Any]] = {}
            for t in meta.topics:
                for part in t.partitions:
                    if t.name == topic and part.partition in partitions:
                        endpoint = endpoints.get(part.leader_id)
                        if endpoint is None:
                            raise LeaderNotAvailableError(f"{topic}-{part.partition} has no leader right now; retry")
                        by_leader.setdefault(endpoint, []).append(ListOffsetsPartition(part.partition, timestamp_ms, part.leader_epoch))
            out: dict[int, int] = {}
            for endpoint, parts in by_leader.items():
                reply = pool.get(endpoint).request(ListOffsets(READ_UNCOMMITTED, (ListOffsetsTopic(topic, tuple(parts)),)), timeout=self.timeout)
                if not isinstance(reply, ListOffsetsResponse):
                    raise UnknownError(f"expected ListOffsetsResponse from {endpoint}, got {type(reply).__name__}")
                for t in reply.topics:
                    for r in t.partitions:
                        if r.error_code:
                            raise error_for_code(r.error_code, r.error_message)
                        out[r.partition] = r.offset
            return out
        finally:
            pool.close()
