"""Property test: the accumulator against a sequence-checking leader that drops, loses and rejects.

Random sends, drains, answers delivered in any order (pipelined requests), lost answers, whole
requests lost before or after the leader processed them, retriable and fatal rejections, and time
passing; then everything is let through without faults. Invariants:

- every record future resolves exactly once;
- per partition, the leader accepted sequences contiguously (it refuses gaps), so its log holds
  exactly the records whose futures succeeded, each once, in send order (idempotence + ordering
  across retries), and each successful future's offset is the record's place in that log;
- records whose futures failed are not in the log; memory and bookkeeping return to zero.

Hypothesis prints the failing example and a reproduction blob (print_blob).
"""

from __future__ import annotations

from collections import defaultdict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _client_helpers import FakeClock, ModelLeader, leader_everywhere
from kbroker.errors import RecordTooLargeError, RequestTimedOutError
from kbroker.transport.client.accumulator import Accumulator
from kbroker.transport.client.producer_batch import ProducerBatch
from kbroker.transport.client.types import TopicPartition

LEADER = leader_everywhere()
FAULTS = [None, None, None, "before", "lost", "fatal"]


class Harness:
    def __init__(self, data: st.DataObject, *, idempotent: bool = True) -> None:
        self.data = data
        self.clock = FakeClock()
        self.idempotent = idempotent
        self.acc = Accumulator(
            clock=self.clock,
            linger_ms=data.draw(st.sampled_from([0, 5]), label="linger_ms"),
            batch_bytes=data.draw(st.sampled_from([100, 250, 1000]), label="batch_bytes"),
            max_in_flight=data.draw(st.integers(1, 5), label="max_in_flight") if idempotent else 1,
            retry_backoff_ms=data.draw(st.sampled_from([0, 10]), label="retry_backoff_ms"),
            idempotent=idempotent,
        )
        self.epoch = 0
        if idempotent:
            self.acc.set_producer_id(1, self.epoch)
        # without idempotence a lost answer means a duplicate; only faults that write nothing
        self.faults = FAULTS if idempotent else [None, None, None, "before", "fatal"]
        self.lost_requests = [None] * 6 + (["unprocessed", "processed"] if idempotent else ["unprocessed"])
        self.leader = ModelLeader()
        self.sent: dict[TopicPartition, list[tuple[bytes, object]]] = defaultdict(list)
        self.calls: dict[int, int] = defaultdict(int)
        self.pending: list[tuple[list[ProducerBatch], list[tuple[int, int]] | None]] = []
        self.counter = 0

    def send(self) -> None:
        partition = self.data.draw(st.integers(0, 2), label="partition")
        for _ in range(self.data.draw(st.integers(1, 4), label="records")):
            value = b"%d:%06d" % (partition, self.counter) + b"." * 30
            self.counter += 1
            future = self.acc.append("t", partition, value)
            assert future is not None
            future.add_done_callback(lambda f: self.calls.__setitem__(id(f), self.calls[id(f)] + 1))
            self.sent[TopicPartition("t", partition)].append((value, future))

    def drain(self, faults: bool = True) -> None:
        drained = self.acc.drain(LEADER)
        if drained.producer_id_needed:
            self.epoch += 1
            self.acc.set_producer_id(1, self.epoch)
        for batches in drained.requests.values():
            lost = self.data.draw(st.sampled_from(self.lost_requests), label="request") if faults else None
            answers = None
            if lost != "unprocessed":
                answers = []
                for batch in batches:
                    fault = self.data.draw(st.sampled_from(self.faults), label="fault") if faults else None
                    if fault == "fatal" and batch.attempts > 1:
                        fault = None  # a leader that took these bytes once will not call them too large
                    answers.append(self.leader.produce(batch.tp, batch.payload, fault))  # type: ignore[arg-type]
            self.pending.append((batches, None if lost else answers))

    def respond(self) -> None:
        if not self.pending:
            return
        batches, answers = self.pending.pop(self.data.draw(st.integers(0, len(self.pending) - 1), label="which"))
        if answers is None:
            self.acc.fail_request(batches, RequestTimedOutError("no reply"))
            return
        for batch, (code, base) in zip(batches, answers):
            self.acc.complete(batch, code, base_offset=base)

    def settle(self) -> None:
        """Let everything through, without faults, until nothing is left."""
        self.acc.close()  # everything ready now
        for _ in range(2_000):
            if not self.pending and self.acc.incomplete_count() == 0:
                return
            self.clock.advance(1.0)
            while self.pending:
                self.respond()
            self.drain(faults=False)
        raise AssertionError(f"did not settle: {self.acc.incomplete_count()} batches left")


def _run(h: Harness, data: st.DataObject) -> None:
    for _ in range(data.draw(st.integers(1, 40), label="steps")):
        op = data.draw(st.sampled_from(["send", "send", "drain", "respond", "respond", "tick"]), label="op")
        if op == "send":
            h.send()
        elif op == "drain":
            h.drain()
        elif op == "respond":
            h.respond()
        else:
            h.clock.advance(data.draw(st.sampled_from([0.001, 0.005, 0.02]), label="tick"))
    h.settle()


def _check(h: Harness) -> None:
    for tp, records in h.sent.items():
        for _, future in records:
            assert future.done() and h.calls[id(future)] == 1  # resolved exactly once
            error = future.exception(0)
            assert error is None or isinstance(error, RecordTooLargeError), error  # only the fatal fault fails
        succeeded = [(v, f) for v, f in records if f.exception(0) is None]
        log = h.leader.values(tp)
        assert log == [v for v, _ in succeeded]  # each once, in send order, failed ones absent
        for index, (_, future) in enumerate(succeeded):
            offset = future.result(0).offset
            assert offset in (-1, index)  # -1 only for a duplicate the leader did not place
        for epoch, seqs in _by_epoch(h.leader.accepted_sequences.get(tp, [])).items():
            expected = 0
            for seq, count in seqs:
                assert seq == expected, f"{tp} epoch {epoch}: sequence {seq}, expected {expected}"
                expected += count
    assert h.acc.buffered_bytes == 0 and h.acc.in_flight_count() == 0 and h.acc.incomplete_count() == 0


@settings(max_examples=150, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_idempotent_accumulator_against_a_faulty_sequence_checking_leader(data: st.DataObject) -> None:
    h = Harness(data)
    _run(h, data)
    _check(h)


@settings(max_examples=60, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_plain_accumulator_keeps_order_with_one_batch_in_flight(data: st.DataObject) -> None:
    """Without idempotence the leader checks nothing: order rests on retries going first."""
    h = Harness(data, idempotent=False)
    _run(h, data)
    _check(h)


def _by_epoch(accepted: list[tuple[int, int, int]]) -> dict[int, list[tuple[int, int]]]:
    out: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for epoch, seq, count in accepted:
        out[epoch].append((seq, count))
    return out
