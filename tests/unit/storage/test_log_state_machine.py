"""Model-based test of kbroker.storage.log: random operation sequences against a plain model.

The model is a dict ``offset -> ModelRecord`` (key, value, headers, timestamp, and the span of the
batch that holds the record) plus the log start, high watermark and log end offsets. Every rule
drives the real ``Log`` and the model side by side; invariants compare them after every step:

- ``log_start <= high_watermark <= log_end`` and all three equal the model's;
- a full read from the log start up to the high watermark (and up to the log end) decodes to
  exactly the model's records, batch by batch;
- the leader epoch cache maps every batch's base offset to the epoch in its header.

Crashes are simulated by dropping the ``Log`` without ``close`` (no flush, no checkpoint, no
clean-shutdown marker), optionally damaging the last segment first (cut at a random byte, or
random bytes appended), or by raising at a named fault point in the middle of an operation. After
a crash the log must be a prefix of the model, keep every batch wholly before the cut, and the
model is truncated to the log's new end.

The clock is injected (``self.now``) and advanced by a rule, so compaction's tombstone horizon
(``delete.retention.ms``) and retention by time are deterministic.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path
from typing import NamedTuple

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from kbroker.storage import faults
from kbroker.storage.batch import HEADER_SIZE, BatchHeader, iter_batches, read_header
from kbroker.storage.checkpoint import read_checkpoint
from kbroker.storage.config import TopicConfig
from kbroker.storage.log import Log
from kbroker.storage.records import BatchBuilder, LogRecord, decode_body

KEYS = [b"k0", b"k1", b"k2", b"k3", None]
DELETE_RETENTION_MS = 10_000
START_MS = 1_700_000_000_000


class SimulatedCrash(Exception):
    """Raised at an armed fault point: the process 'dies' there."""


class ModelRecord(NamedTuple):
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    batch_base: int
    batch_next: int  # offset after the batch's span (compaction keeps the span)


def _as_tuple(record: LogRecord | ModelRecord) -> tuple:
    return (record.offset, record.timestamp_ms, record.key, record.value, list(record.headers))


def abandon(log: Log) -> None:
    """Drop ``log`` as a killed process would: close its descriptors, flush and checkpoint nothing."""
    log.close_handlers()


def surviving_end(path: Path, base_offset: int, cut_at: int) -> tuple[int, int]:
    """Walk the batch headers of a segment file cut at ``cut_at``: ``(next offset, byte position)``
    after the last batch that lies wholly before the cut."""
    data = path.read_bytes()[:cut_at]
    pos, next_offset = 0, base_offset
    while pos + HEADER_SIZE <= len(data):
        header = read_header(data, pos)
        if header.size < HEADER_SIZE or pos + header.size > len(data):
            break
        next_offset = header.next_offset
        pos += header.size
    return next_offset, pos


def read_all(
    log: Log, start: int, upto: int | None, max_bytes: int = 1 << 20
) -> tuple[list[BatchHeader], list[LogRecord]]:
    """Every batch from ``start`` to ``upto`` (default the log end), read the way a consumer does."""
    headers: list[BatchHeader] = []
    records: list[LogRecord] = []
    limit = log.log_end_offset if upto is None else upto
    position = start
    while position < limit:
        result = log.read(position, max_bytes, upto)
        if not result.data:
            break
        for pos, header in iter_batches(result.data):
            headers.append(header)
            records.extend(decode_body(result.data, pos, header))
        assert result.next_offset > position, "a read that returns data must advance"
        position = result.next_offset
    return headers, records


record_strategy = st.tuples(
    st.sampled_from(KEYS),
    st.one_of(st.binary(max_size=40), st.binary(min_size=1, max_size=8), st.none()),
    st.lists(st.tuples(st.sampled_from(["h", "trace-id", "é"]), st.binary(max_size=8)), max_size=2),
    st.integers(-3_000, 3_000),  # timestamp relative to the clock
)
batch_strategy = st.tuples(st.lists(record_strategy, min_size=1, max_size=5), st.sampled_from([None, "gzip", "zstd"]))


class LogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="kbroker-log-sm-"))
        self.now = START_MS
        self.log: Log | None = None
        self.records: dict[int, ModelRecord] = {}
        self.spans: list[tuple[int, int]] = []  # (base, next) of every batch still in the offset space
        self.ls = self.hw = self.leo = 0
        self.epoch = 0

    # ------------------------------------------------------------------ set-up and helpers
    @initialize(
        segment_bytes=st.sampled_from([200, 700, 4096]),
        index_interval=st.sampled_from([0, 150, 4096]),
        log_append_time=st.booleans(),
    )
    def open_log(self, segment_bytes: int, index_interval: int, log_append_time: bool) -> None:
        self.log_append_time = log_append_time
        self.config = TopicConfig(
            cleanup_policy=frozenset({"compact", "delete"}),
            segment_bytes=segment_bytes,
            index_interval_bytes=index_interval,
            retention_ms=-1,
            retention_bytes=-1,
            delete_retention_ms=DELETE_RETENTION_MS,
            message_timestamp_type="LogAppendTime" if log_append_time else "CreateTime",
        )
        self.log = self._open()

    def _open(self) -> Log:
        return Log.open(self.directory, self.config, clock=lambda: self.now)

    def teardown(self) -> None:
        faults.disarm()
        if self.log is not None and not self.log.closed:
            abandon(self.log)
        shutil.rmtree(self.directory, ignore_errors=True)

    def _build(self, batches: list) -> tuple[bytes, list[list[tuple]]]:
        data = b""
        stamped = []
        for records, codec in batches:
            builder = BatchBuilder(codec)
            rows = []
            for key, value, headers, delta in records:
                ts = max(0, self.now + delta)
                builder.append(value, key, headers, ts)
                rows.append((key, value, list(headers), self.now if self.log_append_time else ts))
            data += builder.build()
            stamped.append(rows)
        return data, stamped

    def _model_append(self, stamped: list[list[tuple]]) -> int:
        offset = self.leo
        for rows in stamped:
            base, nxt = offset, offset + len(rows)
            for i, (key, value, headers, ts) in enumerate(rows):
                self.records[base + i] = ModelRecord(base + i, ts, key, value, headers, base, nxt)
            self.spans.append((base, nxt))
            offset = nxt
        return offset

    def _model_truncate_end(self, end: int) -> None:
        self.records = {o: r for o, r in self.records.items() if r.batch_next <= end}
        self.spans = [(b, n) for b, n in self.spans if n <= end]
        self.leo = end
        self.hw = min(self.hw, end)

    def _model_drop_before(self, start: int) -> None:
        # Whole batches below the new start are gone; the batch holding it is still read whole.
        self.records = {o: r for o, r in self.records.items() if r.batch_next > start}
        self.spans = [(b, n) for b, n in self.spans if n > start]
        self.ls = start

    def _live_batches(self) -> dict[int, list[ModelRecord]]:
        batches: dict[int, list[ModelRecord]] = {}
        for offset in sorted(self.records):
            record = self.records[offset]
            batches.setdefault(record.batch_base, []).append(record)
        return batches

    def _crash_and_reopen(self, damage: str = "none", data=None) -> None:
        """Kill the log (no close), optionally damage the last segment, reopen and check recovery."""
        assert self.log is not None
        state = dict(read_checkpoint(self.directory / "log-state") or [])
        last = self.log.segments[-1]
        path, base = last.path, last.base_offset
        abandon(self.log)
        size = path.stat().st_size
        expected_end = self.log.log_end_offset
        expected_cut = 0
        if damage == "cut":
            cut_at = data.draw(st.integers(0, size), label="cut_at")
            os.truncate(path, cut_at)
            expected_end, boundary = surviving_end(path, base, cut_at)
            expected_cut = cut_at - boundary
        elif damage == "garbage":
            garbage = data.draw(st.binary(min_size=1, max_size=200), label="garbage")
            with open(path, "ab") as fh:
                fh.write(garbage)
            expected_cut = len(garbage)
        self.log = self._open()
        assert self.log.recovered_bytes == expected_cut
        assert self.log.log_end_offset == expected_end
        assert expected_end <= self.leo
        self._model_truncate_end(expected_end)
        assert self.log.log_start_offset == min(self.ls, expected_end)
        self.ls = self.log.log_start_offset
        # The high watermark comes back from the last checkpoint: never ahead of what it was.
        expected_hw = min(max(int(state.get("high_watermark", 0)), self.ls), expected_end)
        assert self.log.high_watermark == expected_hw
        assert expected_hw <= self.hw
        self.hw = self.log.high_watermark

    # ------------------------------------------------------------------ rules
    @rule(batches=st.lists(batch_strategy, min_size=1, max_size=2), bump=st.sampled_from([0, 0, 0, 1, 2]))
    def append(self, batches: list, bump: int) -> None:
        self.epoch += bump
        data, stamped = self._build(batches)
        result = self.log.append(data, leader_epoch=self.epoch)
        end = self._model_append(stamped)
        assert (result.first_offset, result.last_offset) == (self.leo, end - 1)
        assert result.records == sum(len(rows) for rows in stamped)
        self.leo = end

    # Appends fill the log that every other rule works on: give them more weight.
    @rule(batches=st.lists(batch_strategy, min_size=1, max_size=3), bump=st.sampled_from([0, 0, 1]))
    def append_more(self, batches: list, bump: int) -> None:
        self.append(batches, bump)

    @rule(batches=st.lists(batch_strategy, min_size=2, max_size=4))
    def append_same_epoch(self, batches: list) -> None:
        self.append(batches, 0)

    @rule(
        batches=st.lists(batch_strategy, min_size=1, max_size=2),
        gaps=st.lists(st.integers(0, 3), min_size=2, max_size=2),
        bump=st.sampled_from([0, 0, 1]),
    )
    def append_replicated(self, batches: list, gaps: list[int], bump: int) -> None:
        """A follower copies the leader's batches as they are: offsets and epochs already assigned,
        with gaps where the leader's cleaner removed whole batches."""
        self.epoch += bump
        data = b""
        offset = self.leo
        for (records, codec), gap in zip(batches, gaps):
            if gap:
                self.spans.append((offset, offset + gap))  # nothing there: a gap in the offset space
                offset += gap
            builder = BatchBuilder(codec)
            rows = []
            for key, value, headers, delta in records:
                ts = max(0, self.now + delta)
                builder.append(value, key, headers, ts)
                rows.append((key, value, list(headers), ts))
            data += builder.build(base_offset=offset, leader_epoch=self.epoch)
            self.leo = offset
            offset = self._model_append([rows])
        result = self.log.append_replicated(data)
        assert result.last_offset == offset - 1
        self.leo = offset

    @rule(data=st.data())
    def read_at_random_offset(self, data) -> None:
        offset = data.draw(st.integers(self.ls, self.leo), label="offset")
        max_bytes = data.draw(st.sampled_from([0, 100, 1000, 1 << 20]), label="max_bytes")
        to_hw = data.draw(st.booleans(), label="to_hw")
        upto = self.hw if to_hw else self.leo
        result = self.log.read(offset, max_bytes, self.hw if to_hw else None)
        got = list(iter_batches(result.data))
        live = self._live_batches()
        candidates = [records for base, records in sorted(live.items()) if records[0].batch_next > offset]
        if not got:
            assert result.next_offset == offset
            assert not candidates or candidates[0][0].batch_next > upto, "a readable batch was not returned"
            return
        assert len(got) == 1 or len(result.data) <= max_bytes
        assert len(got) <= len(candidates)
        for (pos, header), expected in zip(got, candidates):
            assert header.base_offset == expected[0].batch_base
            assert header.next_offset == expected[0].batch_next <= upto
            assert [_as_tuple(r) for r in decode_body(result.data, pos, header)] == [_as_tuple(r) for r in expected]
        assert result.next_offset == got[-1][1].next_offset

    @rule()
    def roll(self) -> None:
        self.log.roll()

    @rule(data=st.data())
    def update_high_watermark(self, data) -> None:
        boundaries = sorted({n for _, n in self.spans if n > self.hw} | {self.leo})
        target = data.draw(st.one_of(st.sampled_from(boundaries), st.integers(0, self.leo + 3)), label="hw")
        expected = max(self.hw, min(target, self.leo))
        assert self.log.update_high_watermark(target) == expected
        self.hw = expected

    @rule()
    def commit_everything(self) -> None:
        """Every replica caught up: the high watermark reaches the log end."""
        assert self.log.update_high_watermark(self.leo) == self.leo
        self.hw = self.leo

    @rule(force=st.booleans(), ms=st.integers(0, 2 * DELETE_RETENTION_MS))
    def roll_commit_and_clean(self, force: bool, ms: int) -> None:
        self.log.roll()
        self.commit_everything()
        self.advance_clock(ms)
        self.clean(force)

    @rule(data=st.data())
    def offset_for_timestamp(self, data) -> None:
        stamps = sorted({r.timestamp_ms for r in self.records.values()})
        target = data.draw(
            st.one_of(
                st.sampled_from(stamps) if stamps else st.nothing(),
                st.integers(self.now - 5_000, self.now + 5_000),
            ),
            label="timestamp",
        )
        found = [r for o, r in sorted(self.records.items()) if o >= self.ls and r.timestamp_ms >= target]
        expected = (found[0].offset, found[0].timestamp_ms) if found else None
        assert self.log.offset_for_timestamp(target) == expected

    @rule(data=st.data())
    def delete_records_before(self, data) -> None:
        """DeleteRecords: the log start may land inside a batch (reads still return that batch whole)."""
        offset = data.draw(st.integers(self.ls, self.hw), label="delete_before")
        assert self.log.delete_records_before(offset) == offset
        self._model_drop_before(offset)

    @rule(data=st.data())
    def truncate_to(self, data) -> None:
        offset = data.draw(st.integers(max(0, self.ls - 2), self.leo + 2), label="truncate_offset")
        new_end = self.log.truncate_to(offset)
        if offset >= self.leo:
            assert new_end == self.leo
            return
        if offset <= self.ls:
            self.records.clear()
            self.spans.clear()
            self.ls = self.hw = self.leo = min(offset, self.ls)
            assert new_end == self.leo
            return
        self._check_truncated_end(offset, new_end)
        self._model_truncate_end(new_end)
        self.ls = min(self.ls, new_end)  # the batch holding a mid-batch log start may be gone

    def _check_truncated_end(self, offset: int, new_end: int) -> None:
        """Whole batches only: every batch ending before ``offset`` stays, every other one goes."""
        kept = [(b, n) for b, n in self.spans if n - 1 < offset]
        kept_live = [n for b, n in kept if any(r.batch_base == b for r in self.records.values())]
        lowest = max(kept_live, default=0)
        highest = max((n for _, n in kept), default=self.ls)
        assert lowest <= new_end <= highest <= offset
        if lowest == highest:
            assert new_end == lowest

    @rule(
        retention_bytes=st.one_of(st.just(-1), st.integers(0, 3_000)),
        retention_ms=st.one_of(st.just(-1), st.integers(0, 30_000)),
    )
    def enforce_retention(self, retention_bytes: int, retention_ms: int) -> None:
        overrides = {"retention_bytes": retention_bytes, "retention_ms": retention_ms}
        self.log.update_config(dataclasses.replace(self.config, **overrides))
        try:
            self.log.enforce_retention()
        finally:
            self.log.update_config(self.config)
        new_start = self.log.log_start_offset
        assert self.ls <= new_start <= self.hw
        segments = self.log.segments
        # The oldest segment may go once the next one (the new log start) is within the high watermark.
        if len(segments) > 1 and segments[1].base_offset <= self.hw:
            if retention_bytes >= 0:
                excess = self.log.size_bytes - retention_bytes
                assert excess < segments[0].size, "retention.bytes left a deletable segment"
            elif retention_ms >= 0:
                assert segments[0].max_timestamp >= self.now - retention_ms, "retention.ms left an expired segment"
        self._model_drop_before(new_start)

    @rule(ms=st.integers(0, 20_000))
    def advance_clock(self, ms: int) -> None:
        self.now += ms

    @rule(force=st.booleans())
    def clean(self, force: bool) -> None:
        latest: dict[bytes, ModelRecord] = {}
        for offset in sorted(self.records):
            record = self.records[offset]
            if record.key is not None:
                latest[record.key] = record
        result = self.log.clean(force=force)
        if result is None:
            return
        end, first_dirty = result.end_offset, result.first_dirty_offset
        assert self.ls <= first_dirty < end <= self.hw
        horizon = self.now - DELETE_RETENTION_MS
        # The model's rule: within the cleaned range keep the latest record per key (as seen in the
        # dirty part) and drop tombstones older than delete.retention.ms.
        last_in_dirty = {
            r.key: o for o, r in sorted(self.records.items()) if first_dirty <= o < end and r.key is not None
        }
        for offset, record in list(self.records.items()):
            if offset >= end or record.key is None:
                continue
            if last_in_dirty.get(record.key, -1) > offset or (record.value is None and record.timestamp_ms < horizon):
                del self.records[offset]
        # Independent of how the rule is phrased: each key's latest value survives, each key
        # appears at most once in the cleaned range, expired tombstones are gone.
        for key, record in latest.items():
            expired_tombstone = record.value is None and record.offset < end and record.timestamp_ms < horizon
            assert (record.offset in self.records) != expired_tombstone
        keys_in_range = [r.key for o, r in self.records.items() if self.ls <= o < end and r.key is not None]
        assert len(keys_in_range) == len(set(keys_in_range))

    @rule(damage=st.sampled_from(["none", "none", "delete_indexes", "torn_index", "unordered_index", "delete_epochs"]))
    def close_and_reopen(self, damage: str) -> None:
        epochs = self.log.epochs.entries
        self.log.close()
        if damage == "delete_indexes":
            for path in self.directory.glob("*index"):
                path.unlink()
        elif damage == "torn_index":
            for path in self.directory.glob("*.index"):
                with open(path, "ab") as fh:
                    fh.write(b"\x00\x01\x02")
        elif damage == "unordered_index":
            for path in self.directory.glob("*.index"):
                first = path.read_bytes()[:8]
                if first:
                    with open(path, "ab") as fh:
                        fh.write(first)
        elif damage == "delete_epochs":
            (self.directory / "leader-epoch-checkpoint").unlink(missing_ok=True)
        self.log = self._open()
        assert self.log.recovered_bytes == 0
        offsets = (self.log.log_start_offset, self.log.high_watermark, self.log.log_end_offset)
        assert offsets == (self.ls, self.hw, self.leo)
        if damage != "delete_epochs":
            # An entry starting at the log end covers no batch; open drops it (truncate_from_end).
            assert self.log.epochs.entries == [e for e in epochs if e.start_offset < self.leo]

    @rule(damage=st.sampled_from(["none", "cut", "cut", "garbage"]), data=st.data())
    def crash(self, damage: str, data) -> None:
        self._crash_and_reopen(damage, data)

    @rule(
        point=st.sampled_from(
            ["segment.append", "segment.roll", "segment.fsync", "log.checkpoint", "segment.truncate", "cleaner.swap"]
        ),
        data=st.data(),
    )
    def crash_at_fault_point(self, point: str, data) -> None:
        faults.arm(point, SimulatedCrash(f"crash at {point}"), times=1)
        lowest_end = self.leo
        try:
            if point == "segment.append":
                batch = data.draw(batch_strategy, label="batch")
                payload, _ = self._build([batch])
                self.log.append(payload, leader_epoch=self.epoch)
                raise AssertionError("segment.append was not reached")
            elif point == "segment.truncate":
                if self.leo - self.ls < 2:
                    return
                offset = data.draw(st.integers(self.ls + 1, self.leo - 1), label="truncate_offset")
                live = {r.batch_base for r in self.records.values()}
                lowest_end = max((n for b, n in self.spans if n - 1 < offset and b in live), default=0)
                self.log.truncate_to(offset)
                raise AssertionError("segment.truncate was not reached")
            elif point == "cleaner.swap":
                if self.log.clean(now_ms=self.now, force=True) is not None:
                    raise AssertionError("cleaner.swap was not reached")
                return  # nothing to clean: nothing happened
            else:
                self.log.roll()  # may return early (empty active segment): then nothing happened
                return
        except SimulatedCrash:
            pass
        finally:
            faults.disarm(point)
        before = self.leo
        self._crash_and_reopen()
        assert lowest_end <= self.leo <= before
        if point != "segment.truncate":
            assert self.leo == before, f"a crash at {point} lost data"

    # ------------------------------------------------------------------ invariants
    @invariant()
    def offsets_match_model(self) -> None:
        log = self.log
        assert log.log_start_offset <= log.high_watermark <= log.log_end_offset
        assert (log.log_start_offset, log.high_watermark, log.log_end_offset) == (self.ls, self.hw, self.leo)

    @invariant()
    def full_read_matches_model(self) -> None:
        expected = [_as_tuple(self.records[o]) for o in sorted(self.records)]
        headers, records = read_all(self.log, self.ls, None, max_bytes=700)
        assert [_as_tuple(r) for r in records] == expected
        committed = [_as_tuple(self.records[o]) for o in sorted(self.records) if self.records[o].batch_next <= self.hw]
        _, below_hw = read_all(self.log, self.ls, self.hw)
        assert [_as_tuple(r) for r in below_hw] == committed
        entries = self.log.epochs.entries
        assert all(a.epoch < b.epoch and a.start_offset < b.start_offset for a, b in zip(entries, entries[1:]))
        for header in headers:
            # The entry covering a batch that holds a mid-batch log start begins at the log start.
            first = max(header.base_offset, self.ls)
            covering = [e for e in entries if e.start_offset <= first]
            assert covering and covering[-1].epoch == header.leader_epoch, (header, entries)


LogMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestLogStateMachine = LogMachine.TestCase


def test_retention_never_moves_the_log_start_past_the_high_watermark(tmp_path: Path) -> None:
    """Regression (found by the machine): a follower's segment can start after a gap (the leader's
    cleaner removed whole batches). Retention deleted the segment before such a gap once that
    segment's own end was within the high watermark, so the log start (the next segment's base
    offset) landed past the high watermark. As in Kafka, the next segment's base is the bound."""
    config = TopicConfig(segment_bytes=200, retention_bytes=0)
    log = Log.open(tmp_path, config, clock=lambda: START_MS)

    def batch(base: int, count: int) -> bytes:
        builder = BatchBuilder()
        for _ in range(count):
            builder.append(b"v" * 20, b"k", None, START_MS)
        return builder.build(base_offset=base, leader_epoch=0)

    log.append_replicated(batch(0, 3))
    log.append_replicated(batch(5, 3))  # too big for the first segment: rolls to a segment at 5
    assert [(s.base_offset, s.next_offset) for s in log.segments] == [(0, 3), (5, 8)]
    log.update_high_watermark(3)
    assert log.enforce_retention() == 0
    assert log.log_start_offset == 0 <= log.high_watermark == 3
    log.update_high_watermark(5)
    assert log.enforce_retention() == 1
    assert log.log_start_offset == 5 == log.high_watermark
    log.close()
