"""Chaos: a random worker SIGKILLed again and again while a producer sends keyed acks=all records.

Topic: 6 partitions, RF 3, min.insync.replicas 2, so losing one worker at a time never stops
acks=all. Each kill waits for progress (more records acknowledged since the previous kill) and for
every ISR to be whole again (the previous victim restarted, recovered and caught up), then picks a
random worker (seed printed, ``KBROKER_CHAOS_SEED`` replays one). Afterwards: every acknowledged
record present exactly once, per-key order kept, every partition back to an ISR of 3.
"""

from __future__ import annotations

import os
import random
import signal
import time

from _cluster import Cluster, wait_until
from _failover import AckedProducer, check_exactly_once_in_order, create_topic, read_topic, wait_healthy
from kbroker import Admin

KILLS = 6
PROGRESS = 5000  # records acknowledged between kills (a few seconds of produce)


def test_random_worker_kills_while_producing_lose_and_double_nothing(cluster: Cluster) -> None:
    seed = int(os.environ.get("KBROKER_CHAOS_SEED", time.time_ns() % 1_000_000))
    print(f"\nchaos seed {seed} (KBROKER_CHAOS_SEED={seed} replays the same victims)")
    rng = random.Random(seed)
    victims: list[int] = []
    started = time.monotonic()
    with Admin(cluster.bootstrap, timeout=20) as admin:
        create_topic(admin, "chaos", 6, config={"min.insync.replicas": "2"})
        producer = AckedProducer(cluster.bootstrap, "chaos", keys=100).start()
        try:
            for _ in range(KILLS):
                producer.wait_acked(producer.acked_count + PROGRESS, 60)
                wait_healthy(admin, "chaos")
                pids = cluster.alive_pids()
                victim = rng.choice(sorted(pids))
                victims.append(victim)
                os.kill(pids[victim], signal.SIGKILL)
                wait_until(lambda: cluster.alive_pids().get(victim) not in (None, pids[victim]), 30, f"worker {victim} restarted")
            producer.wait_acked(producer.acked_count + PROGRESS, 60)
        finally:
            producer.stop()
        info = wait_healthy(admin, "chaos")
    assert all(len(p.isr) == 3 for p in info.partitions)
    records = read_topic(cluster.bootstrap, "chaos")
    print(f"chaos: killed workers {victims} in {time.monotonic() - started:.1f} s; {len(producer.acked)} acknowledged, "
          f"{len(producer.failed)} failed, {len(records)} read back")
    check_exactly_once_in_order(records, producer.acked, producer.failed)
    assert not producer.failed, f"sends failed despite retries: {producer.failed[:3]}"
