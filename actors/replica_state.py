"""The pure core of the PartitionReplica actor: one replica of one partition.

    ReplicaState                          partition: role, epochs, client requests, waiting requests
      +-- LeaderState | FollowerState     replication: ISR, high watermark, follower progress / fetching
      +-- ReplicaLog                      the log (Log or MemoryLog) + the idempotent producer table
      +-- ProduceWaits                    acks=all produces waiting for the high watermark
      +-- ConsumerReads                   consumer fetches (long poll) and ListOffsets, below the HW

Every entry point takes the time as ``now_ms`` and returns an ``Outbox`` (replica_outbox.py): the
messages the shell must send and the requests that completed. Nothing here touches a socket, a
thread or a clock (STYLE habit 1); the actor shell turns messages into calls and the outbox into
sends. Controller commands that must be refused raise a ``KBrokerError`` (the shell answers
LeaderAndIsr with its code); client requests complete with errors as values.

Invariants:
- Role changes follow ``replica_role.ROLE_TRANSITIONS``. A controller command with an older leader
  epoch than ours is refused (FencedLeaderEpochError); the same epoch only updates the ISR of the
  same role and leader. Requests carrying an older epoch are fenced, a newer one UnknownLeaderEpoch.
- Only a LEADER appends producer batches, answers consumers, ListOffsets and OffsetForLeaderEpoch;
  only a FOLLOWER appends replicated batches (from the leader of its epoch).
- Consumers read only below the high watermark; the high watermark never moves backward (it drops
  only by a follower's truncation, which epochs keep above committed data).
- An acks=all produce succeeds only once the high watermark is past its last offset with at least
  min.insync.replicas in the ISR; leaving leadership fails every waiting request with NotLeader.
Not thread-safe: owned by one actor.
"""

from __future__ import annotations

from typing import Sequence

from kbroker.actors.replica_follower import FollowerState, refuse_push
from kbroker.actors.replica_leader import LeaderState, fetch_error
from kbroker.actors.replica_log import AnyLog, ReplicaLog
from kbroker.actors.replica_outbox import (
    FetchResult, Ident, ListOffsetsResult, MaintenanceResult, Outbox, ReplicaSettings, Send,
)
from kbroker.actors.replica_produce import PendingProduce, ProduceWaits
from kbroker.actors.replica_reads import ConsumerReads
from kbroker.actors.replica_role import FollowerPhase, Role, check_role
from kbroker.errors import (
    FencedLeaderEpochError, InvalidRequestError, InvalidRequiredAcksError, KBrokerError, NotEnoughReplicasError,
    NotLeaderError, UnknownLeaderEpochError, UnknownTopicOrPartitionError,
)
from kbroker.storage.log import ReadResult
from kbroker.transport.messages_internal import (
    AlterIsrResponse, OffsetForLeaderEpoch, OffsetForLeaderEpochResponse, PartitionState, ReplicaAppend,
    ReplicaAppendAck, ReplicaFetch, ReplicaFetchResponse,
)

__all__ = ["ReplicaState"]


class ReplicaState:
    def __init__(
        self, topic: str, partition: int, local_id: int, log: AnyLog, settings: ReplicaSettings | None = None
    ) -> None:
        self.ident = Ident(topic, partition, local_id)
        self.settings = settings or ReplicaSettings()
        self.rlog = ReplicaLog(log)
        self.role = Role.OFFLINE
        self.leader_id = -1
        self.leader_epoch = -1
        self.partition_epoch = -1
        self.replicas: tuple[int, ...] = ()
        self._isr: tuple[int, ...] = ()
        self._leader: LeaderState | None = None
        self._follower: FollowerState | None = None
        self._produces = ProduceWaits(self.rlog)
        self._reads = ConsumerReads(self.rlog)
        self._out = Outbox()

    # ------------------------------------------------------------------ views
    @property
    def log(self) -> AnyLog:
        return self.rlog.log

    @property
    def isr(self) -> tuple[int, ...]:
        return self._leader.isr if self._leader is not None else self._isr

    @property
    def high_watermark(self) -> int:
        return self.rlog.high_watermark

    @property
    def log_end_offset(self) -> int:
        return self.rlog.log_end_offset

    @property
    def log_start_offset(self) -> int:
        return self.rlog.log_start_offset

    @property
    def follower_phase(self) -> FollowerPhase | None:
        return self._follower.phase if self._follower is not None else None

    @property
    def waiting(self) -> tuple[int, int]:
        """(produces, fetches) waiting in purgatory."""
        return len(self._produces), len(self._reads)

    def _drain(self) -> Outbox:
        out, self._out = self._out, Outbox()
        return out

    # ------------------------------------------------------------------ controller commands
    def apply_partition_state(self, state: PartitionState, now_ms: int) -> Outbox:
        """A LeaderAndIsr entry for this partition: lead, follow, or go offline (no leader)."""
        if state.leader_id == self.ident.local_id:
            return self.become_leader(state.leader_epoch, state.partition_epoch, state.replicas, state.isr, now_ms)
        if state.leader_id < 0:
            self._fence(state.leader_epoch, same_ok=True)
            self.leader_epoch = max(self.leader_epoch, state.leader_epoch)
            return self.go_offline(now_ms)
        return self.become_follower(
            state.leader_id, state.leader_epoch, now_ms,
            partition_epoch=state.partition_epoch, replicas=state.replicas, isr=state.isr,
        )

    def become_leader(
        self, leader_epoch: int, partition_epoch: int, replicas: Sequence[int], isr: Sequence[int], now_ms: int
    ) -> Outbox:
        self._check_not_deleted()
        if leader_epoch == self.leader_epoch and self.role is Role.LEADER and self._leader is not None:
            if partition_epoch > self.partition_epoch:  # same leadership, the controller changed the ISR
                self.partition_epoch, self.replicas = partition_epoch, tuple(replicas)
                self._leader.apply_partition(partition_epoch, replicas, isr, now_ms)
                self._isr_changed(now_ms)
            return self._drain()
        self._fence(leader_epoch, same_ok=False)
        if leader_epoch < self.rlog.latest_epoch:
            raise FencedLeaderEpochError(
                f"cannot lead with epoch {leader_epoch}: the log already holds epoch {self.rlog.latest_epoch}"
            )
        self._leave_role(check_role(self.role, Role.LEADER))
        self.leader_id, self.leader_epoch, self.partition_epoch = self.ident.local_id, leader_epoch, partition_epoch
        self.replicas = tuple(replicas)
        self.rlog.begin_epoch(leader_epoch)
        self.rlog.sync_producers()
        start = self.rlog.epoch_start_offset(leader_epoch)
        self._leader = LeaderState(
            self.ident, self.settings, leader_epoch, partition_epoch, replicas, isr,
            self.rlog.log_end_offset if start is None else start, now_ms,
        )
        self._advance_high_watermark(now_ms)
        return self._drain()

    def become_follower(
        self,
        leader_id: int,
        leader_epoch: int,
        now_ms: int,
        *,
        partition_epoch: int = -1,
        replicas: Sequence[int] = (),
        isr: Sequence[int] = (),
    ) -> Outbox:
        self._check_not_deleted()
        if leader_id < 0 or leader_id == self.ident.local_id:
            raise InvalidRequestError(f"cannot follow leader {leader_id} from worker {self.ident.local_id}")
        if leader_epoch == self.leader_epoch and self.role is Role.FOLLOWER and leader_id == self.leader_id:
            self.partition_epoch = max(self.partition_epoch, partition_epoch)  # same leadership: nothing restarts
            self.replicas, self._isr = tuple(replicas) or self.replicas, tuple(isr) or self._isr
            return self._drain()
        self._fence(leader_epoch, same_ok=False)
        self._leave_role(check_role(self.role, Role.FOLLOWER))
        self.leader_id, self.leader_epoch, self.partition_epoch = leader_id, leader_epoch, partition_epoch
        self.replicas, self._isr = tuple(replicas), tuple(isr)
        self.rlog.drop_empty_epochs()
        self._follower = FollowerState(self.ident, self.settings, leader_id, leader_epoch)
        self._out.to_replicas.extend(self._follower.start(self.rlog, now_ms))
        return self._drain()

    def go_offline(self, now_ms: int) -> Outbox:
        """Stop leading or following (no leader elected, or the shell is shutting the replica down)."""
        self._check_not_deleted()
        self._leave_role(check_role(self.role, Role.OFFLINE))
        return self._drain()

    def close(self) -> Outbox:
        """The worker shuts down: fail what waits (NotLeader, clients retry elsewhere), close the log."""
        if self.role is not Role.DELETED:
            self._leave_role(check_role(self.role, Role.OFFLINE))
            self.rlog.log.close()
        return self._drain()

    def storage_failed(self) -> Outbox:
        """The log's storage failed (an I/O error, a full disk): fail what waits (clients retry
        elsewhere) and drop the file handles without flushing or checkpointing, as Kafka's
        closeHandlers does; the next open of the directory recovers it. Use nothing after."""
        if self.role is not Role.DELETED:
            self._leave_role(check_role(self.role, Role.OFFLINE))
        try:
            self.rlog.log.close_handlers()
        except OSError:
            pass  # the handles are gone either way
        return self._drain()

    def delete(self) -> Outbox:
        """The topic is deleted: fail what waits, remove the log's data; nothing is accepted after."""
        self._leave_role(check_role(self.role, Role.DELETED))
        self.rlog.log.delete()
        return self._drain()

    def on_alter_isr_response(self, resp: AlterIsrResponse, now_ms: int) -> Outbox:
        if self._leader is not None and self._leader.on_alter_isr_response(resp, now_ms):
            self.partition_epoch = self._leader.partition_epoch
            self.replicas = self._leader.replicas
            self._isr_changed(now_ms)
        return self._drain()

    def _fence(self, leader_epoch: int, *, same_ok: bool) -> None:
        if leader_epoch < self.leader_epoch or (leader_epoch == self.leader_epoch and not same_ok):
            raise FencedLeaderEpochError(
                f"{self.ident.topic}-{self.ident.partition}: leader epoch {leader_epoch} is not newer than "
                f"this replica's {self.leader_epoch}"
            )

    def _check_not_deleted(self) -> None:
        if self.role is Role.DELETED:
            raise UnknownTopicOrPartitionError(f"{self.ident.topic}-{self.ident.partition} was deleted")

    def _leave_role(self, new_role: Role) -> None:
        """Fail everything waiting on the old role and drop its replication state."""
        error = NotLeaderError(f"worker {self.ident.local_id} no longer leads {self.ident.topic}-{self.ident.partition}")
        self._out.produce_results.extend(self._produces.fail_all(error))
        self._out.fetch_results.extend(self._reads.fail_all(error))
        self._leader, self._follower = None, None
        self.role = new_role

    # ------------------------------------------------------------------ leader: produce
    def append_produce(
        self,
        data: bytes | bytearray | memoryview,
        acks: int,
        now_ms: int,
        request_id: object = None,
        timeout_ms: int = 30_000,
        *,
        current_leader_epoch: int = -1,
    ) -> Outbox:
        """Append a produce request's batches (producer id, epoch and sequence in their headers).
        acks 0/1 complete now; acks=all (-1) completes when the high watermark passes the last offset."""
        try:
            self._check_leader(current_leader_epoch)
            if acks not in (-1, 0, 1):
                raise InvalidRequiredAcksError(f"acks must be 0, 1 or -1 (all), got {acks}")
            min_isr = self.rlog.log.config.min_insync_replicas
            if acks == -1 and len(self.isr) < min_isr:
                raise NotEnoughReplicasError(
                    f"{self.ident.topic}-{self.ident.partition} has {len(self.isr)} in-sync replicas "
                    f"{list(self.isr)}, min.insync.replicas is {min_isr}; retry when replicas catch up"
                )
            appended = self.rlog.append_as_leader(data, self.leader_epoch, now_ms)
        except KBrokerError as exc:
            self._out.produce_results.append(self._produces.error(request_id, acks, exc))
            return self._drain()
        if appended.duplicate is not None:
            d = appended.duplicate
            pending = PendingProduce(request_id, acks, d.first_offset, d.last_offset, d.log_append_time, True)
        else:
            r = appended.result
            pending = PendingProduce(request_id, acks, r.first_offset, r.last_offset, r.log_append_time, False)
            assert self._leader is not None
            self._out.to_replicas.extend(self._leader.on_append(self.rlog, appended.previous_end, r.size, now_ms))
            self._advance_high_watermark(now_ms)
        result = self._produces.accept(pending, self.isr, now_ms, timeout_ms)
        if result is not None:
            self._out.produce_results.append(result)
        return self._drain()

    # ------------------------------------------------------------------ leader: consumers
    def read(self, offset: int, max_bytes: int) -> ReadResult:
        """Whole batches from ``offset``, never reaching the high watermark (OffsetOutOfRange outside
        [log start, log end]; empty at or past the high watermark)."""
        return self._reads.read(offset, max_bytes)

    def fetch(
        self,
        request_id: object,
        offset: int,
        max_bytes: int,
        now_ms: int,
        *,
        min_bytes: int = 1,
        max_wait_ms: int = 0,
        current_leader_epoch: int = -1,
    ) -> Outbox:
        """A consumer fetch: completes now with ``min_bytes`` or more (or when ``max_wait_ms`` is 0),
        else waits until the high watermark brings them or ``max_wait_ms`` passes."""
        try:
            self._check_leader(current_leader_epoch)
        except KBrokerError as exc:
            result = FetchResult(request_id, error=exc, high_watermark=self.high_watermark)
        else:
            result = self._reads.fetch(request_id, offset, max_bytes, min_bytes, max_wait_ms, now_ms)
        if result is not None:
            self._out.fetch_results.append(result)
        return self._drain()

    def list_offsets(self, timestamp: int, *, current_leader_epoch: int = -1) -> ListOffsetsResult:
        """Earliest (-2: log start), latest (-1: high watermark), or the first offset whose record
        timestamp is >= ``timestamp`` below the high watermark (-1 when none)."""
        try:
            self._check_leader(current_leader_epoch)
        except KBrokerError as exc:
            return ListOffsetsResult(error=exc)
        return self._reads.list_offsets(timestamp, self.leader_epoch)

    def _check_leader(self, current_leader_epoch: int) -> None:
        if self.role is not Role.LEADER:
            raise NotLeaderError(
                f"worker {self.ident.local_id} does not lead {self.ident.topic}-{self.ident.partition} "
                f"(leader: {self.leader_id}); refresh metadata and send to the leader"
            )
        self._check_epoch(current_leader_epoch)

    def _check_epoch(self, epoch: int) -> None:
        if 0 <= epoch < self.leader_epoch:
            raise FencedLeaderEpochError(f"request epoch {epoch} is older than the leader epoch {self.leader_epoch}")
        if epoch > self.leader_epoch:
            raise UnknownLeaderEpochError(f"request epoch {epoch} is newer than the leader epoch {self.leader_epoch}")

    # ------------------------------------------------------------------ leader: followers
    def on_replica_fetch(self, req: ReplicaFetch, now_ms: int) -> Outbox:
        code = self._leader_epoch_code(req.current_leader_epoch)
        if code:
            self._out.to_replicas.append(Send(req.follower_id, fetch_error(self.ident, code, self.leader_epoch, self.rlog)))
            return self._drain()
        assert self._leader is not None
        self._out.to_replicas.extend(self._leader.on_fetch(req, self.rlog, now_ms))
        self._after_progress(now_ms)
        return self._drain()

    def on_replica_append_ack(self, ack: ReplicaAppendAck, now_ms: int) -> Outbox:
        if self._leader is not None:
            self._out.to_replicas.extend(self._leader.on_ack(ack, self.rlog, now_ms))
            self._after_progress(now_ms)
        return self._drain()

    def on_offset_for_leader_epoch(self, req: OffsetForLeaderEpoch, now_ms: int) -> Outbox:
        code = self._leader_epoch_code(req.current_leader_epoch)
        epoch, end = (-1, -1) if code else self.rlog.end_offset_for(req.leader_epoch)
        i = self.ident
        self._out.to_replicas.append(
            Send(req.follower_id, OffsetForLeaderEpochResponse(i.topic, i.partition, code, epoch, end))
        )
        return self._drain()

    def _leader_epoch_code(self, epoch: int) -> int:
        try:
            self._check_leader(epoch)
        except KBrokerError as exc:
            return exc.code
        return 0

    def _after_progress(self, now_ms: int) -> None:
        self._advance_high_watermark(now_ms)
        self._maybe_alter_isr(now_ms)

    def _maybe_alter_isr(self, now_ms: int) -> None:
        if self._leader is not None:
            request = self._leader.isr_request(self.rlog, now_ms)
            if request is not None:
                self._out.to_controller.append(request)
                self._advance_high_watermark(now_ms)  # a member being added counts at once

    def _isr_changed(self, now_ms: int) -> None:
        self._out.produce_results.extend(self._produces.on_isr_change(self.isr))
        self._advance_high_watermark(now_ms)

    def _advance_high_watermark(self, now_ms: int) -> None:
        if self._leader is None:
            return
        before = self.rlog.high_watermark
        candidate = self._leader.hw_candidate(self.rlog.log_end_offset)
        if candidate is None or self.rlog.update_high_watermark(candidate) <= before:
            return
        self._out.produce_results.extend(self._produces.on_high_watermark(self.isr))
        self._out.fetch_results.extend(self._reads.on_high_watermark())

    # ------------------------------------------------------------------ follower
    def on_replica_append(self, msg: ReplicaAppend, now_ms: int) -> Outbox:
        if self._follower is not None:
            self._out.to_replicas.extend(self._follower.on_append(msg, self.rlog, now_ms))
        else:
            self._out.to_replicas.append(refuse_push(self.ident, msg, self.leader_epoch, self.log_end_offset))
        return self._drain()

    def on_replica_fetch_response(
        self, resp: ReplicaFetchResponse, now_ms: int, request: ReplicaFetch | None = None
    ) -> Outbox:
        """The leader's answer to our fetch (pass ``request``, the fetch it answers, when known)."""
        if self._follower is not None:
            self._out.to_replicas.extend(self._follower.on_fetch_response(resp, self.rlog, now_ms, request))
        return self._drain()

    def on_offset_for_leader_epoch_response(
        self, resp: OffsetForLeaderEpochResponse, now_ms: int, request: OffsetForLeaderEpoch | None = None
    ) -> Outbox:
        """The leader's answer (pass ``request``: an answer to an older question is then ignored)."""
        if self._follower is not None:
            self._out.to_replicas.extend(self._follower.on_epoch_answer(resp, self.rlog, now_ms, request))
        return self._drain()

    # ------------------------------------------------------------------ time
    def tick(self, now_ms: int) -> Outbox:
        """Timeouts and timers: produce and fetch expiry, parked follower fetches, ISR changes,
        follower re-sends. Call it often (every ~50-100 ms) or at ``next_deadline_ms``."""
        self._out.produce_results.extend(self._produces.expire(now_ms, self.isr))
        self._out.fetch_results.extend(self._reads.expire(now_ms))
        if self._leader is not None:
            self._out.to_replicas.extend(self._leader.expire_fetches(self.rlog, now_ms))
            self._maybe_alter_isr(now_ms)
        if self._follower is not None:
            self._out.to_replicas.extend(self._follower.tick(self.rlog, now_ms))
        return self._drain()

    def next_deadline_ms(self) -> int | None:
        """The earliest deadline of a waiting produce or fetch (the shell ticks by then at the latest)."""
        deadlines = [d for d in (self._produces.next_deadline(), self._reads.next_deadline()) if d is not None]
        return min(deadlines) if deadlines else None

    def maintenance(self, now_ms: int) -> MaintenanceResult:
        """Retention, compaction, flush.ms and the high watermark checkpoint on leaders and followers
        alike (all below the high watermark); silent producers expire. Nothing offline or deleted."""
        if self.role not in (Role.LEADER, Role.FOLLOWER):
            return MaintenanceResult()
        return self.rlog.maintain(now_ms, self.settings.producer_id_expiration_ms)
