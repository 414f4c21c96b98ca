"""Idempotent producer state: duplicates, gaps, fencing, replay from headers."""

from __future__ import annotations

import dataclasses

import pytest

from kbroker.actors.producer_state import MAX_BATCHES, ProducerStateTable, next_sequence
from kbroker.actors.replica_errors import InvalidProducerEpochError
from kbroker.errors import InvalidRecordError, InvalidRequestError, OutOfOrderSequenceError
from kbroker.storage.batch import BatchHeader, read_header
from kbroker.storage.records import build_batch

T0 = 1_700_000_000_000


def header(pid: int = 7, epoch: int = 0, seq: int = 0, n: int = 1, base_offset: int = 0, ts: int = T0) -> BatchHeader:
    raw = build_batch([(b"v", b"k", None, ts)] * n, producer_id=pid, producer_epoch=epoch, base_sequence=seq)
    return dataclasses.replace(read_header(raw), base_offset=base_offset)


def appended(table: ProducerStateTable, *headers: BatchHeader, first_offset: int | None = None) -> None:
    assert table.check(headers) is None
    table.record_append(headers, table.end_offset if first_offset is None else first_offset)


def test_batches_without_producer_id_are_not_checked() -> None:
    table = ProducerStateTable()
    plain = header(pid=-1, epoch=-1, seq=-1)
    appended(table, plain)
    appended(table, plain)
    assert len(table) == 0 and table.end_offset == 2


def test_in_sequence_batches_are_accepted_and_remembered_with_their_offsets() -> None:
    table = ProducerStateTable()
    appended(table, header(seq=0, n=3))
    appended(table, header(seq=3, n=2))
    entry = table.get(7)
    assert entry is not None and entry.epoch == 0 and entry.last_seq == 4
    assert [(m.first_seq, m.last_seq, m.first_offset, m.last_offset) for m in entry.batches] == [(0, 2, 0, 2), (3, 4, 3, 4)]
    assert table.end_offset == 5


def test_a_retried_batch_is_a_duplicate_with_its_original_offsets() -> None:
    table = ProducerStateTable()
    appended(table, header(pid=-1, seq=-1, epoch=-1, n=10))  # offsets 0..9 by someone else
    appended(table, header(seq=0, n=3))  # 10..12
    appended(table, header(seq=3, n=1))  # 13
    duplicate = table.check([header(seq=0, n=3)])
    assert duplicate is not None and (duplicate.first_offset, duplicate.last_offset) == (10, 12)


def test_only_the_last_five_batches_are_remembered() -> None:
    table = ProducerStateTable()
    for i in range(MAX_BATCHES + 2):
        appended(table, header(seq=i))
    assert len(table.get(7).batches) == MAX_BATCHES
    with pytest.raises(OutOfOrderSequenceError):
        table.check([header(seq=0)])  # too old to be recognised: not next either
    assert table.check([header(seq=MAX_BATCHES + 1)]) is not None


def test_a_gap_in_sequences_is_out_of_order() -> None:
    table = ProducerStateTable()
    appended(table, header(seq=0, n=2))
    with pytest.raises(OutOfOrderSequenceError, match="expected sequence 2, got 3"):
        table.check([header(seq=3)])


def test_an_older_producer_epoch_is_fenced_and_a_newer_one_restarts_at_zero() -> None:
    table = ProducerStateTable()
    appended(table, header(epoch=3, seq=0))
    with pytest.raises(InvalidProducerEpochError):
        table.check([header(epoch=2, seq=1)])
    with pytest.raises(OutOfOrderSequenceError, match="starts at sequence 0"):
        table.check([header(epoch=4, seq=5)])
    appended(table, header(epoch=4, seq=0))
    assert table.get(7).epoch == 4 and len(table.get(7).batches) == 1


def test_an_unknown_producer_may_start_anywhere() -> None:
    table = ProducerStateTable()
    appended(table, header(seq=41))  # its earlier batches went with retention
    assert table.get(7).last_seq == 41


def test_sequences_wrap_around() -> None:
    assert next_sequence(2**31 - 1) == 0
    table = ProducerStateTable()
    appended(table, header(seq=2**31 - 2, n=2))
    assert table.get(7).last_seq == 2**31 - 1
    appended(table, header(seq=0))


def test_several_batches_in_one_request_are_checked_in_order() -> None:
    table = ProducerStateTable()
    appended(table, header(seq=0), header(seq=1), header(pid=8, seq=0))
    assert table.get(7).last_seq == 1 and table.get(8).last_seq == 0
    with pytest.raises(OutOfOrderSequenceError):
        table.check([header(seq=2), header(seq=4)])
    with pytest.raises(InvalidRequestError):
        table.check([header(seq=1), header(seq=2)])  # a duplicate mixed with new data


def test_a_producer_id_without_sequence_is_invalid() -> None:
    with pytest.raises(InvalidRecordError):
        ProducerStateTable().check([header(seq=-1)])


def test_replay_rebuilds_the_same_state_from_stored_headers() -> None:
    live = ProducerStateTable()
    stored: list[BatchHeader] = []
    for seq, pid in [(0, 7), (0, 8), (1, 7), (1, 8), (2, 7)]:
        h = dataclasses.replace(header(pid=pid, seq=seq), base_offset=live.end_offset)
        appended(live, h)
        stored.append(h)
    rebuilt = ProducerStateTable()
    rebuilt.replay(stored, stored[-1].next_offset)
    for pid in (7, 8):
        assert list(rebuilt.get(pid).batches) == list(live.get(pid).batches)
    assert rebuilt.end_offset == live.end_offset
    # replaying from a snapshot point skips what the table already has
    partial = ProducerStateTable()
    partial.replay(stored[:2], stored[1].next_offset)
    partial.replay(stored, stored[-1].next_offset)
    assert list(partial.get(7).batches) == list(live.get(7).batches)


def test_reset_and_expiry() -> None:
    table = ProducerStateTable()
    appended(table, header(pid=1, ts=T0))
    appended(table, header(pid=2, ts=T0 + 5_000))
    assert table.expire(T0 + 10_000, expiration_ms=8_000) == 1
    assert table.get(1) is None and table.get(2) is not None
    table.reset(42)
    assert len(table) == 0 and table.end_offset == 42
