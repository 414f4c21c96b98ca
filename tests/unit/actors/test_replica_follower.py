"""The replica core as a follower: truncation by leader epochs (KIP-101/279), fetching, pushes,
fencing and re-sends (MemoryLog)."""

from __future__ import annotations

import pytest

from kbroker.actors.replica_outbox import Outbox, ReplicaSettings
from kbroker.actors.replica_role import FollowerPhase, Role
from kbroker.actors.replica_state import ReplicaState
from kbroker.errors import FencedLeaderEpochError, NotLeaderError, OffsetOutOfRangeError, UnknownLeaderEpochError
from kbroker.storage.memory_log import MemoryLog
from kbroker.storage.records import BatchBuilder, decode_batches
from kbroker.transport.messages_internal import (
    OffsetForLeaderEpoch,
    OffsetForLeaderEpochResponse,
    ReplicaAppend,
    ReplicaAppendAck,
    ReplicaFetch,
    ReplicaFetchResponse,
)

T0 = 1_700_000_000_000
SETTINGS = ReplicaSettings()
LEADER = 2


def stored(base_offset: int, epoch: int, n: int = 1, *, pid: int = -1, seq: int = -1, value: bytes = b"v") -> bytes:
    """Batches as a leader stored them: offsets and leader epoch assigned."""
    builder = BatchBuilder(producer_id=pid, producer_epoch=0 if pid >= 0 else -1, base_sequence=seq)
    for _ in range(n):
        builder.append(value, key=b"k", timestamp_ms=T0)
    return builder.build(base_offset, epoch)


def log_with(*batches: bytes, hw: int = 0) -> MemoryLog:
    log = MemoryLog(clock=lambda: T0)
    for data in batches:
        log.append_replicated(data)
    log.update_high_watermark(hw)
    return log


def make_follower(log: MemoryLog | None = None, *, epoch: int = 5) -> tuple[ReplicaState, OffsetForLeaderEpoch]:
    core = ReplicaState("t", 0, 1, log if log is not None else MemoryLog(clock=lambda: T0), SETTINGS)
    out = core.become_follower(LEADER, epoch, T0, partition_epoch=3, replicas=(1, 2), isr=(1, 2))
    return core, only(messages(out, OffsetForLeaderEpoch, to=LEADER))


def answer(epoch: int, end: int, code: int = 0) -> OffsetForLeaderEpochResponse:
    return OffsetForLeaderEpochResponse("t", 0, code, epoch, end)


def response(records: bytes, *, epoch: int = 5, hw: int = 0, start: int = 0, end: int = 0, code: int = 0) -> ReplicaFetchResponse:
    return ReplicaFetchResponse("t", 0, code, epoch, hw, start, end, None if code else records)


def push(base: int, data: bytes, *, epoch: int = 5, hw: int = 0, leader: int = LEADER) -> ReplicaAppend:
    return ReplicaAppend("t", 0, leader, epoch, base, (data,), hw, 0)


def messages(out: Outbox, cls: type, to: int | None = None) -> list:
    return [s.message for s in out.to_replicas if isinstance(s.message, cls) and (to is None or s.to == to)]


def only(items: list):
    assert len(items) == 1, items
    return items[0]


def fetching(core: ReplicaState) -> ReplicaFetch:
    """Answer the epoch question with "keep everything"; return the first fetch."""
    out = core.on_offset_for_leader_epoch_response(answer(core.log.latest_epoch, core.log_end_offset), T0)
    assert core.follower_phase is FollowerPhase.FETCHING
    return only(messages(out, ReplicaFetch, to=LEADER))


def offsets(core: ReplicaState) -> list[int]:
    return [r.offset for r in decode_batches(core.log.read(core.log_start_offset, 1 << 30).data)]


# ---------------------------------------------------------------------------- becoming a follower
def test_a_new_follower_first_asks_where_its_latest_epoch_ends() -> None:
    core, ask = make_follower(log_with(stored(0, 1, 2), stored(2, 3)))
    assert (ask.follower_id, ask.current_leader_epoch, ask.leader_epoch) == (1, 5, 3)
    assert core.role is Role.FOLLOWER and core.follower_phase is FollowerPhase.TRUNCATING


def test_stale_epochs_are_refused_and_a_repeat_restarts_nothing() -> None:
    core, _ = make_follower(epoch=5)
    with pytest.raises(FencedLeaderEpochError):
        core.become_follower(3, 4, T0)
    assert core.become_follower(LEADER, 5, T0, partition_epoch=4).to_replicas == []
    assert core.partition_epoch == 4 and core.follower_phase is FollowerPhase.TRUNCATING
    with pytest.raises(FencedLeaderEpochError):
        core.become_leader(5, 9, (1, 2), (1, 2), T0)


def test_a_follower_refuses_client_requests() -> None:
    core, _ = make_follower()
    assert isinstance(only(core.append_produce(stored(0, -1), 1, T0).produce_results).error, NotLeaderError)
    assert isinstance(only(core.fetch("c", 0, 100, T0).fetch_results).error, NotLeaderError)
    assert isinstance(core.list_offsets(-1).error, NotLeaderError)


# ---------------------------------------------------------------------------- truncation by epochs
def test_a_diverged_tail_is_truncated_where_the_leader_says_our_epoch_ends() -> None:
    # ours: epoch 1 at [0, 2), epoch 2 at [2, 4) -- the new leader never had epoch 2's data
    core, ask = make_follower(log_with(stored(0, 1, 2), stored(2, 2, 2), hw=1))
    assert ask.leader_epoch == 2
    out = core.on_offset_for_leader_epoch_response(answer(1, 2), T0)  # leader: epoch 1 ends at 2 (no epoch 2)
    # we know epoch 1 too: truncate to min(our end of epoch 1, the leader's, our log end) = 2
    assert core.log_end_offset == 2 and offsets(core) == [0, 1]
    assert only(messages(out, ReplicaFetch)).fetch_offset == 2
    assert core.log.latest_epoch == 1


def test_truncation_never_goes_past_the_leaders_end_of_our_epoch_nor_our_own() -> None:
    core, _ = make_follower(log_with(stored(0, 1, 3)))
    core.on_offset_for_leader_epoch_response(answer(1, 10), T0)  # the leader has more of epoch 1
    assert core.log_end_offset == 3
    core2, _ = make_follower(log_with(stored(0, 1, 3)))
    core2.on_offset_for_leader_epoch_response(answer(1, 1), T0)  # whole batches: [0, 3) goes
    assert core2.log_end_offset == 0


def test_an_undefined_answer_falls_back_to_the_high_watermark() -> None:
    core, _ = make_follower(log_with(stored(0, 1), stored(1, 1), stored(2, 1), hw=2))
    core.on_offset_for_leader_epoch_response(answer(-1, -1), T0)
    assert core.log_end_offset == 2 and core.high_watermark == 2


def test_an_epoch_the_follower_does_not_know_takes_another_round() -> None:
    # ours: epochs 1 [0,1), 3 [1,3), 4 [3,4); the leader's largest epoch <= 4 is 2 (which we never saw)
    core, ask = make_follower(log_with(stored(0, 1), stored(1, 3, 2), stored(3, 4)))
    assert ask.leader_epoch == 4
    out = core.on_offset_for_leader_epoch_response(answer(2, 2), T0)
    assert core.log_end_offset == 1 and core.follower_phase is FollowerPhase.TRUNCATING  # cut to our end of 1
    again = only(messages(out, OffsetForLeaderEpoch))
    assert again.leader_epoch == 1
    core.on_offset_for_leader_epoch_response(answer(1, 1), T0)
    assert core.follower_phase is FollowerPhase.FETCHING and core.log_end_offset == 1


def test_a_committed_record_is_kept_even_when_the_followers_high_watermark_lags() -> None:
    """KIP-101's data-loss case: truncating to the high watermark would drop an acknowledged record."""
    core, _ = make_follower(log_with(stored(0, 1), stored(1, 1), hw=1))
    core.on_offset_for_leader_epoch_response(answer(1, 2), T0)
    assert core.log_end_offset == 2


def test_an_answer_to_an_older_question_is_ignored() -> None:
    core, first = make_follower(log_with(stored(0, 1, 3)), epoch=5)
    core.become_follower(3, 6, T0)  # leadership moved before leader 2 answered
    late = answer(1, 0)  # leader 2's log: our epoch 1 ends at 0 (it would cut everything)
    assert core.on_offset_for_leader_epoch_response(late, T0, request=first).to_replicas == []
    assert core.log_end_offset == 3 and core.follower_phase is FollowerPhase.TRUNCATING
    current = OffsetForLeaderEpoch("t", 0, 1, 6, 1)
    out = core.on_offset_for_leader_epoch_response(answer(1, 3), T0, request=current)
    assert core.log_end_offset == 3 and only(messages(out, ReplicaFetch, to=3)).current_leader_epoch == 6
    stale_fetch = ReplicaFetch("t", 0, 1, 5, 0, 1 << 20, 500)
    assert core.on_replica_fetch_response(response(stored(3, 5)), T0, request=stale_fetch).to_replicas == []
    assert core.log_end_offset == 3


def test_errors_and_silence_are_retried() -> None:
    core, ask = make_follower()
    assert core.tick(T0 + SETTINGS.request_timeout_ms - 1).to_replicas == []
    assert only(messages(core.tick(T0 + SETTINGS.request_timeout_ms), OffsetForLeaderEpoch)) == ask
    now = T0 + SETTINGS.request_timeout_ms
    assert core.on_offset_for_leader_epoch_response(answer(-1, -1, code=NotLeaderError.code), now).to_replicas == []
    assert core.tick(now + SETTINGS.retry_backoff_ms - 1).to_replicas == []
    assert only(messages(core.tick(now + SETTINGS.retry_backoff_ms), OffsetForLeaderEpoch))


# ---------------------------------------------------------------------------- fetching
def test_fetched_batches_are_appended_and_the_next_fetch_goes_out_at_once() -> None:
    core, _ = make_follower()
    first = fetching(core)
    assert (first.fetch_offset, first.current_leader_epoch, first.max_wait_ms) == (0, 5, 500)
    out = core.on_replica_fetch_response(response(stored(0, 5, 2) + stored(2, 5), hw=2, end=3), T0)
    assert offsets(core) == [0, 1, 2] and core.high_watermark == 2
    assert only(messages(out, ReplicaFetch)).fetch_offset == 3
    core.on_replica_fetch_response(response(b"", hw=9, end=3), T0)
    assert core.high_watermark == 3  # the leader's, capped at our log end


def test_batches_already_held_are_dropped_from_a_late_answer() -> None:
    core, _ = make_follower()
    fetching(core)
    core.on_replica_fetch_response(response(stored(0, 5) + stored(1, 5), end=2), T0)
    core.on_replica_fetch_response(response(stored(0, 5) + stored(1, 5) + stored(2, 5), end=3), T0)
    assert offsets(core) == [0, 1, 2]


def test_a_leader_whose_log_starts_past_ours_makes_us_start_there() -> None:
    core, _ = make_follower(log_with(stored(0, 1, 2)))
    fetching(core)
    out = core.on_replica_fetch_response(response(b"", code=OffsetOutOfRangeError.code, start=100, end=150), T0)
    assert (core.log_start_offset, core.log_end_offset) == (100, 100)
    assert only(messages(out, ReplicaFetch)).fetch_offset == 100


def test_answers_from_another_leadership_change_nothing() -> None:
    core, _ = make_follower(log_with(stored(0, 1, 3)), epoch=5)
    fetching(core)
    assert core.on_replica_fetch_response(response(stored(3, 4), epoch=4, end=4), T0).to_replicas == []
    stale_range = response(b"", epoch=4, code=OffsetOutOfRangeError.code, end=1)  # an old leader's shorter log
    assert core.on_replica_fetch_response(stale_range, T0).to_replicas == []
    assert core.log_end_offset == 3  # neither appended nor truncated


def test_an_error_answer_backs_off_and_silence_resends_the_fetch() -> None:
    core, _ = make_follower()
    fetching(core)
    wait = SETTINGS.replica_fetch_wait_max_ms + SETTINGS.request_timeout_ms
    assert only(messages(core.tick(T0 + wait), ReplicaFetch)).fetch_offset == 0
    assert core.on_replica_fetch_response(response(b"", code=UnknownLeaderEpochError.code), T0 + wait).to_replicas == []
    assert only(messages(core.tick(T0 + wait + SETTINGS.retry_backoff_ms), ReplicaFetch))


# ---------------------------------------------------------------------------- pushes
def test_a_push_at_our_log_end_is_appended_and_acknowledged() -> None:
    core, _ = make_follower()
    fetching(core)
    out = core.on_replica_append(push(0, stored(0, 5, 3), hw=2), T0)
    ack = only(messages(out, ReplicaAppendAck, to=LEADER))
    assert (ack.error_code, ack.log_end_offset, ack.leader_epoch, ack.follower_id) == (0, 3, 5, 1)
    assert core.high_watermark == 2


def test_a_push_past_our_log_end_is_refused_so_the_leader_serves_us_by_fetching() -> None:
    core, _ = make_follower()
    fetching(core)  # a fetch is in flight: no second one
    out = core.on_replica_append(push(4, stored(4, 5)), T0)
    ack = only(messages(out, ReplicaAppendAck))
    assert (ack.error_code, ack.log_end_offset) == (OffsetOutOfRangeError.code, 0)
    assert messages(out, ReplicaFetch) == [] and core.log_end_offset == 0
    out = core.on_replica_fetch_response(response(b"", end=5), T0)  # the long poll came back empty...
    assert only(messages(out, ReplicaFetch)).fetch_offset == 0  # ...and the next fetch went out with it


def test_a_repeated_push_changes_nothing() -> None:
    core, _ = make_follower()
    fetching(core)
    core.on_replica_append(push(0, stored(0, 5, 2)), T0)
    ack = only(messages(core.on_replica_append(push(0, stored(0, 5, 2)), T0), ReplicaAppendAck))
    assert (ack.error_code, ack.log_end_offset) == (0, 2) and offsets(core) == [0, 1]


def test_pushes_from_another_epoch_or_before_truncation_are_refused() -> None:
    core, _ = make_follower(epoch=5)
    assert only(messages(core.on_replica_append(push(0, stored(0, 4), epoch=4), T0), ReplicaAppendAck)).error_code == FencedLeaderEpochError.code
    assert only(messages(core.on_replica_append(push(0, stored(0, 6), epoch=6), T0), ReplicaAppendAck)).error_code == UnknownLeaderEpochError.code
    assert only(messages(core.on_replica_append(push(0, stored(0, 5), leader=3), T0), ReplicaAppendAck)).error_code == FencedLeaderEpochError.code
    truncating = only(messages(core.on_replica_append(push(0, stored(0, 5)), T0), ReplicaAppendAck))
    assert truncating.error_code == OffsetOutOfRangeError.code and core.log_end_offset == 0


def test_a_follower_keeps_producer_state_so_a_new_leader_recognises_retries() -> None:
    core, _ = make_follower(epoch=1)
    fetching(core)
    core.on_replica_append(push(0, stored(0, 1, 2, pid=9, seq=0), epoch=1), T0)
    core.become_leader(2, 4, (1, 2), (1,), T0)
    retry = BatchBuilder(producer_id=9, producer_epoch=0, base_sequence=0)
    for _ in range(2):
        retry.append(b"v", key=b"k", timestamp_ms=T0)
    result = only(core.append_produce(retry.build(), 1, T0).produce_results)
    assert result.duplicate and (result.base_offset, result.last_offset) == (0, 1)
    assert core.log_end_offset == 2


def test_producer_state_is_rebuilt_from_the_log_after_a_truncation() -> None:
    # ours: producer 9 seq 0 (epoch 1), seq 1 (epoch 1), seq 2 (epoch 2, diverged: the leader never had it)
    log = log_with(stored(0, 1, pid=9, seq=0), stored(1, 1, pid=9, seq=1), stored(2, 2, pid=9, seq=2))
    core, _ = make_follower(log, epoch=3)
    core.rlog.sync_producers()
    assert core.rlog.producers.get(9).last_seq == 2
    core.on_offset_for_leader_epoch_response(answer(1, 2), T0)
    assert core.log_end_offset == 2 and core.rlog.producers.end_offset == 0  # reset, rebuilt when needed
    core.become_leader(4, 5, (1, 2), (1,), T0)  # rebuilt from the stored headers

    def produce(seq: int):
        builder = BatchBuilder(producer_id=9, producer_epoch=0, base_sequence=seq)
        builder.append(b"v", key=b"k", timestamp_ms=T0)
        return only(core.append_produce(builder.build(), 1, T0).produce_results)

    assert produce(1).duplicate
    retried = produce(2)  # truncated away: written again, not mistaken for a duplicate
    assert (retried.duplicate, retried.base_offset, retried.error) == (False, 2, None)
