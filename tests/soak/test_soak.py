"""Soak: 100 partitions, producers and a consumer group, one worker killed and restarted every 20 s.

    make soak                       # 3 minutes (KBROKER_SOAK_SECONDS=600 make soak for longer)

Reports records moved, loss and duplication in the log (none allowed: the producers are
idempotent), records the group processed (at least once: a record after a member's last commit
may be processed twice across a rebalance), and every worker's memory (RSS) over time, which must
stay flat. Not part of the default suite (tests/soak/conftest.py).
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import threading
import time
from pathlib import Path

import pytest

from _cluster import Cluster, wait_until
from _failover import AckedProducer, check_exactly_once_in_order, create_topic, read_topic, wait_healthy
from kbroker import Admin, Consumer
from kbroker.errors import FencedMemberEpochError, StaleMemberEpochError, UnknownMemberError

SECONDS = float(os.environ.get("KBROKER_SOAK_SECONDS", "180"))
KILL_EVERY = 20.0
PARTITIONS = 100


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class GroupMember(threading.Thread):
    def __init__(self, bootstrap: str, stop: threading.Event, seen: set, lock: threading.Lock, index: int) -> None:
        super().__init__(name=f"soak-member-{index}", daemon=True)
        self.bootstrap, self.stop_event, self.seen, self.lock = bootstrap, stop, seen, lock
        self.processed = 0
        self.commit_failures = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with Consumer(self.bootstrap, group_id="soak", enable_auto_commit=False, session_timeout_ms=6000) as consumer:
                consumer.subscribe(["soak"])
                while not self.stop_event.is_set():
                    records = consumer.poll(500)
                    with self.lock:
                        self.seen.update(r.value for r in records)
                    self.processed += len(records)
                    if records:
                        try:
                            consumer.commit()
                        except (UnknownMemberError, FencedMemberEpochError, StaleMemberEpochError):
                            self.commit_failures += 1  # a rebalance came first (Kafka: CommitFailedException); poll rejoins
        except BaseException as exc:
            self.error = exc


@pytest.mark.timeout(SECONDS + 600)
def test_soak(start_cluster, tmp_path: Path) -> None:
    cluster: Cluster = start_cluster(workers=3, data_dir=tmp_path / "data")
    with Admin(cluster.bootstrap, timeout=30) as admin:
        create_topic(admin, "soak", PARTITIONS, config={"min.insync.replicas": "2"})
    producers = [
        AckedProducer(cluster.bootstrap, "soak", keys=500, producer_kwargs={"client_id": f"soak-p{i}"}, prefix=b"p%d-" % i)
        for i in range(2)
    ]
    stop, lock, seen = threading.Event(), threading.Lock(), set()
    members = [GroupMember(cluster.bootstrap, stop, seen, lock, i) for i in range(3)]
    for producer in producers:
        producer.start()
    for member in members:
        member.start()
    rng = random.Random(int(os.environ.get("KBROKER_SOAK_SEED", "7")))
    memory: dict[int, list[tuple[float, float]]] = {}
    started = time.monotonic()
    next_kill = started + KILL_EVERY
    kills = 0
    try:
        while time.monotonic() - started < SECONDS:
            now = time.monotonic()
            for worker, pid in cluster.alive_pids().items():
                rss = _rss_mb(pid)
                if rss is not None:
                    memory.setdefault(worker, []).append((now - started, rss))
            if now >= next_kill:
                pids = cluster.alive_pids()
                victim = rng.choice(sorted(pids))
                os.kill(pids[victim], signal.SIGKILL)
                kills += 1
                wait_until(lambda: cluster.alive_pids().get(victim) not in (None, pids[victim]), 60, "the restart")
                next_kill = time.monotonic() + KILL_EVERY
            stop.wait(5.0)  # the sampling period
    finally:
        for p in producers:
            p.stop()
    with Admin(cluster.bootstrap, timeout=30) as admin:
        wait_healthy(admin, "soak", timeout=120)
    records = read_topic(cluster.bootstrap, "soak", timeout_s=300)
    acked = [a for p in producers for a in p.acked]
    failed = [f for p in producers for f in p.failed]
    print(f"\nlog holds {len(records)}; the group has processed {len(seen)} so far; member errors: "
          f"{[repr(m.error) for m in members if m.error]}", flush=True)
    wait_until(lambda: len(seen) >= len(records) or any(m.error for m in members), 180, "the group to process every record")
    assert all(m.error is None for m in members), [m.error for m in members]
    stop.set()
    for m in members:
        m.join(30)
    processed = sum(m.processed for m in members)
    elapsed = time.monotonic() - started
    print(f"\nsoak: {elapsed:.0f} s, {kills} worker kills, {len(acked)} records acknowledged "
          f"({len(acked) / elapsed:.0f}/s), {len(failed)} failed, {len(records)} in the log; the group processed "
          f"{processed} ({processed - len(seen)} more than once, across rebalances; "
          f"{sum(m.commit_failures for m in members)} commits refused after a rebalance)")
    for worker, samples in sorted(memory.items()):
        values = [rss for _, rss in samples]
        third = len(values) // 3 or 1
        print(f"worker {worker} RSS MB: first {values[0]:.0f}, median {statistics.median(values):.0f}, "
              f"max {max(values):.0f}, last {values[-1]:.0f} (after the first third: max {max(values[third:]):.0f})")
    assert all(m.error is None for m in members), [m.error for m in members]
    check_exactly_once_in_order(records, acked, failed)
    assert len(seen) == len(records)
