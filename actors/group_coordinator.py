"""The GroupCoordinator actor: one per worker ("group-coordinator"), coordinator of the consumer
groups whose ``__consumer_offsets`` partition this worker leads.

    client ──ConsumerGroupHeartbeat / OffsetCommit / OffsetFetch / ListGroups / DescribeGroup /
             DeleteGroup──▶ GroupCoordinator ──▶ Group (group_state.py), OffsetStore (group_offsets.py)
    Ticker ──_Tick every tick_interval──▶ leadership (from the MetadataCache) ──▶ loading (group_loader.py),
                                          session expiry, new topics / partitions for subscriptions
    commits / deletions ──ProducePart(acks=all)──▶ local PartitionReplica of __consumer_offsets
                        ◀──PartAnswer── answered only then (a commit is acknowledged once every
                                        in-sync replica has it, so a new leader loads it)

- A group's requests go to the worker leading partition ``group_partition(G)`` of
  ``__consumer_offsets``; anywhere else they get NotCoordinator (16), and while that partition's
  log is being read (after becoming leader) CoordinatorNotAvailable (15): both retriable.
- Losing leadership drops the partition's groups (members rejoin at the new coordinator, which
  loaded the offsets); a new leader epoch reloads.
- Membership is soft state (not written to the log): after a coordinator move, members get
  UnknownMember and join again.
- Deleting a topic deletes its committed offsets (Kafka's cleanupGroupMetadata): before every
  tick and request the coordinator asks the MetadataCache which topics were deleted since its last
  look (group_cleanup.py; a delete + re-create between two looks counts), forgets their offsets
  at once and writes a tombstone per key (retried while it still leads the partition), so a later
  load does not bring them back. Partitions still loading drop them once loaded. A group left
  with no offsets and no members is gone (not listed).

Invariants: every envelope is replied to exactly once (an append that never answers is expired
by its replica's timeout); nothing blocks except a short Describe ask to a local replica while
loading. Not thread-safe: state belongs to the actor.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import pykka

from kbroker.actors.group_assignor import TopicPartition
from kbroker.actors.group_cleanup import DeletionWatch, gone_topics, stale_offsets
from kbroker.actors.group_loader import Leadership
from kbroker.actors.group_offsets import Committed, OffsetKey, OffsetStore, encode_key, encode_value, group_partition
from kbroker.actors.group_state import Group, GroupState, Heartbeat
from kbroker.actors.group_views import committed_offsets, describe_group, listed_group, to_tps, tps_message
from kbroker.actors.metadata_cache import MetadataCache
from kbroker.actors.replica_manager import ReplicaDirectory
from kbroker.actors.replica_requests import Describe, FetchPart, PartAnswer, PartAppended, PartKey, ProducePart
from kbroker.actors.ticker import Ticker
from kbroker.errors import (
    CoordinatorNotAvailableError,
    GroupIdNotFoundError,
    GroupNotEmptyError,
    InvalidRequestError,
    KBrokerError,
    NotCoordinatorError,
    NotLeaderError,
    UnknownError,
    error_for_code,
)
from kbroker.storage.records import build_batch
from kbroker.transport.envelope import Envelope
from kbroker.transport.messages_client import ErrorResponse
from kbroker.transport.messages_groups import (
    OFFSETS_TOPIC,
    ConsumerGroupHeartbeat,
    ConsumerGroupHeartbeatResponse,
    DeleteGroup,
    DeleteGroupResponse,
    DescribeGroup,
    DescribeGroupResponse,
    ListGroups,
    ListGroupsResponse,
    OffsetCommit,
    OffsetCommitResponse,
    OffsetFetch,
    OffsetFetchResponse,
)
from kbroker.transport.schema import Message

__all__ = ["GroupCoordinator"]

log = logging.getLogger(__name__)

_APPEND_TIMEOUT_MS = 10_000
_LOAD_FETCH_BYTES = 4 * 1024 * 1024


class _Tick:
    __slots__ = ()


_TICK = _Tick()


@dataclass(slots=True)
class _Append:
    envelope: Envelope | None  # None: tombstones of deleted topics' offsets (nobody to answer)
    records: list[tuple[OffsetKey, Committed | None]]
    then: Callable[[], Message] | None  # the reply once written (None with no envelope)
    since_ms: int = 0  # tombstones: when they were decided (a retry skips keys committed since)


class GroupCoordinator(pykka.ThreadingActor):
    _HANDLERS: ClassVar[dict[type[Message], str]] = {
        ConsumerGroupHeartbeat: "_on_heartbeat",
        OffsetCommit: "_on_commit",
        OffsetFetch: "_on_offset_fetch",
        ListGroups: "_on_list_groups",
        DescribeGroup: "_on_describe",
        DeleteGroup: "_on_delete",
    }
    ACCEPTS: ClassVar[frozenset[type[Message]]] = frozenset(_HANDLERS)

    def __init__(
        self,
        *,
        worker_id: int,
        cache: MetadataCache,
        directory: ReplicaDirectory,
        tick_interval: float | None = 0.1,
        clock: Callable[[], int] = lambda: time.monotonic_ns() // 1_000_000,
        wall_clock: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        super().__init__()
        self.worker_id = worker_id
        self._cache = cache
        self._directory = directory
        self._tick_interval = tick_interval
        self._clock = clock
        self._wall = wall_clock
        self._leadership = Leadership()
        self._store = OffsetStore()
        self._groups: dict[str, Group] = {}
        self._appends: dict[int, _Append] = {}
        self._deletions = DeletionWatch(cache.snapshot.deletions)
        self._unwritten: dict[int, tuple[list[OffsetKey], int]] = {}  # partition -> tombstones to retry, since_ms
        self._ids = itertools.count(1)
        self._ticker: Ticker | None = None

    def on_start(self) -> None:
        if self._tick_interval is not None:
            self._ticker = Ticker(self.actor_ref, _TICK, self._tick_interval, name="kbroker-group-ticks").start()

    def on_stop(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()

    def on_receive(self, message: object) -> Any:
        if isinstance(message, _Tick):
            self._on_tick()
        elif isinstance(message, PartAnswer):
            self._on_part_answer(message)
        elif isinstance(message, PartAppended):
            pass
        elif isinstance(message, Envelope):
            self._dispatch(message)
        else:
            log.warning("group coordinator ignored an unexpected message %r", message)
        return None

    def _dispatch(self, envelope: Envelope) -> None:
        handler = self._HANDLERS.get(type(envelope.message))
        try:
            self._sync_deleted_topics()
            if handler is None:
                raise InvalidRequestError(f"the group coordinator does not serve {type(envelope.message).__name__}")
            reply = getattr(self, handler)(envelope)
            if reply is not None:
                envelope.reply(reply)
        except Exception as exc:
            error = exc if isinstance(exc, KBrokerError) else UnknownError(f"the group coordinator failed: {exc!r}")
            if not isinstance(exc, KBrokerError):
                log.exception("group coordinator failed on %r", envelope)
            if not envelope.replied:
                envelope.reply(_error_reply(envelope.message, error))
        finally:
            envelope.done()

    # --- where groups live ------------------------------------------------------------------

    def _offsets_partitions(self) -> int:
        state = self._cache.snapshot.topics.get(OFFSETS_TOPIC)
        return len(state.partitions) if state is not None else 0

    def _check_coordinator(self, group_id: str) -> None:
        if not group_id:
            raise InvalidRequestError("group_id must not be empty")
        count = self._offsets_partitions()
        if count == 0:
            raise CoordinatorNotAvailableError(f"{OFFSETS_TOPIC} does not exist yet; ask for its metadata (it is created on first use) and retry")
        p = group_partition(group_id, count)
        if self._leadership.serving(p):
            return
        if self._leadership.loading(p):
            raise CoordinatorNotAvailableError(f"worker {self.worker_id} is loading the offsets of group {group_id!r}; retry shortly")
        raise NotCoordinatorError(f"worker {self.worker_id} is not the coordinator of group {group_id!r} ({OFFSETS_TOPIC}-{p}); look it up again")

    def _counts(self) -> dict[str, int]:
        return {name: len(t.partitions) for name, t in self._cache.snapshot.topics.items() if not name.startswith("__")}

    def _group(self, group_id: str) -> Group:
        group = self._groups.get(group_id)
        if group is None or group.state is GroupState.DEAD:
            group = self._groups[group_id] = Group(group_id)
        return group

    # --- requests ---------------------------------------------------------------------------

    def _on_heartbeat(self, envelope: Envelope) -> Message:
        req: ConsumerGroupHeartbeat = envelope.message
        try:
            self._check_coordinator(req.group_id)
            group = self._group(req.group_id)
            hb = Heartbeat(req.member_id, req.member_epoch, req.instance_id, req.client_id, req.session_timeout_ms,
                           frozenset(req.subscribed_topics), req.subscribed_topic_regex, to_tps(req.owned_partitions))
            result = group.heartbeat(hb, self._clock(), self._counts())
        except KBrokerError as exc:
            return ConsumerGroupHeartbeatResponse(exc.code, exc.message, req.member_id, -1, (), False)
        if result is None:
            return ConsumerGroupHeartbeatResponse(0, None, req.member_id, req.member_epoch, (), False)
        return ConsumerGroupHeartbeatResponse(0, None, result.member_id, result.member_epoch, tps_message(result.assignment), result.pending)

    def _on_commit(self, envelope: Envelope) -> None:
        req: OffsetCommit = envelope.message
        self._check_coordinator(req.group_id)
        tps = {TopicPartition(t.name, p.partition) for t in req.topics for p in t.partitions}
        self._group(req.group_id).check_commit(req.member_id, req.member_epoch, tps)
        now = self._wall()
        records = [
            (OffsetKey(req.group_id, t.name, p.partition), Committed(p.committed_offset, p.metadata, now))
            for t in req.topics for p in t.partitions
        ]
        self._append(envelope, records, lambda: OffsetCommitResponse(0, None))

    def _on_offset_fetch(self, envelope: Envelope) -> Message:
        req: OffsetFetch = envelope.message
        self._check_coordinator(req.group_id)
        wanted = None if req.topics is None else to_tps(req.topics)
        return OffsetFetchResponse(0, None, committed_offsets(self._store.offsets(req.group_id), wanted))

    def _on_list_groups(self, envelope: Envelope) -> Message:
        count = self._offsets_partitions()
        names = set(self._store.groups()) | {g for g, group in self._groups.items() if group.members}
        served = [g for g in sorted(names) if count and self._leadership.serving(group_partition(g, count))]
        return ListGroupsResponse(0, None, tuple(listed_group(g, self._groups.get(g)) for g in served))

    def _on_describe(self, envelope: Envelope) -> Message:
        req: DescribeGroup = envelope.message
        self._check_coordinator(req.group_id)
        return describe_group(req.group_id, self._groups.get(req.group_id), self._store.offsets(req.group_id))

    def _on_delete(self, envelope: Envelope) -> None:
        req: DeleteGroup = envelope.message
        self._check_coordinator(req.group_id)
        group = self._groups.get(req.group_id)
        if group is not None and group.members:
            raise GroupNotEmptyError(f"group {req.group_id!r} has {len(group.members)} active member(s); stop them before deleting it")
        keys = list(self._store.tombstones(req.group_id))
        if not keys and (group is None or group.state is GroupState.DEAD):
            raise GroupIdNotFoundError(f"no group {req.group_id!r} exists (no members, no committed offsets)")

        def deleted() -> Message:
            stale = self._groups.pop(req.group_id, None)
            if stale is not None and stale.state is GroupState.EMPTY:
                stale.mark_dead()
            return DeleteGroupResponse(0, None)

        if keys:
            self._append(envelope, [(k, None) for k in keys], deleted)
        else:
            envelope.reply(deleted())

    # --- writing to __consumer_offsets ------------------------------------------------------

    def _append(self, envelope: Envelope | None, records: list[tuple[OffsetKey, Committed | None]],
                then: Callable[[], Message] | None, since_ms: int = 0) -> None:
        """Write ``records`` (all for groups of one partition); applied to the store once acknowledged."""
        group_id = records[0][0].group
        p = group_partition(group_id, self._offsets_partitions())
        ref = self._directory.get(OFFSETS_TOPIC, p)
        if ref is None:
            raise NotCoordinatorError(f"worker {self.worker_id} holds no replica of {OFFSETS_TOPIC}-{p}; look the coordinator up again")
        now = self._wall()
        batch = build_batch([(encode_value(c), encode_key(k), None, now) for k, c in records])
        rid = next(self._ids)
        self._appends[rid] = _Append(envelope, records, then, since_ms)
        key = PartKey(self.actor_ref, ("append", rid), OFFSETS_TOPIC, p)
        try:
            ref.tell(ProducePart(key, batch, -1, _APPEND_TIMEOUT_MS))
        except pykka.ActorDeadError:
            del self._appends[rid]
            raise NotCoordinatorError(f"the replica of {OFFSETS_TOPIC}-{p} on worker {self.worker_id} stopped; look the coordinator up again") from None

    def _on_part_answer(self, answer: PartAnswer) -> None:
        kind, ident = answer.key.request
        if kind == "load":
            self._on_loaded(answer.key.partition, ident, answer.response)
            return
        pending = self._appends.pop(ident, None)
        if pending is None:
            return
        code = answer.response.error_code
        envelope = pending.envelope
        if envelope is None:
            self._on_tombstones_written(answer.key.partition, pending, code)
        elif code == 0 and self._leadership.serving(answer.key.partition):
            for key, committed in pending.records:
                self._store.apply(key, committed)
            assert pending.then is not None
            envelope.reply(pending.then())
        else:
            error = error_for_code(code, answer.response.error_message) if code else NotLeaderError()
            if isinstance(error, NotLeaderError):
                error = NotCoordinatorError(f"worker {self.worker_id} no longer leads {OFFSETS_TOPIC}-{answer.key.partition}; look the coordinator up again")
            elif error.retriable:
                error = CoordinatorNotAvailableError(f"writing to {OFFSETS_TOPIC}-{answer.key.partition} failed ({error.message}); retry")
            envelope.reply(_error_reply(envelope.message, error))

    # --- time: leadership, loading, sessions ------------------------------------------------

    def _on_tick(self) -> None:
        self._sync_deleted_topics()
        snapshot = self._cache.snapshot
        state = snapshot.topics.get(OFFSETS_TOPIC)
        count = len(state.partitions) if state is not None else 0
        led = {
            p.partition: p.leader_epoch
            for p in (state.partitions if state is not None else ())
            if p.leader_id == self.worker_id and self._directory.get(OFFSETS_TOPIC, p.partition) is not None
        }
        _, lost = self._leadership.update(led)
        for p in lost:
            self._unwritten.pop(p, None)
            for g in self._store.drop_partition(p, count):
                self._groups.pop(g, None)
            for g in [g for g in self._groups if group_partition(g, count) == p]:
                del self._groups[g]
            log.info("worker %d: no longer coordinates the groups of %s-%d", self.worker_id, OFFSETS_TOPIC, p)
        for load in self._leadership.loads.values():
            if not load.done and not load.in_flight:
                self._load_step(load.partition)
        for p, (keys, since_ms) in list(self._unwritten.items()):
            del self._unwritten[p]
            self._forget(keys, since_ms)
        now = self._clock()
        counts = self._counts()
        for g, group in list(self._groups.items()):
            if group.members:
                for member in group.expire(now, counts):
                    log.info("group %r: member %s timed out", g, member)
                group.metadata_changed(counts)
            if not group.members:
                del self._groups[g]  # its committed offsets (if any) stay in the store

    def _load_step(self, partition: int) -> None:
        load = self._leadership.loads[partition]
        ref = self._directory.get(OFFSETS_TOPIC, partition)
        if ref is None:
            return
        try:
            described = ref.ask(Describe(), timeout=2.0)
        except Exception:
            return
        load.on_described(described.is_leader, described.log_start_offset, described.log_end_offset)
        if load.done:
            log.info("worker %d coordinates the groups of %s-%d (loaded up to offset %d)",
                     self.worker_id, OFFSETS_TOPIC, partition, load.next_offset)
            gone = load.deleted | gone_topics(self._deletions.ever, self._cache.snapshot.topics)
            self._forget(stale_offsets(self._store.in_partition(partition, self._offsets_partitions()), gone))
            return
        if load.end_offset is None or described.high_watermark <= load.next_offset:
            return  # not leader yet, or waiting for the followers: the high watermark moves up
        load.in_flight = True
        key = PartKey(self.actor_ref, ("load", load.leader_epoch), OFFSETS_TOPIC, partition)
        try:
            ref.tell(FetchPart(key, load.next_offset, _LOAD_FETCH_BYTES, 0, 0, -1))
        except pykka.ActorDeadError:
            load.in_flight = False

    def _on_loaded(self, partition: int, epoch: int, response: Any) -> None:
        load = self._leadership.loads.get(partition)
        if load is None or load.leader_epoch != epoch:
            return
        if response.error_code:
            load.in_flight = False
            return
        skipped = self._store.apply_records(load.on_records(response.records))
        if skipped:
            log.warning("%s-%d: skipped %d records that are not committed offsets", OFFSETS_TOPIC, partition, skipped)
        self._load_step(partition)

    # --- deleted topics: their committed offsets go -----------------------------------------

    def _sync_deleted_topics(self) -> None:
        deleted = self._deletions.deleted_since(self._cache.snapshot.deletions)
        if not deleted:
            return
        log.info("worker %d: topics %s were deleted; dropping their committed offsets", self.worker_id, sorted(deleted))
        for load in self._leadership.loads.values():
            if not load.done:
                load.deleted |= deleted
        in_flight = [k for a in self._appends.values() if a.envelope is not None for k, c in a.records
                     if c is not None and k.topic in deleted]  # commits answered after this: tombstoned after them
        self._forget(stale_offsets(self._store.all(), deleted) + in_flight)

    def _forget(self, keys: list[OffsetKey], since_ms: int | None = None) -> None:
        """Drop ``keys`` from the store now and write their tombstones (served partitions only: a
        loading one drops them again once loaded). ``since_ms``: a retry; keys committed after it stay."""
        if not keys:
            return
        count = self._offsets_partitions()
        if count == 0:
            return
        now = self._wall() if since_ms is None else since_ms
        by_partition: dict[int, list[OffsetKey]] = {}
        for key in dict.fromkeys(keys):
            committed = self._store.get(key.group, TopicPartition(key.topic, key.partition))
            if since_ms is not None and committed is not None and committed.commit_ms >= since_ms:
                continue  # committed again (a re-created topic) since the deletion
            self._store.apply(key, None)
            p = group_partition(key.group, count)
            if self._leadership.serving(p):
                by_partition.setdefault(p, []).append(key)
        for p, ks in by_partition.items():
            try:
                self._append(None, [(k, None) for k in ks], None, now)
            except NotCoordinatorError as exc:
                log.warning("%s-%d: could not write %d tombstones of deleted topics: %s", OFFSETS_TOPIC, p, len(ks), exc.message)

    def _on_tombstones_written(self, partition: int, pending: _Append, code: int) -> None:
        if not self._leadership.serving(partition):
            return  # the next coordinator loads the log: deleted topics it saw are dropped there
        keys = [k for k, _ in pending.records]
        if code == 0:
            for key in keys:  # again: a commit in flight at the deletion was written (and answered) before them
                self._store.apply(key, None)
            return
        log.warning("%s-%d: writing %d tombstones of deleted topics failed (error %d); retrying",
                    OFFSETS_TOPIC, partition, len(keys), code)
        queued, since_ms = self._unwritten.get(partition, ([], pending.since_ms))
        self._unwritten[partition] = (queued + keys, min(since_ms, pending.since_ms))


def _error_reply(request: Message, error: KBrokerError) -> Message:
    if isinstance(request, OffsetCommit):
        return OffsetCommitResponse(error.code, error.message)
    if isinstance(request, OffsetFetch):
        return OffsetFetchResponse(error.code, error.message, ())
    if isinstance(request, DeleteGroup):
        return DeleteGroupResponse(error.code, error.message)
    if isinstance(request, DescribeGroup):
        return DescribeGroupResponse(error.code, error.message, request.group_id, "Dead", -1, (), ())
    return ErrorResponse(error.code, error.message)
