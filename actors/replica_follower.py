"""Follower side of replication for one partition: truncate by leader epochs, then follow the leader.

    FollowerState (one per leader epoch; a new leader or epoch makes a new one)
        phase: TRUNCATING --OffsetForLeaderEpoch answered--> FETCHING       (replica_role.py)
        one request in flight at most (an OffsetForLeaderEpoch or a ReplicaFetch), re-sent when
        unanswered past its wait plus request_timeout_ms, or retry_backoff_ms after an error answer

1. TRUNCATING (KIP-101, with KIP-279's extra round): ask the leader where our latest epoch ends in
   its log; truncate to ``truncation_point`` of the answer. An undefined answer falls back to our
   high watermark (as Kafka). Never truncate by guessing.
2. FETCHING: always keep one long-polling ReplicaFetch at the leader (from our log end); append
   what comes back, whether a fetch response or a pushed ReplicaAppend, after dropping the
   batches we already have; a push that does not start at our log end is refused with
   OffsetOutOfRange (the leader then serves us through the fetch). A leader whose log starts past
   our log end makes us start empty at its log start (truncate_fully_and_start_at).

Invariants:
- Data is only appended in the FETCHING phase, from the leader of our epoch, contiguous with our log
  end (the leader's batches are whole and aligned, so "drop what we have" is by whole batch).
- Truncation follows only an answer to the question being asked now. The answer does not say
  which leader sent it, so the shell should pass the request back with it (an ``ask`` keeps it
  with the correlation id); without it, a late answer of a previous leader would be taken too.
- The high watermark is the leader's, capped at our log end; it never moves backward except by
  truncation.
Pure, not thread-safe: owned by the replica (ReplicaState), which owns the log.
"""

from __future__ import annotations

from kbroker.actors.replica_log import ReplicaLog
from kbroker.actors.replica_outbox import Ident, ReplicaSettings, Send
from kbroker.actors.replica_role import FollowerPhase, check_phase
from kbroker.errors import FencedLeaderEpochError, KBrokerError, OffsetOutOfRangeError, UnknownLeaderEpochError
from kbroker.storage.batch import iter_batches
from kbroker.transport.messages_internal import (
    OffsetForLeaderEpoch,
    OffsetForLeaderEpochResponse,
    ReplicaAppend,
    ReplicaAppendAck,
    ReplicaFetch,
    ReplicaFetchResponse,
)

__all__ = ["FollowerState", "truncation_point", "refuse_push"]


def refuse_push(ident: Ident, msg: ReplicaAppend, leader_epoch: int, log_end_offset: int) -> Send:
    """The answer to a push this replica must not take: from an older epoch (or another leader of
    ours), FencedLeaderEpoch; from a newer one (our LeaderAndIsr is late), UnknownLeaderEpoch."""
    code = UnknownLeaderEpochError.code if msg.leader_epoch > leader_epoch else FencedLeaderEpochError.code
    ack = ReplicaAppendAck(ident.topic, ident.partition, ident.local_id, msg.leader_epoch, code, log_end_offset)
    return Send(msg.leader_id, ack)


def truncation_point(answer_epoch: int, answer_end: int, rlog: ReplicaLog) -> tuple[int, bool]:
    """Where to truncate after the leader answered OffsetForLeaderEpoch with ``(answer_epoch,
    answer_end)``: ``(offset, done)``; ``done`` False means ask again after truncating (we do not
    know the leader's epoch: cut to where our largest smaller epoch ends). Kafka's
    AbstractFetcherThread.getOffsetTruncationState."""
    end = rlog.log_end_offset
    if answer_end < 0:
        return rlog.high_watermark, True  # the leader cannot tell: Kafka's fallback
    if answer_epoch < 0:
        return min(answer_end, end), True
    own_epoch, own_end = rlog.end_offset_for(answer_epoch)
    if own_epoch < 0 or own_end < 0:
        return min(answer_end, end), True
    if own_epoch != answer_epoch:
        if own_end >= end:
            return min(answer_end, end), True  # nothing of ours to cut within known epochs
        return own_end, False
    return min(own_end, answer_end, end), True


class FollowerState:
    def __init__(self, ident: Ident, settings: ReplicaSettings, leader_id: int, leader_epoch: int) -> None:
        self.ident = ident
        self.settings = settings
        self.leader_id = leader_id
        self.leader_epoch = leader_epoch
        self.phase = FollowerPhase.TRUNCATING
        self._in_flight_since: int | None = None
        self._retry_at: int | None = None

    def _set_phase(self, phase: FollowerPhase) -> None:
        self.phase = check_phase(self.phase, phase)

    # ------------------------------------------------------------------ requests to the leader
    def start(self, rlog: ReplicaLog, now_ms: int) -> list[Send]:
        return [self._ask_epoch(rlog, now_ms)]

    def _ask_epoch(self, rlog: ReplicaLog, now_ms: int) -> Send:
        self._in_flight_since, self._retry_at = now_ms, None
        i = self.ident
        request = OffsetForLeaderEpoch(i.topic, i.partition, i.local_id, self.leader_epoch, rlog.latest_epoch)
        return Send(self.leader_id, request)

    def _fetch(self, rlog: ReplicaLog, now_ms: int) -> Send:
        self._in_flight_since, self._retry_at = now_ms, None
        i, s = self.ident, self.settings
        request = ReplicaFetch(
            i.topic, i.partition, i.local_id, self.leader_epoch, rlog.log_end_offset, s.replica_fetch_max_bytes,
            s.replica_fetch_wait_max_ms,
        )
        return Send(self.leader_id, request)

    def _resend(self, rlog: ReplicaLog, now_ms: int) -> Send:
        if self.phase is FollowerPhase.TRUNCATING:
            return self._ask_epoch(rlog, now_ms)
        return self._fetch(rlog, now_ms)

    def _back_off(self, now_ms: int) -> list[Send]:
        self._in_flight_since, self._retry_at = None, now_ms + self.settings.retry_backoff_ms
        return []

    def tick(self, rlog: ReplicaLog, now_ms: int) -> list[Send]:
        """Re-send after a back-off, or a request unanswered for too long (lost, or a dead leader)."""
        if self._retry_at is not None and now_ms >= self._retry_at:
            return [self._resend(rlog, now_ms)]
        if self._in_flight_since is not None:
            wait = self.settings.request_timeout_ms
            if self.phase is FollowerPhase.FETCHING:
                wait += self.settings.replica_fetch_wait_max_ms
            if now_ms - self._in_flight_since >= wait:
                return [self._resend(rlog, now_ms)]
        return []

    # ------------------------------------------------------------------ answers
    def on_epoch_answer(
        self,
        resp: OffsetForLeaderEpochResponse,
        rlog: ReplicaLog,
        now_ms: int,
        request: OffsetForLeaderEpoch | None = None,
    ) -> list[Send]:
        """The leader's answer. With ``request`` (the question it answers), an answer to an older
        question (another leader epoch, or an earlier KIP-279 round) is ignored."""
        if self.phase is not FollowerPhase.TRUNCATING:
            return []  # a late duplicate
        if request is not None and (
            request.current_leader_epoch != self.leader_epoch or request.leader_epoch != rlog.latest_epoch
        ):
            return []
        if resp.error_code != 0:
            return self._back_off(now_ms)
        offset, done = truncation_point(resp.leader_epoch, resp.end_offset, rlog)
        if offset < rlog.log_end_offset:
            rlog.truncate_to(offset)
        if not done:
            self._set_phase(FollowerPhase.TRUNCATING)
            return [self._ask_epoch(rlog, now_ms)]
        self._set_phase(FollowerPhase.FETCHING)
        return [self._fetch(rlog, now_ms)]

    def on_fetch_response(
        self, resp: ReplicaFetchResponse, rlog: ReplicaLog, now_ms: int, request: ReplicaFetch | None = None
    ) -> list[Send]:
        if self.phase is not FollowerPhase.FETCHING:
            return []
        if request is not None and request.current_leader_epoch != self.leader_epoch:
            return []  # answers a fetch of an earlier leadership
        if resp.leader_epoch != self.leader_epoch:  # not from the leader of our epoch
            return [] if resp.error_code == 0 else self._back_off(now_ms)
        if resp.error_code == OffsetOutOfRangeError.code:
            end = rlog.log_end_offset
            if end < resp.log_start_offset:
                rlog.truncate_fully_and_start_at(resp.log_start_offset, now_ms)  # far behind the leader's log start
                return [self._fetch(rlog, now_ms)]
            if end > resp.log_end_offset:
                rlog.truncate_to(resp.log_end_offset)  # ahead of the leader (only after an unclean election)
                return [self._fetch(rlog, now_ms)]
            return self._back_off(now_ms)
        if resp.error_code != 0:
            return self._back_off(now_ms)
        try:
            if resp.records:
                self._accept(resp.records, rlog, now_ms)
        except KBrokerError:
            return self._back_off(now_ms)  # corrupt in transit: fetch it again
        rlog.update_high_watermark(min(resp.high_watermark, rlog.log_end_offset))
        return [self._fetch(rlog, now_ms)]

    def on_append(self, msg: ReplicaAppend, rlog: ReplicaLog, now_ms: int) -> list[Send]:
        """A push: appended when it is from our leader in our epoch and continues our log."""
        if msg.leader_epoch != self.leader_epoch or msg.leader_id != self.leader_id:
            return [refuse_push(self.ident, msg, self.leader_epoch, rlog.log_end_offset)]
        end = rlog.log_end_offset
        if self.phase is not FollowerPhase.FETCHING or msg.base_offset > end:
            sends = [self._ack(msg, OffsetOutOfRangeError.code, rlog)]
            if self.phase is FollowerPhase.FETCHING and self._in_flight_since is None and self._retry_at is None:
                sends.append(self._fetch(rlog, now_ms))
            return sends
        data = msg.batches[0] if len(msg.batches) == 1 else b"".join(msg.batches)
        try:
            self._accept(data, rlog, now_ms)
        except KBrokerError as exc:
            return [self._ack(msg, exc.code, rlog)]
        rlog.update_high_watermark(min(msg.high_watermark, rlog.log_end_offset))
        return [self._ack(msg, 0, rlog)]

    def _ack(self, msg: ReplicaAppend, code: int, rlog: ReplicaLog) -> Send:
        i = self.ident
        ack = ReplicaAppendAck(i.topic, i.partition, i.local_id, msg.leader_epoch, code, rlog.log_end_offset)
        return Send(msg.leader_id, ack)

    @staticmethod
    def _accept(data: bytes | bytearray | memoryview, rlog: ReplicaLog, now_ms: int) -> None:
        """Append the leader's batches that lie past our log end (drop the ones we have)."""
        view = memoryview(data)
        end = rlog.log_end_offset
        for position, header in iter_batches(view, check_crc=False):
            if header.next_offset <= end:
                continue
            if header.base_offset < end:
                rlog.truncate_to(header.base_offset)  # straddles our end: the leader's batch wins
            rlog.append_replicated(view[position:], now_ms)
            return
