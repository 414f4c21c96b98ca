"""Shared by the failover tests: topic set-up, waiting for a healthy cluster, reading a topic whole,
and a background producer that remembers what was acknowledged.

Everything waits on a condition with a deadline (``wait_until``), never on a fixed sleep.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

from _cluster import Cluster, wait_until
from kbroker import Admin, Consumer, Producer, TopicInfo, TopicPartition

__all__ = ["create_topic", "healthy", "wait_healthy", "read_topic", "AckedProducer", "check_exactly_once_in_order"]


def create_topic(admin: Admin, name: str, partitions: int, rf: int = 3, config: dict | None = None) -> TopicInfo:
    admin.create_topic(name, partitions, rf, config)
    return wait_healthy(admin, name, rf)


def healthy(info: TopicInfo, rf: int, preferred: bool = False) -> bool:
    """Every partition led, with an ISR of ``rf`` (and led by its preferred replica, if asked)."""
    return all(
        p.leader >= 0 and len(p.isr) == rf and (not preferred or p.leader == p.replicas[0]) for p in info.partitions
    )


def wait_healthy(admin: Admin, name: str, rf: int = 3, timeout: float = 60, preferred: bool = False) -> TopicInfo:
    what = f"every partition of {name} led{' by its preferred replica' if preferred else ''}, with an ISR of {rf}"

    def check() -> TopicInfo | None:
        info = admin.describe_topic(name)
        return info if healthy(info, rf, preferred) else None

    return wait_until(check, timeout, what, interval=0.05)


def read_topic(bootstrap: str, name: str, timeout_s: float = 60) -> list:
    """Every record of ``name`` from offset 0 up to each partition's high watermark, once the high
    watermark has reached the log end everywhere (call it when nothing is being produced: a leader
    elected a moment ago advances its high watermark only when its followers next fetch)."""
    with Admin(bootstrap, timeout=20) as admin:

        def settled() -> dict[int, int] | None:
            parts = admin.describe_topic(name).partitions
            return {p.partition: p.high_watermark for p in parts} if all(p.high_watermark == p.log_end_offset for p in parts) else None

        ends = wait_until(settled, 60, f"the high watermarks of {name} to reach the log ends", interval=0.05)
    assert all(hw >= 0 for hw in ends.values()), ends
    out: list = []
    seen = {p: 0 for p in ends}
    with Consumer(bootstrap, request_timeout_ms=5000) as consumer:
        consumer.assign([TopicPartition(name, p) for p in ends])
        deadline = time.monotonic() + timeout_s
        while any(seen[p] < ends[p] for p in ends):
            assert time.monotonic() < deadline, f"read only {seen} of {ends} within {timeout_s} s"
            for record in consumer.poll(500):
                if record.offset < ends[record.partition]:
                    out.append(record)
                    seen[record.partition] = max(seen[record.partition], record.offset + 1)
    return out


@dataclass
class AckedProducer:
    """Sends ``key-i:seq`` values with acks=all from a thread until stopped; remembers every ack.

    ``acked`` holds (key, seq) of acknowledged records; ``failed`` those whose future failed (after
    the producer's own retries). Wait on ``acked_count`` to pace a test on progress, not on time.
    """

    bootstrap: str
    topic: str
    keys: int = 50
    producer_kwargs: dict = field(default_factory=dict)
    prefix: bytes = b""  # keeps the values of several producers on one topic apart
    acked: list[tuple[bytes, int]] = field(default_factory=list)
    failed: list[tuple[bytes, int, Exception]] = field(default_factory=list)
    sent: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="acked-producer", daemon=True)
        self._error: BaseException | None = None

    def start(self) -> AckedProducer:
        self._thread.start()
        return self

    @property
    def acked_count(self) -> int:
        with self._lock:
            return len(self.acked)

    def wait_acked(self, at_least: int, timeout: float, what: str = "") -> None:
        wait_until(lambda: self.acked_count >= at_least or self._error, timeout, what or f"{at_least} acknowledged records")
        if self._error is not None:
            raise AssertionError(f"the producer thread failed: {self._error!r}")

    def _on_done(self, key: bytes, seq: int, future) -> None:
        error = future.exception()
        with self._lock:
            if error is None:
                self.acked.append((key, seq))
            else:
                self.failed.append((key, seq, error))

    def _run(self) -> None:
        try:
            with Producer(self.bootstrap, acks="all", **self.producer_kwargs) as producer:
                seq = 0
                while not self._stop.is_set():
                    key = self.prefix + b"key-%d" % (seq % self.keys)
                    future = producer.send(self.topic, b"%s:%d" % (key, seq), key=key)
                    future.add_done_callback(lambda f, key=key, seq=seq: self._on_done(key, seq, f))
                    seq += 1
                    self.sent = seq
                    if seq % 200 == 0:
                        producer.flush(120)  # bounded in-flight volume: progress is steady, not bursty
                producer.flush(120)
        except BaseException as exc:  # reported by wait_acked / stop
            self._error = exc

    def stop(self, timeout: float = 150) -> None:
        self._stop.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the producer did not finish within its flush timeout"
        if self._error is not None:
            raise AssertionError(f"the producer thread failed: {self._error!r}")


def check_exactly_once_in_order(records: list, acked: list[tuple[bytes, int]], failed: list) -> None:
    """Every acknowledged record is there exactly once; no record twice; per key in send order."""
    values = [r.value for r in records]
    assert len(values) == len(set(values)), "a record was written twice"
    got = {tuple(v.split(b":")) for v in values}
    missing = [(k, s) for k, s in acked if (k, b"%d" % s) not in got]
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {missing[:5]}"
    per_key: dict[bytes, list[int]] = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        key, seq = r.value.split(b":")
        per_key[key].append(int(seq))
    for key, seqs in per_key.items():
        assert seqs == sorted(seqs), f"{key!r}: out of send order"
    known = {(k, b"%d" % s) for k, s in acked} | {(k, b"%d" % s) for k, s, _ in failed}
    strays = got - known
    assert not strays, f"records present that were never sent, e.g. {sorted(strays)[:5]}"
