"""ProducerBatch: lifecycle table, bytes identical to BatchBuilder's, restamping; RecordFuture."""

from __future__ import annotations

import concurrent.futures
import logging
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kbroker.errors import NotLeaderError
from kbroker.storage.batch import read_header, validate_batch
from kbroker.storage.compression import Codec
from kbroker.storage.records import BatchBuilder, decode_batch
from kbroker.transport.client.producer_batch import TRANSITIONS, BatchState, ProducerBatch, RecordFuture
from kbroker.transport.client.record_input import BATCH_OVERHEAD
from kbroker.transport.client.types import RecordMetadata, TopicPartition

TP = TopicPartition("t", 0)


def _batch(records: list[tuple[bytes | None, bytes | None, list, int]], codec: Codec = Codec.NONE) -> ProducerBatch:
    """Fill a batch the way Accumulator.append does."""
    batch = ProducerBatch(TP, codec, 0.0, BATCH_OVERHEAD, records[0][3])
    for i, (key, value, headers, ts) in enumerate(records):
        batch.records.append((i, ts - batch.first_ts, key, value, headers or ()))  # type: ignore[union-attr]
        batch.max_ts = max(batch.max_ts, ts)
    return batch


def test_transition_table_is_closed_and_terminal_states_have_no_exit() -> None:
    assert set(TRANSITIONS) == set(BatchState)
    assert TRANSITIONS[BatchState.DONE] == TRANSITIONS[BatchState.FAILED] == frozenset()
    assert BatchState.OPEN not in {s for targets in TRANSITIONS.values() for s in targets}
    batch = _batch([(None, b"v", [], 1)])
    batch.move(BatchState.IN_FLIGHT)
    batch.move(BatchState.RETRY)
    batch.move(BatchState.IN_FLIGHT)
    batch.move(BatchState.DONE)
    with pytest.raises(RuntimeError, match="illegal transition done -> retry"):
        batch.move(BatchState.RETRY)


record_strategy = st.tuples(
    st.one_of(st.none(), st.binary(max_size=20)),
    st.one_of(st.none(), st.binary(max_size=50)),
    st.lists(st.tuples(st.text(max_size=5), st.one_of(st.none(), st.binary(max_size=5))), max_size=2),
    st.integers(min_value=0, max_value=2**41),
)


@settings(max_examples=60, deadline=None)
@given(
    records=st.lists(record_strategy, min_size=1, max_size=20),
    codec=st.sampled_from([Codec.NONE, Codec.GZIP, Codec.ZSTD]),
    stamp=st.tuples(st.integers(-1, 2**40), st.integers(-1, 2**15 - 1), st.integers(-1, 2**31 - 1)),
)
def test_bytes_are_identical_to_batch_builder(records: list, codec: Codec, stamp: tuple[int, int, int]) -> None:
    """The accumulator skips BatchBuilder.append's re-validation; the format must not drift."""
    builder = BatchBuilder(codec, producer_id=stamp[0], producer_epoch=stamp[1], base_sequence=stamp[2])
    for key, value, headers, ts in records:
        builder.append(value, key, headers, ts)
    batch = _batch(records, codec)
    assert batch.record_count == len(records)
    assert batch.build(stamp) == builder.build()
    assert batch.records is None and batch.record_count == len(records)
    decoded = decode_batch(batch.payload)  # type: ignore[arg-type]
    assert [(r.key, r.value, r.headers, r.timestamp_ms) for r in decoded] == [
        (k, v, [tuple(h) for h in hs], ts) for k, v, hs, ts in records
    ]


def test_restamp_rewrites_only_producer_fields_and_keeps_the_crc_valid() -> None:
    batch = _batch([(b"k", b"v", [], 10), (None, b"w", [("h", b"x")], 12)], Codec.GZIP)
    first = batch.build((7, 0, 100))
    assert batch.build((7, 0, 100)) is first  # same stamp: nothing rebuilt
    second = batch.build((7, 1, 0))
    header = validate_batch(second)  # CRC checked
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (7, 1, 0)
    assert second[61:] == first[61:]  # the body is untouched
    assert [r.value for r in decode_batch(second)] == [b"v", b"w"]
    assert read_header(first).base_sequence == 100


def _done_batch(n: int = 3, ts: int = 500) -> tuple[ProducerBatch, list[RecordFuture]]:
    batch = _batch([(None, b"v%d" % i, [], ts + i) for i in range(n)])
    return batch, [RecordFuture(batch, i, ts + i) for i in range(n)]


def test_futures_resolve_to_offsets_from_the_base_offset_and_their_own_timestamps() -> None:
    batch, futures = _done_batch()
    assert not futures[0].done() and futures[0].running() and not futures[0].cancel()
    with pytest.raises(concurrent.futures.TimeoutError):
        futures[0].result(timeout=0)
    batch.resolve(40, -1, None)
    assert [f.result(0) for f in futures] == [RecordMetadata("t", 0, 40 + i, 500 + i) for i in range(3)]
    assert futures[1].exception(0) is None and futures[1].done() and not futures[1].cancelled()
    assert "done" in repr(futures[1])


def test_log_append_time_replaces_the_create_time_and_acks0_has_no_offset() -> None:
    batch, futures = _done_batch(2)
    batch.resolve(-1, 9_999, None)
    assert [(f.result().offset, f.result().timestamp_ms) for f in futures] == [(-1, 9_999), (-1, 9_999)]


def test_failed_batch_raises_its_error_from_every_future() -> None:
    batch, futures = _done_batch(2)
    error = NotLeaderError("gone")
    batch.resolve(-1, -1, error)
    for f in futures:
        assert f.exception() is error
        with pytest.raises(NotLeaderError):
            f.result()
    assert "failed: NotLeaderError" in repr(futures[0])


def test_callbacks_run_once_before_or_after_completion_and_a_failing_one_is_isolated(
    caplog: pytest.LogCaptureFixture,
) -> None:
    batch, futures = _done_batch(2)
    calls: list[object] = []

    def boom(_: RecordFuture) -> None:
        raise ValueError("callback bug")

    futures[0].add_done_callback(calls.append)
    futures[0].add_done_callback(boom)
    futures[1].add_done_callback(calls.append)
    with caplog.at_level(logging.ERROR):
        batch.resolve(0, -1, None)
    assert calls == [futures[0], futures[1]]
    assert "exception calling callback" in caplog.text
    futures[1].add_done_callback(calls.append)  # already done: runs at once
    assert calls == [futures[0], futures[1], futures[1]]


def test_result_waits_for_another_thread() -> None:
    batch, futures = _done_batch(1)
    waiting = threading.Event()
    got: list[RecordMetadata] = []

    def wait() -> None:
        waiting.set()
        got.append(futures[0].result(timeout=10))

    t = threading.Thread(target=wait)
    t.start()
    waiting.wait(10)
    batch.resolve(7, -1, None)
    t.join(10)
    assert got == [RecordMetadata("t", 0, 7, 500)]


def test_as_concurrent_future_bridges_to_concurrent_futures_wait() -> None:
    ok, ok_futures = _done_batch(1)
    bad, bad_futures = _done_batch(1)
    real_ok = ok_futures[0].as_concurrent_future()
    real_bad = bad_futures[0].as_concurrent_future()
    ok.resolve(3, -1, None)
    bad.resolve(-1, -1, NotLeaderError())
    done, not_done = concurrent.futures.wait([real_ok, real_bad], timeout=5)
    assert not not_done
    assert real_ok.result().offset == 3
    assert isinstance(real_bad.exception(), NotLeaderError)


def test_send_many_future_counts_waits_for_every_batch_and_raises_the_first_error() -> None:
    from kbroker.transport.client.producer_batch import SendManyFuture

    a, b = (ProducerBatch(TopicPartition("t", p), Codec.NONE, 0.0, BATCH_OVERHEAD, 0) for p in (0, 1))
    future = SendManyFuture([a, b], 7)
    assert not future.done()
    a.resolve(0, -1, None)
    with pytest.raises(concurrent.futures.TimeoutError):
        future.result(0.01)
    b.resolve(-1, -1, NotLeaderError("moved"))
    assert future.done() and isinstance(future.exception(0), NotLeaderError)
    with pytest.raises(NotLeaderError):
        future.result(0)
    ok = SendManyFuture([a], 3)
    assert ok.result(0) == 3 and ok.exception(0) is None
