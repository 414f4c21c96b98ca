"""Leader side of replication for one partition: follower progress, pushes, fetches, ISR, high watermark.

    LeaderState
        isr, pending_isr (while an AlterIsr is in flight), partition_epoch, epoch_start_offset
        followers: replica id -> FollowerProgress
            log_end_offset     last reported by the follower (ack or fetch offset); -1 unknown
            last_caught_up_ms  last time it had everything the leader had (Kafka's rule: it reached
                               the leader's log end as of some send, or equals it now)
            sent_end           where the data sent to it (pushes, fetch responses) ends
            push_mode          new appends are pushed to it as ReplicaAppend
            in_flight          sends not yet covered by a report: (start, end, leader end, ms, bytes)
            parked             its long-polling ReplicaFetch, if any (at most one; a newer replaces it)

How data reaches a follower: it fetches (ReplicaFetch, answered at once while it is behind); once
a fetch or a fetch response brings it to the leader's log end it is in push mode and every later
append is pushed as it was stored (ReplicaAppend, acknowledged by ReplicaAppendAck). A follower
also keeps one long-polling fetch parked here: it expires every replica.fetch.wait.max.ms with an
empty answer, or with the missing data when pushes went unacknowledged for push_timeout_ms (lost
or dropped pushes are sent again this way; the follower drops what it already has).

Invariants:
- push_mode implies sent_end == the leader's log end offset: a push always continues exactly what
  was sent before; a follower that is behind gets no push and fetches.
- high watermark = min log end offset over the ISR and any member being added by an AlterIsr in
  flight (Kafka's maximal ISR); an unknown follower LEO holds it back; it never moves backward.
- At most one AlterIsr in flight; the ISR changes only by the controller's answer or LeaderAndIsr.
  While a change may have been applied without our knowing (answer lost, retry refused), the
  maximal ISR keeps counting for the high watermark.
- A follower leaves the ISR when it is not at the leader's log end and has not been caught up for
  replica.lag.time.max.ms; it joins when its LEO reaches the high watermark and this epoch's start,
  as reported after it left (a follower the controller removes starts from an unknown LEO).
Pure, not thread-safe: owned by the replica (ReplicaState), which owns the log.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

from kbroker.actors.controller_errors import IneligibleReplicaError, InvalidUpdateVersionError
from kbroker.actors.replica_log import ReplicaLog
from kbroker.actors.replica_outbox import Ident, ReplicaSettings, Send
from kbroker.errors import FencedLeaderEpochError, KBrokerError, OffsetOutOfRangeError, UnknownTopicOrPartitionError
from kbroker.transport.messages_internal import (
    AlterIsr,
    AlterIsrResponse,
    ReplicaAppend,
    ReplicaAppendAck,
    ReplicaFetch,
    ReplicaFetchResponse,
)

__all__ = ["LeaderState", "FollowerProgress", "fetch_error"]

# AlterIsr errors after which the leader waits for a LeaderAndIsr before asking again
_AWAIT_METADATA = frozenset(
    {InvalidUpdateVersionError.code, FencedLeaderEpochError.code, UnknownTopicOrPartitionError.code}
)


class InFlight(NamedTuple):
    start: int
    end: int
    leader_end: int  # the leader's log end when sent: reaching it means caught up as of sent_ms
    sent_ms: int
    size: int


class ParkedFetch(NamedTuple):
    fetch_offset: int
    max_bytes: int
    deadline_ms: int


@dataclass(slots=True)
class FollowerProgress:
    replica_id: int
    last_caught_up_ms: int
    log_end_offset: int = -1
    sent_end: int = -1
    push_mode: bool = False
    in_flight: deque = field(default_factory=deque)
    in_flight_bytes: int = 0
    parked: ParkedFetch | None = None

    def report(self, log_end_offset: int, leader_end: int, now_ms: int) -> None:
        """The follower says its log ends at ``log_end_offset``."""
        self.log_end_offset = log_end_offset
        while self.in_flight and self.in_flight[0].end <= log_end_offset:
            sent = self.in_flight.popleft()
            self.in_flight_bytes -= sent.size
            if log_end_offset >= sent.leader_end:
                self.last_caught_up_ms = max(self.last_caught_up_ms, sent.sent_ms)
        if log_end_offset >= leader_end:
            self.last_caught_up_ms = now_ms

    def sent(self, start: int, end: int, leader_end: int, now_ms: int, size: int) -> None:
        self.sent_end = end
        self.push_mode = end == leader_end
        self.in_flight.append(InFlight(start, end, leader_end, now_ms, size))
        self.in_flight_bytes += size

    def expects(self, offset: int) -> bool:
        """Whether data sent but not yet reported continues exactly from ``offset``."""
        if offset == self.sent_end:
            return True
        return bool(self.in_flight) and self.in_flight[0].start <= offset

    def stop_pushing(self) -> None:
        self.push_mode = False
        self.in_flight.clear()
        self.in_flight_bytes = 0
        self.sent_end = self.log_end_offset


def fetch_error(ident: Ident, code: int, leader_epoch: int, rlog: ReplicaLog) -> ReplicaFetchResponse:
    return ReplicaFetchResponse(
        ident.topic, ident.partition, code, leader_epoch, rlog.high_watermark, rlog.log_start_offset,
        rlog.log_end_offset, None,
    )


class LeaderState:
    def __init__(
        self,
        ident: Ident,
        settings: ReplicaSettings,
        leader_epoch: int,
        partition_epoch: int,
        replicas: Sequence[int],
        isr: Sequence[int],
        epoch_start_offset: int,
        now_ms: int,
    ) -> None:
        self.ident = ident
        self.settings = settings
        self.leader_epoch = leader_epoch
        self.epoch_start_offset = epoch_start_offset
        self.partition_epoch = -1
        self.replicas: tuple[int, ...] = ()
        self.isr: tuple[int, ...] = ()
        self.followers: dict[int, FollowerProgress] = {}
        self.pending_isr: tuple[int, ...] | None = None
        self._alter: AlterIsr | None = None
        self._alter_sent_ms = 0
        self._alter_retry_at = 0
        self._awaiting_metadata = False
        self.apply_partition(partition_epoch, replicas, isr, now_ms)

    # ------------------------------------------------------------------ partition state
    def apply_partition(self, partition_epoch: int, replicas: Sequence[int], isr: Sequence[int], now_ms: int) -> None:
        """Take the controller's replicas and ISR (a LeaderAndIsr or an AlterIsr answer)."""
        me = self.ident.local_id
        removed = set(self.isr) - set(isr)
        self.partition_epoch = partition_epoch
        self.replicas = tuple(replicas)
        self.isr = tuple(dict.fromkeys((*isr, me)))  # the leader is always in its ISR
        wanted = {r for r in (*self.replicas, *self.isr) if r != me}
        for r in list(self.followers):
            if r not in wanted:
                del self.followers[r]
        for r in wanted:
            self.followers.setdefault(r, FollowerProgress(r, last_caught_up_ms=now_ms))
        for r in removed - {me}:
            if r in self.followers:
                # out of the ISR (e.g. its worker died): what it last reported is stale, so it
                # rejoins only after it reports again (Kafka resets out-of-sync followers), not at
                # once on an old position, holding back the high watermark for a replica that may
                # never fetch (a hung or restarted process)
                self.followers[r].log_end_offset = -1
        self.pending_isr = None
        self._alter = None
        self._awaiting_metadata = False

    # ------------------------------------------------------------------ high watermark
    def hw_candidate(self, log_end_offset: int) -> int | None:
        """Min log end offset over the maximal ISR; None while a member's is unknown."""
        members = set(self.isr) | set(self.pending_isr or ())
        low = log_end_offset
        for r in members:
            if r == self.ident.local_id:
                continue
            leo = self.followers[r].log_end_offset
            if leo < 0:
                return None
            low = min(low, leo)
        return low

    # ------------------------------------------------------------------ data to followers
    def on_append(self, rlog: ReplicaLog, previous_end: int, size: int, now_ms: int) -> list[Send]:
        """After an append of ``size`` bytes at ``previous_end``: push it to followers in push mode."""
        end = rlog.log_end_offset
        data: bytes | None = None
        sends: list[Send] = []
        for f in self.followers.values():
            if not f.push_mode:
                continue
            if f.sent_end != previous_end or f.in_flight_bytes + size > self.settings.max_unacked_push_bytes:
                f.stop_pushing()  # behind or slow: it catches up by fetching
                continue
            if data is None:
                data = rlog.read_back(previous_end, end, size)
            sends.append(Send(f.replica_id, self._append_message(previous_end, data, rlog)))
            f.sent(previous_end, end, end, now_ms, len(data))
        return sends

    def _append_message(self, base_offset: int, data: bytes, rlog: ReplicaLog) -> ReplicaAppend:
        i = self.ident
        return ReplicaAppend(
            i.topic, i.partition, i.local_id, self.leader_epoch, base_offset, (data,), rlog.high_watermark,
            rlog.log_start_offset,
        )

    def on_fetch(self, req: ReplicaFetch, rlog: ReplicaLog, now_ms: int) -> list[Send]:
        """A follower fetches (its epoch already checked): answer now, or park it (long poll)."""
        f = self.followers.get(req.follower_id)
        if f is None:
            code = UnknownTopicOrPartitionError.code
            return [Send(req.follower_id, fetch_error(self.ident, code, self.leader_epoch, rlog))]
        end = rlog.log_end_offset
        if not rlog.log_start_offset <= req.fetch_offset <= end:
            f.parked = None
            f.stop_pushing()
            return [Send(f.replica_id, fetch_error(self.ident, OffsetOutOfRangeError.code, self.leader_epoch, rlog))]
        f.report(req.fetch_offset, end, now_ms)
        if f.push_mode and not f.expects(req.fetch_offset):
            f.stop_pushing()  # it lost what was pushed (a restart): serve it from its offset
        if not f.push_mode and req.fetch_offset == end:
            f.sent_end, f.push_mode = end, True  # caught up: later appends are pushed
        if f.push_mode and req.max_wait_ms > 0:
            f.parked = ParkedFetch(req.fetch_offset, req.max_bytes, now_ms + req.max_wait_ms)
            return []
        f.parked = None
        return [self._respond(f, req.fetch_offset, req.max_bytes, rlog, now_ms)]

    def on_ack(self, ack: ReplicaAppendAck, rlog: ReplicaLog, now_ms: int) -> list[Send]:
        """A follower acknowledged a push (or refused it: then it is served by fetching)."""
        f = self.followers.get(ack.follower_id)
        if f is None or ack.leader_epoch != self.leader_epoch:
            return []
        if ack.error_code == 0:
            f.report(ack.log_end_offset, rlog.log_end_offset, now_ms)
            return []
        f.stop_pushing()  # its log end is not trusted here (it may be truncating): it fetches next
        if ack.error_code == OffsetOutOfRangeError.code and f.parked is not None:
            parked, f.parked = f.parked, None  # a gap: fill it at once through its parked fetch
            start = max(parked.fetch_offset, f.log_end_offset)
            return [self._respond(f, start, parked.max_bytes, rlog, now_ms)]
        return []

    def expire_fetches(self, rlog: ReplicaLog, now_ms: int) -> list[Send]:
        """Answer parked fetches whose wait is over: empty, or the data its pushes failed to deliver."""
        sends: list[Send] = []
        end = rlog.log_end_offset
        for f in self.followers.values():
            parked = f.parked
            if parked is None or parked.deadline_ms > now_ms:
                continue
            f.parked = None
            start = max(parked.fetch_offset, f.log_end_offset)
            stuck = not f.in_flight or now_ms - f.in_flight[0].sent_ms >= self.settings.push_timeout_ms
            if start < end and (stuck or not f.push_mode):
                f.stop_pushing()
            else:
                start = end  # nothing new, or pushes still on their way: an empty answer
            sends.append(self._respond(f, start, parked.max_bytes, rlog, now_ms))
        return sends

    def _respond(self, f: FollowerProgress, start: int, max_bytes: int, rlog: ReplicaLog, now_ms: int) -> Send:
        end = rlog.log_end_offset
        data = b""
        if start < end:
            try:
                chunk = rlog.read(start, max_bytes)
            except KBrokerError as exc:  # retention moved the log start past it while it waited
                f.stop_pushing()
                return Send(f.replica_id, fetch_error(self.ident, exc.code, self.leader_epoch, rlog))
            data = chunk.data
            if data:
                f.sent(start, chunk.next_offset, end, now_ms, len(data))
        i = self.ident
        response = ReplicaFetchResponse(
            i.topic, i.partition, 0, self.leader_epoch, rlog.high_watermark, rlog.log_start_offset, end, data
        )
        return Send(f.replica_id, response)

    # ------------------------------------------------------------------ ISR
    def isr_request(self, rlog: ReplicaLog, now_ms: int) -> AlterIsr | None:
        """An AlterIsr to send (a shrink, an expansion, or a re-send of one unanswered), or None."""
        if self._alter is not None:
            if now_ms - self._alter_sent_ms < self.settings.alter_isr_timeout_ms:
                return None
            self._alter_sent_ms = now_ms
            return self._alter
        if now_ms < self._alter_retry_at or self._awaiting_metadata:
            return None
        end, hw = rlog.log_end_offset, rlog.high_watermark
        lag = self.settings.replica_lag_time_max_ms
        leaving = {
            r
            for r in self.isr
            if r in self.followers
            and self.followers[r].log_end_offset != end
            and now_ms - self.followers[r].last_caught_up_ms > lag
        }
        joining = {
            r
            for r, f in self.followers.items()
            if r not in self.isr and f.log_end_offset >= max(hw, self.epoch_start_offset, 0)
        }
        if not leaving and not joining:
            return None
        order = list(dict.fromkeys((*self.replicas, *self.isr)))
        new_isr = tuple(r for r in order if (r in self.isr and r not in leaving) or r in joining)
        i = self.ident
        self._alter = AlterIsr(i.local_id, i.topic, i.partition, self.leader_epoch, self.partition_epoch, new_isr)
        self._alter_sent_ms = now_ms
        self.pending_isr = new_isr
        return self._alter

    def on_alter_isr_response(self, resp: AlterIsrResponse, now_ms: int) -> bool:
        """Apply the controller's answer; True when the ISR (or partition epoch) changed.

        Kafka's rules (Partition.handleAlterPartitionError): an answer that carries the partition as
        the controller now has it (for this leader epoch, not older than ours) is applied, error or
        not. Otherwise an error keeps the maximal ISR for the high watermark, because the request may
        have been applied after all (its answer lost, this one a retry's): after a stale partition
        epoch or a fenced leader epoch nothing more is asked until a LeaderAndIsr brings the state;
        only IneligibleReplica (the controller says it did not apply it) drops the pending change.
        """
        state = resp.state
        self._alter = None
        if state is not None and state.leader_epoch == self.leader_epoch and state.partition_epoch >= self.partition_epoch:
            if resp.error_code != 0:
                self._alter_retry_at = now_ms + self.settings.retry_backoff_ms
            self.apply_partition(state.partition_epoch, state.replicas, state.isr, now_ms)
            return True
        if resp.error_code == IneligibleReplicaError.code:
            self.pending_isr = None
            self._alter_retry_at = now_ms + self.settings.retry_backoff_ms
        elif resp.error_code in _AWAIT_METADATA or resp.error_code == 0:
            self._awaiting_metadata = True  # stale answer or state: wait for LeaderAndIsr
        else:
            self._alter_retry_at = now_ms + self.settings.retry_backoff_ms  # unexpected: ask again later
        return False
