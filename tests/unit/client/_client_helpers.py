"""Test doubles for the client core: a clock you drive and a partition leader that checks sequences."""

from __future__ import annotations

from dataclasses import dataclass, field

from kbroker.errors import (
    DuplicateSequenceError,
    NotLeaderError,
    OutOfOrderSequenceError,
    RecordTooLargeError,
    RequestTimedOutError,
)
from kbroker.storage.batch import read_header
from kbroker.storage.records import decode_batch
from kbroker.transport.client.types import TopicPartition


class FakeClock:
    """Monotonic seconds that move only when told."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def leader_everywhere(endpoint: str = "tcp://w0:1") -> object:
    return lambda topic, partition: endpoint


@dataclass
class _PartitionLog:
    values: list[bytes] = field(default_factory=list)
    epoch: int = -1
    next_sequence: int = 0
    written: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)  # (epoch, seq) -> (base, count)


class ModelLeader:
    """Leads every partition and checks idempotent sequences the way Kafka's leader does.

    ``produce(tp, payload, fault)`` applies the batch and returns ``(error_code, base_offset)``:
    - fault "before": NotLeader, nothing written (retriable);
    - fault "fatal": RecordTooLarge, nothing written (not retriable);
    - fault "lost": written, but the answer is a timeout (the client cannot know it was written);
    - otherwise: written if its sequence is the next one for (producer epoch, partition);
      DuplicateSequence (with the original base offset) if it was written before;
      OutOfOrderSequence if it would leave a gap. A new producer epoch must start at sequence 0.
    """

    def __init__(self) -> None:
        self.logs: dict[TopicPartition, _PartitionLog] = {}
        self.accepted_sequences: dict[TopicPartition, list[tuple[int, int, int]]] = {}

    def values(self, tp: TopicPartition) -> list[bytes]:
        return self.logs[tp].values if tp in self.logs else []

    def produce(self, tp: TopicPartition, payload: bytes, fault: str | None = None) -> tuple[int, int]:
        if fault == "before":
            return NotLeaderError.code, -1
        if fault == "fatal":
            return RecordTooLargeError.code, -1
        header = read_header(payload)
        log = self.logs.setdefault(tp, _PartitionLog())
        epoch, seq, count = header.producer_epoch, header.base_sequence, header.records_count
        if header.producer_id >= 0:
            expected = 0 if epoch > log.epoch else log.next_sequence
            if epoch < log.epoch:
                return OutOfOrderSequenceError.code, -1  # a fenced epoch, as good as a gap here
            if seq != expected:
                if (epoch, seq) in log.written and log.written[(epoch, seq)][1] == count:
                    return DuplicateSequenceError.code, log.written[(epoch, seq)][0]
                return OutOfOrderSequenceError.code, -1
            log.epoch = epoch
            log.next_sequence = (seq + count) & 0x7FFFFFFF
            log.written[(epoch, seq)] = (len(log.values), count)
            self.accepted_sequences.setdefault(tp, []).append((epoch, seq, count))
        base = len(log.values)
        log.values.extend(rec.value for rec in decode_batch(payload))  # type: ignore[misc]
        if fault == "lost":
            return RequestTimedOutError.code, -1
        return 0, base
