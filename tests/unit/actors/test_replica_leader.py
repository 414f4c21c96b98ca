"""The replica core as a leader: produce with acks, follower progress, high watermark, pushes and
fetches, ISR shrink and expand, fencing, consumer reads (MemoryLog; one test on the disk Log)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbroker.actors.replica_outbox import Outbox, ReplicaSettings
from kbroker.actors.replica_role import Role
from kbroker.actors.replica_state import ReplicaState
from kbroker.errors import (
    FencedLeaderEpochError,
    InvalidRequiredAcksError,
    NotEnoughReplicasAfterAppendError,
    NotEnoughReplicasError,
    NotLeaderError,
    OffsetOutOfRangeError,
    OutOfOrderSequenceError,
    RequestTimedOutError,
    UnknownLeaderEpochError,
)
from kbroker.storage.batch import iter_batches
from kbroker.storage.config import TopicConfig
from kbroker.storage.log import Log
from kbroker.storage.memory_log import MemoryLog
from kbroker.storage.records import build_batch, decode_batches
from kbroker.transport.messages_internal import (
    AlterIsrResponse,
    OffsetForLeaderEpoch,
    PartitionState,
    ReplicaAppend,
    ReplicaAppendAck,
    ReplicaFetch,
    ReplicaFetchResponse,
)

T0 = 1_700_000_000_000
LAG = 10_000
SETTINGS = ReplicaSettings(replica_lag_time_max_ms=LAG)


def batch(n: int = 1, *, ts: int = T0, pid: int = -1, epoch: int = -1, seq: int = -1, value: bytes = b"v") -> bytes:
    return build_batch([(value, b"k", None, ts)] * n, producer_id=pid, producer_epoch=epoch, base_sequence=seq)


def make_leader(replicas=(1, 2, 3), isr=None, *, config=None, log=None, epoch=1) -> ReplicaState:
    log = log if log is not None else MemoryLog(TopicConfig.from_dict(config or {}), clock=lambda: T0)
    core = ReplicaState("t", 0, 1, log, SETTINGS)
    out = core.become_leader(epoch, 10, replicas, replicas if isr is None else isr, T0)
    assert not out.to_replicas  # a leader waits for its followers to fetch
    return core


def fetch(f: int, offset: int, *, epoch: int = 1, wait: int = 500) -> ReplicaFetch:
    return ReplicaFetch("t", 0, f, epoch, offset, 1 << 20, wait)


def ack(f: int, leo: int, *, epoch: int = 1, code: int = 0) -> ReplicaAppendAck:
    return ReplicaAppendAck("t", 0, f, epoch, code, leo)


def messages(out: Outbox, cls: type, to: int | None = None) -> list:
    return [s.message for s in out.to_replicas if isinstance(s.message, cls) and (to is None or s.to == to)]


def only(items: list):
    assert len(items) == 1, items
    return items[0]


def caught_up(core: ReplicaState, *followers: int, now: int = T0) -> None:
    """Followers fetch at the leader's log end: they report it and park (long poll, push mode)."""
    for f in followers:
        out = core.on_replica_fetch(fetch(f, core.log_end_offset), now)
        assert not messages(out, ReplicaFetchResponse)


# ---------------------------------------------------------------------------- controller commands
def test_stale_and_reused_epochs_are_refused() -> None:
    core = make_leader(epoch=5)
    with pytest.raises(FencedLeaderEpochError):
        core.become_leader(4, 11, (1, 2, 3), (1, 2, 3), T0)
    with pytest.raises(FencedLeaderEpochError):
        core.become_follower(2, 5, T0)  # the same epoch cannot change who leads
    with pytest.raises(FencedLeaderEpochError):
        core.become_follower(2, 3, T0)
    assert core.role is Role.LEADER and core.leader_epoch == 5


def test_same_epoch_newer_partition_epoch_only_updates_the_isr() -> None:
    core = make_leader(isr=(1, 2, 3))
    core.append_produce(batch(), 1, T0)
    caught_up(core, 2)
    core.become_leader(1, 11, (1, 2, 3), (1, 2), T0)  # the controller dropped 3 (its worker died)
    assert core.isr == (1, 2) and core.partition_epoch == 11
    assert core.high_watermark == 1  # min over the smaller ISR; follower 2's progress was kept
    core.become_leader(1, 11, (1, 2, 3), (1,), T0)  # a duplicate of an old partition epoch: ignored
    assert core.isr == (1, 2)


def test_apply_partition_state_leads_follows_or_goes_offline() -> None:
    core = ReplicaState("t", 0, 1, MemoryLog(clock=lambda: T0), SETTINGS)
    core.apply_partition_state(PartitionState(0, 1, 1, 1, (1, 2), (1, 2)), T0)
    assert core.role is Role.LEADER
    out = core.apply_partition_state(PartitionState(0, 2, 2, 2, (1, 2), (2,)), T0)
    assert core.role is Role.FOLLOWER and messages(out, OffsetForLeaderEpoch, to=2)
    core.apply_partition_state(PartitionState(0, -1, 3, 3, (1, 2), ()), T0)
    assert core.role is Role.OFFLINE and core.leader_epoch == 3


# ---------------------------------------------------------------------------- produce
def test_acks_1_and_0_complete_at_once_with_offsets() -> None:
    core = make_leader()
    r1 = only(core.append_produce(batch(3), 1, T0, "a").produce_results)
    r0 = only(core.append_produce(batch(2), 0, T0, "b").produce_results)
    assert (r1.request_id, r1.base_offset, r1.last_offset, r1.error) == ("a", 0, 2, None)
    assert (r0.base_offset, r0.error_code) == (3, 0)
    assert core.log_end_offset == 5 and core.high_watermark == 0  # followers have nothing yet


def test_bad_acks_and_bad_batches_are_errors_as_values() -> None:
    core = make_leader()
    assert isinstance(only(core.append_produce(batch(), 2, T0).produce_results).error, InvalidRequiredAcksError)
    assert only(core.append_produce(b"garbage" * 20, 1, T0).produce_results).error_code == 2  # CorruptRecord
    assert core.log_end_offset == 0


def test_acks_all_completes_only_when_every_isr_member_has_the_batch() -> None:
    core = make_leader()
    caught_up(core, 2, 3)
    out = core.append_produce(batch(2), -1, T0, "req")
    assert not out.produce_results and core.waiting == (1, 0)
    assert core.on_replica_append_ack(ack(2, 2), T0).produce_results == []
    assert core.high_watermark == 0  # follower 3 has not got it
    done = only(core.on_replica_append_ack(ack(3, 2), T0).produce_results)
    assert (done.request_id, done.base_offset, done.error) == ("req", 0, None)
    assert core.high_watermark == 2


def test_high_watermark_is_min_over_the_isr_and_never_moves_backward() -> None:
    core = make_leader()
    core.append_produce(batch(5), 1, T0)
    core.on_replica_fetch(fetch(2, 5), T0)
    core.on_replica_fetch(fetch(3, 3), T0)
    assert core.high_watermark == 3
    core.on_replica_fetch(fetch(3, 1), T0)  # follower 3 restarted and lost its tail
    assert core.high_watermark == 3


def test_an_unknown_follower_position_holds_the_high_watermark() -> None:
    core = make_leader()
    core.append_produce(batch(), 1, T0)
    core.on_replica_fetch(fetch(2, 1), T0)
    assert core.high_watermark == 0  # follower 3 never reported since this leader was elected


def test_min_insync_replicas_is_checked_before_appending() -> None:
    core = make_leader(isr=(1,), config={"min.insync.replicas": 2})
    result = only(core.append_produce(batch(), -1, T0).produce_results)
    assert isinstance(result.error, NotEnoughReplicasError) and "min.insync.replicas is 2" in result.error.message
    assert core.log_end_offset == 0
    assert only(core.append_produce(batch(), 1, T0).produce_results).error is None  # acks=1 is not held back


def test_isr_shrinking_below_min_insync_fails_waiting_produces_after_append() -> None:
    core = make_leader(isr=(1, 2), config={"min.insync.replicas": 2})
    core.append_produce(batch(), -1, T0, "w")
    out = core.on_alter_isr_response(
        AlterIsrResponse(0, None, "t", 0, PartitionState(0, 1, 1, 11, (1, 2, 3), (1,))), T0
    )
    result = only(out.produce_results)
    assert isinstance(result.error, NotEnoughReplicasAfterAppendError) and core.log_end_offset == 1


def test_waiting_produce_times_out() -> None:
    core = make_leader()
    core.append_produce(batch(), -1, T0, "slow", timeout_ms=1_000)
    assert core.next_deadline_ms() == T0 + 1_000
    assert core.tick(T0 + 999).produce_results == []
    result = only(core.tick(T0 + 1_000).produce_results)
    assert isinstance(result.error, RequestTimedOutError) and result.request_id == "slow"


def test_requests_to_a_non_leader_or_with_a_wrong_epoch_are_refused() -> None:
    core = make_leader(epoch=3)
    assert isinstance(only(core.append_produce(batch(), 1, T0, current_leader_epoch=2).produce_results).error, FencedLeaderEpochError)
    assert isinstance(only(core.append_produce(batch(), 1, T0, current_leader_epoch=4).produce_results).error, UnknownLeaderEpochError)
    core.become_follower(2, 4, T0)
    result = only(core.append_produce(batch(), 1, T0).produce_results)
    assert isinstance(result.error, NotLeaderError) and "leader: 2" in result.error.message


def test_losing_leadership_fails_everything_waiting_with_not_leader() -> None:
    core = make_leader()
    core.append_produce(batch(), -1, T0, "p")
    core.fetch("f", 0, 1000, T0, max_wait_ms=500)
    out = core.become_follower(2, 2, T0)
    assert isinstance(only(out.produce_results).error, NotLeaderError)
    assert isinstance(only(out.fetch_results).error, NotLeaderError)
    assert core.waiting == (0, 0)


# ---------------------------------------------------------------------------- idempotent producer
def test_a_retried_idempotent_batch_is_answered_with_its_original_offsets() -> None:
    core = make_leader(replicas=(1,))
    core.append_produce(batch(4), 1, T0)
    first = only(core.append_produce(batch(2, pid=9, epoch=0, seq=0), 1, T0).produce_results)
    again = only(core.append_produce(batch(2, pid=9, epoch=0, seq=0), 1, T0).produce_results)
    assert (again.base_offset, again.last_offset, again.duplicate) == (first.base_offset, 5, True)
    assert core.log_end_offset == 6
    gap = only(core.append_produce(batch(pid=9, epoch=0, seq=5), 1, T0).produce_results)
    assert isinstance(gap.error, OutOfOrderSequenceError) and core.log_end_offset == 6


def test_a_duplicate_with_acks_all_still_waits_for_replication_of_the_original() -> None:
    core = make_leader(replicas=(1, 2))
    caught_up(core, 2)
    core.append_produce(batch(pid=9, epoch=0, seq=0), -1, T0, "first")
    out = core.append_produce(batch(pid=9, epoch=0, seq=0), -1, T0, "retry")
    assert not out.produce_results and not out.to_replicas  # nothing new written or pushed
    done = core.on_replica_append_ack(ack(2, 1), T0).produce_results
    assert sorted(r.request_id for r in done) == ["first", "retry"]


def test_producer_state_is_rebuilt_from_the_disk_log_headers_on_become_leader(tmp_path: Path) -> None:
    log = Log.open(tmp_path / "t-0", TopicConfig.from_dict({"segment.bytes": 300}), clock=lambda: T0)
    core = make_leader(replicas=(1,), log=log)
    for seq in range(6):
        assert only(core.append_produce(batch(pid=9, epoch=0, seq=seq), 1, T0).produce_results).error is None
    core.append_produce(batch(3), 1, T0)
    assert len(log.segments) > 1
    log.close()
    reopened = Log.open(tmp_path / "t-0", TopicConfig.from_dict({"segment.bytes": 300}), clock=lambda: T0)
    core = make_leader(replicas=(1,), log=reopened, epoch=2)
    again = only(core.append_produce(batch(pid=9, epoch=0, seq=5), 1, T0).produce_results)
    assert again.duplicate and again.base_offset == 5
    assert only(core.append_produce(batch(pid=9, epoch=0, seq=6), 1, T0).produce_results).base_offset == 9
    assert isinstance(only(core.append_produce(batch(pid=9, epoch=0, seq=9), 1, T0).produce_results).error, OutOfOrderSequenceError)
    reopened.close()


# ---------------------------------------------------------------------------- pushes and fetches
def test_a_caught_up_follower_gets_each_append_pushed_as_stored() -> None:
    core = make_leader(config={"message.timestamp.type": "LogAppendTime"})
    core.append_produce(batch(2), 1, T0)
    caught_up(core, 2)  # follower 2 at the log end; follower 3 has fetched nothing
    out = core.append_produce(batch(3), 1, T0 + 5)
    push = only(messages(out, ReplicaAppend))
    assert only(out.to_replicas).to == 2
    assert (push.base_offset, push.leader_epoch, push.leader_id) == (2, 1, 1)
    stored = core.log.read(2, 1 << 20).data
    assert bytes(push.batches[0]) == stored  # offsets, epoch and LogAppendTime patched: the stored bytes
    assert [h.base_offset for _, h in iter_batches(push.batches[0])] == [2]
    out = core.append_produce(batch(), 1, T0 + 6)  # pipelined: pushed again before any ack
    assert only(messages(out, ReplicaAppend, to=2)).base_offset == 5


def test_a_follower_that_is_behind_gets_whole_batches_by_fetching() -> None:
    core = make_leader()
    for _ in range(3):
        core.append_produce(batch(2), 1, T0)
    response = only(messages(core.on_replica_fetch(fetch(3, 2), T0), ReplicaFetchResponse, to=3))
    assert (response.error_code, response.log_end_offset, response.high_watermark) == (0, 6, 0)
    assert [h.base_offset for _, h in iter_batches(response.records)] == [2, 4]
    assert only(messages(core.append_produce(batch(), 1, T0), ReplicaAppend, to=3)).base_offset == 6  # now in sync


def test_a_fetch_at_the_log_end_waits_and_expires_empty() -> None:
    core = make_leader()
    core.append_produce(batch(), 1, T0)
    assert core.on_replica_fetch(fetch(2, 1, wait=500), T0).to_replicas == []
    assert core.tick(T0 + 499).to_replicas == []
    response = only(messages(core.tick(T0 + 500), ReplicaFetchResponse, to=2))
    assert response.records == b"" and response.high_watermark == 0


def test_a_refused_push_is_filled_in_through_the_parked_fetch() -> None:
    core = make_leader(replicas=(1, 2))
    caught_up(core, 2)
    core.append_produce(batch(), 1, T0)  # push [0, 1) is lost
    core.append_produce(batch(), 1, T0)  # push [1, 2): the follower refuses it, it has a gap
    out = core.on_replica_append_ack(ack(2, 0, code=OffsetOutOfRangeError.code), T0)
    response = only(messages(out, ReplicaFetchResponse, to=2))
    assert [h.base_offset for _, h in iter_batches(response.records)] == [0, 1]
    assert only(messages(core.append_produce(batch(), 1, T0), ReplicaAppend)).base_offset == 2


def test_pushes_unacknowledged_too_long_are_sent_again_when_the_parked_fetch_expires() -> None:
    core = make_leader(replicas=(1, 2))
    caught_up(core, 2)
    core.append_produce(batch(), 1, T0)  # pushed, never acknowledged
    response = only(messages(core.tick(T0 + 500), ReplicaFetchResponse, to=2))
    assert [h.base_offset for _, h in iter_batches(response.records)] == [0]


def test_a_parked_fetch_overtaken_by_retention_is_answered_out_of_range() -> None:
    core = make_leader(config={"segment.bytes": 200, "retention.ms": 1_000})
    caught_up(core, 2, 3)  # both park at 0; then follower 3 goes silent
    for _ in range(6):
        core.append_produce(batch(), 1, T0)
    core.become_leader(1, 11, (1, 2, 3), (1, 2), T0)  # the controller removed 3 (its worker died)
    core.on_replica_append_ack(ack(2, 6), T0)
    assert core.maintenance(T0 + 5_000).segments_deleted > 0 and core.log_start_offset > 0
    out = core.tick(T0 + 5_000)
    assert only(messages(out, ReplicaFetchResponse, to=2)).records == b""  # at the log end: nothing new
    answer = only(messages(out, ReplicaFetchResponse, to=3))  # its pushes went unacknowledged
    assert (answer.error_code, answer.log_start_offset) == (OffsetOutOfRangeError.code, core.log_start_offset)


def test_a_fetch_outside_the_log_or_with_a_wrong_epoch_is_an_error_answer() -> None:
    core = make_leader(epoch=2)
    assert only(messages(core.on_replica_fetch(fetch(2, 5, epoch=2), T0), ReplicaFetchResponse)).error_code == OffsetOutOfRangeError.code
    assert only(messages(core.on_replica_fetch(fetch(2, 0, epoch=1), T0), ReplicaFetchResponse)).error_code == FencedLeaderEpochError.code
    assert only(messages(core.on_replica_fetch(fetch(2, 0, epoch=3), T0), ReplicaFetchResponse)).error_code == UnknownLeaderEpochError.code


def test_offset_for_leader_epoch_answers_where_an_epoch_ends() -> None:
    core = make_leader(replicas=(1, 2), epoch=1)
    core.append_produce(batch(3), 1, T0)
    core.become_follower(2, 2, T0)
    core.become_leader(3, 12, (1, 2), (1, 2), T0)  # epoch 3 starts at 3, even before an append
    core.append_produce(batch(), 1, T0)
    answer = only(messages(core.on_offset_for_leader_epoch(OffsetForLeaderEpoch("t", 0, 2, 3, 1), T0), object))
    assert (answer.error_code, answer.leader_epoch, answer.end_offset) == (0, 1, 3)
    answer = only(messages(core.on_offset_for_leader_epoch(OffsetForLeaderEpoch("t", 0, 2, 3, 2), T0), object))
    assert (answer.leader_epoch, answer.end_offset) == (1, 3)  # epoch 2 unknown here: the largest below it
    answer = only(messages(core.on_offset_for_leader_epoch(OffsetForLeaderEpoch("t", 0, 2, 3, 3), T0), object))
    assert (answer.leader_epoch, answer.end_offset) == (3, 4)
    answer = only(messages(core.on_offset_for_leader_epoch(OffsetForLeaderEpoch("t", 0, 2, 2, 1), T0), object))
    assert answer.error_code == FencedLeaderEpochError.code


# ---------------------------------------------------------------------------- ISR
def test_a_follower_lagging_longer_than_the_max_is_shrunk_out() -> None:
    core = make_leader()
    caught_up(core, 2, 3)
    core.append_produce(batch(), 1, T0)
    core.on_replica_append_ack(ack(2, 1), T0 + LAG)  # 2 keeps up; 3 went silent
    assert core.tick(T0 + LAG).to_controller == []  # not longer than the max yet
    request = only(core.tick(T0 + LAG + 1).to_controller)
    assert (request.worker_id, request.leader_epoch, request.partition_epoch, request.new_isr) == (1, 1, 10, (1, 2))
    assert core.tick(T0 + LAG + 2).to_controller == []  # one AlterIsr in flight
    assert core.high_watermark == 0  # a shrink counts only once committed
    assert only(core.tick(T0 + LAG + 1 + SETTINGS.alter_isr_timeout_ms).to_controller) == request  # re-sent
    core.on_alter_isr_response(AlterIsrResponse(0, None, "t", 0, PartitionState(0, 1, 1, 11, (1, 2, 3), (1, 2))), T0)
    assert core.isr == (1, 2) and core.partition_epoch == 11 and core.high_watermark == 1


def test_a_follower_at_the_log_end_is_never_shrunk_out() -> None:
    core = make_leader()
    caught_up(core, 2, 3)
    assert core.tick(T0 + 10 * LAG).to_controller == []


def test_a_returning_follower_expands_the_isr_once_it_reaches_the_high_watermark() -> None:
    core = make_leader(isr=(1, 2))
    core.append_produce(batch(4), 1, T0)
    caught_up(core, 2)
    assert core.high_watermark == 4
    out = core.on_replica_fetch(fetch(3, 2), T0)
    assert out.to_controller == []  # behind the high watermark
    out = core.on_replica_fetch(fetch(3, 4), T0)
    assert only(out.to_controller).new_isr == (1, 2, 3)
    core.append_produce(batch(), 1, T0)
    core.on_replica_append_ack(ack(2, 5), T0)
    assert core.high_watermark == 4  # the member being added already counts (maximal ISR)
    core.on_alter_isr_response(AlterIsrResponse(0, None, "t", 0, PartitionState(0, 1, 1, 11, (1, 2, 3), (1, 2, 3))), T0)
    assert core.isr == (1, 2, 3)


def test_a_follower_the_controller_removed_rejoins_only_after_it_reports_again() -> None:
    """Its worker died when it had everything: its old position must not bring it straight back
    (a restarted or hung replica that never fetches would hold the high watermark for acks=all)."""
    core = make_leader(isr=(1, 2, 3))
    core.append_produce(batch(2), 1, T0)
    caught_up(core, 2, 3)
    core.become_leader(1, 11, (1, 2, 3), (1, 2), T0)  # the controller removed 3: its worker died
    assert core.tick(T0 + 1).to_controller == []  # no expansion on 3's last report from before
    core.append_produce(batch(), 1, T0 + 1)
    core.on_replica_append_ack(ack(2, 3), T0 + 1)
    assert core.high_watermark == 3  # 3 holds nothing back
    out = core.on_replica_fetch(fetch(3, 3), T0 + 2)  # the restarted 3 fetches at the log end
    assert only(out.to_controller).new_isr == (1, 2, 3)


def test_an_alter_isr_refused_as_stale_keeps_the_maximal_isr_until_a_leader_and_isr() -> None:
    """The expansion may have been applied (its answer lost, this refusal a retry's): 3 keeps counting."""
    core = make_leader(isr=(1, 2))
    core.append_produce(batch(), 1, T0)
    caught_up(core, 2)
    assert only(core.on_replica_fetch(fetch(3, 1), T0).to_controller).new_isr == (1, 2, 3)
    core.on_alter_isr_response(AlterIsrResponse(95, "stale partition epoch", "t", 0, None), T0)
    core.append_produce(batch(), 1, T0)
    core.on_replica_append_ack(ack(2, 2), T0)
    assert core.high_watermark == 1  # 3 (at 1) still holds it back
    assert core.tick(T0 + 60_000).to_controller == []  # nothing asked until the controller says what holds
    core.become_leader(1, 12, (1, 2, 3), (1, 2, 3), T0 + 60_000)
    assert core.isr == (1, 2, 3) and core.partition_epoch == 12


def test_a_refusal_that_carries_the_current_state_is_applied() -> None:
    core = make_leader(isr=(1, 2))
    core.append_produce(batch(), 1, T0)
    core.on_replica_fetch(fetch(3, 1), T0)
    state = PartitionState(0, 1, 1, 12, (1, 2, 3), (1, 2, 3))  # our earlier request did it
    core.on_alter_isr_response(AlterIsrResponse(95, "stale partition epoch", "t", 0, state), T0)
    assert core.isr == (1, 2, 3) and core.partition_epoch == 12


def test_an_ineligible_replica_refusal_drops_the_change_and_retries_after_a_back_off() -> None:
    core = make_leader(isr=(1, 2))
    core.append_produce(batch(), 1, T0)
    assert only(core.on_replica_fetch(fetch(3, 1), T0).to_controller)
    core.on_alter_isr_response(AlterIsrResponse(107, "replica 3 is not alive", "t", 0, None), T0)
    assert core.tick(T0 + SETTINGS.retry_backoff_ms - 1).to_controller == []
    assert only(core.tick(T0 + SETTINGS.retry_backoff_ms).to_controller).new_isr == (1, 2, 3)


# ---------------------------------------------------------------------------- consumers
def test_consumers_read_only_below_the_high_watermark() -> None:
    core = make_leader(replicas=(1, 2))
    core.append_produce(batch(2), 1, T0)
    core.append_produce(batch(2), 1, T0)
    core.on_replica_fetch(fetch(2, 2), T0)
    result = only(core.fetch("c", 0, 1 << 20, T0).fetch_results)
    assert [r.offset for r in decode_batches(result.records)] == [0, 1]
    assert (result.next_offset, result.high_watermark) == (2, 2)
    assert only(core.fetch("c", 3, 1 << 20, T0).fetch_results).records == b""  # below the log end: wait
    assert isinstance(only(core.fetch("c", 5, 1 << 20, T0).fetch_results).error, OffsetOutOfRangeError)


def test_a_long_poll_fetch_completes_when_the_high_watermark_brings_min_bytes() -> None:
    core = make_leader(replicas=(1, 2))
    caught_up(core, 2)
    assert core.fetch("c", 0, 1 << 20, T0, min_bytes=1, max_wait_ms=1_000).fetch_results == []
    core.append_produce(batch(), 1, T0)
    out = core.on_replica_append_ack(ack(2, 1), T0 + 1)
    assert [r.offset for r in decode_batches(only(out.fetch_results).records)] == [0]


def test_a_long_poll_fetch_keeps_waiting_for_min_bytes_then_expires_with_what_there_is() -> None:
    core = make_leader(replicas=(1,))
    one = len(batch())
    assert core.fetch("c", 0, 1 << 20, T0, min_bytes=2 * one + 1, max_wait_ms=1_000).fetch_results == []
    assert core.append_produce(batch(), 1, T0).fetch_results == []
    assert core.append_produce(batch(), 1, T0).fetch_results == []
    result = only(core.tick(T0 + 1_000).fetch_results)
    assert len(result.records) == 2 * one
    core.fetch("d", 2, 1 << 20, T0, min_bytes=one, max_wait_ms=1_000)
    assert only(core.append_produce(batch(), 1, T0).fetch_results).request_id == "d"


def test_list_offsets_earliest_latest_and_by_time_below_the_high_watermark() -> None:
    core = make_leader(replicas=(1, 2))
    for i in range(4):
        core.append_produce(batch(ts=T0 + 10 * i), 1, T0)
    core.on_replica_fetch(fetch(2, 3), T0)
    assert core.list_offsets(-2).offset == 0
    assert core.list_offsets(-1).offset == 3
    by_time = core.list_offsets(T0 + 15)
    assert (by_time.offset, by_time.timestamp, by_time.leader_epoch) == (2, T0 + 20, 1)
    assert core.list_offsets(T0 + 25).offset == -1  # offset 3 is above the high watermark
    assert isinstance(core.list_offsets(-1, current_leader_epoch=0).error, FencedLeaderEpochError)


# ---------------------------------------------------------------------------- maintenance
def test_maintenance_deletes_old_segments_only_below_the_high_watermark() -> None:
    config = {"segment.bytes": 200, "retention.ms": 1_000}
    core = make_leader(replicas=(1, 2), config=config)
    for _ in range(6):
        core.append_produce(batch(ts=T0), 1, T0)
    assert len(core.log.segments) > 2
    assert core.maintenance(T0 + 5_000).segments_deleted == 0  # nothing replicated: HW 0
    core.on_replica_fetch(fetch(2, 4), T0)
    result = core.maintenance(T0 + 5_000)
    assert result.segments_deleted > 0 and core.log_start_offset <= core.high_watermark == 4
    core.delete()
    assert core.role is Role.DELETED and core.maintenance(T0).segments_deleted == 0


def test_close_fails_waiting_requests_and_closes_the_log(tmp_path: Path) -> None:
    log = Log.open(tmp_path / "t-0", clock=lambda: T0)
    core = make_leader(log=log)
    core.append_produce(batch(), -1, T0, "w")
    out = core.close()
    assert isinstance(only(out.produce_results).error, NotLeaderError)
    assert core.role is Role.OFFLINE and log.closed
