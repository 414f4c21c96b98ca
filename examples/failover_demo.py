"""Failover you can watch: kill the worker that leads a partition, see a follower take over, lose nothing.

    python examples/failover_demo.py                      # starts its own 3-worker broker
    python examples/failover_demo.py --bootstrap HOST:PORT # or uses yours (then run `kbroker top`
                                                           # in another terminal to watch it)

What it does:
1. creates topic ``demo-failover`` (3 partitions, replication factor 3, min.insync.replicas 2);
2. produces keyed records with acks=all from a background thread, counting acknowledgements;
3. SIGKILLs the worker process leading partition 0, and prints how long produce paused, the new
   leader and its leader epoch;
4. waits for the supervisor to restart the worker, for it to catch up and rejoin every ISR, and
   for leadership to return to it (the preferred replica);
5. reads the topic back and checks that every acknowledged record is there exactly once, in order
   per key. Exit code 0 when all of that holds.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import defaultdict

from _common import broker, parser, wait_for
from kbroker import Admin, Consumer, Producer, TopicPartition

TOPIC = "demo-failover"


def partitions(admin: Admin):
    return admin.describe_topic(TOPIC).partitions


def show(admin: Admin, title: str) -> None:
    print(f"\n{title}")
    print("  partition  leader  epoch  replicas   isr")
    for p in partitions(admin):
        print(f"  {p.partition:>9}  {p.leader:>6}  {p.leader_epoch:>5}  {str(p.replicas):<9}  {p.isr}")


def run(bootstrap: str, records_per_phase: int) -> int:
    acked: list[tuple[bytes, int]] = []
    failed: list[Exception] = []
    lock = threading.Lock()
    stop = threading.Event()

    def produce() -> None:
        with Producer(bootstrap, acks="all") as producer:
            seq = 0
            while not stop.is_set():
                key = b"sensor-%d" % (seq % 20)

                def done(future, key=key, seq=seq) -> None:
                    with lock:
                        (failed.append(future.exception()) if future.exception() else acked.append((key, seq)))

                producer.send(TOPIC, b"%d" % seq, key=key).add_done_callback(done)
                seq += 1
                if seq % 100 == 0:
                    producer.flush(60)

    def acked_count() -> int:
        with lock:
            return len(acked)

    with Admin(bootstrap, timeout=20) as admin:
        if TOPIC not in admin.list_topics():
            admin.create_topic(TOPIC, 3, 3, {"min.insync.replicas": "2"})
        wait_for("every partition to have a leader and 3 in-sync replicas",
                 lambda: all(p.leader >= 0 and len(p.isr) == 3 for p in partitions(admin)))
        show(admin, "before:")
        start_offsets = {p.partition: p.high_watermark for p in partitions(admin)}
        thread = threading.Thread(target=produce, daemon=True)
        thread.start()
        wait_for(f"{records_per_phase} acknowledged records", lambda: acked_count() >= records_per_phase)

        victim, epoch = partitions(admin)[0].leader, partitions(admin)[0].leader_epoch
        pid = next(w.pid for w in admin.describe_cluster() if w.id == victim)
        print(f"\nkilling worker {victim} (pid {pid}), the leader of partition 0, with SIGKILL ...")
        before = acked_count()
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for("produce to go on", lambda: acked_count() > before + 50)
        resumed = time.monotonic() - killed_at
        # a new leader epoch: another replica took over (by the time we look, the restarted worker
        # may already have caught up and taken its preferred leadership back: one more epoch)
        new = wait_for("partition 0 to get a new leader", lambda: (p := partitions(admin)[0]).leader_epoch > epoch and p.leader >= 0 and p)
        print(f"produce going again {resumed:.2f} s after the kill; partition 0 is now led by worker {new.leader} "
              f"(leader epoch {epoch} -> {new.leader_epoch})")

        wait_for(f"worker {victim} to be restarted and back in every ISR, leading again",
                 lambda: all(len(p.isr) == 3 and p.leader == p.replicas[0] for p in partitions(admin)), timeout=120)
        show(admin, f"after: worker {victim} restarted, caught up, and leads its preferred partitions again")
        wait_for(f"{records_per_phase} more acknowledged records", lambda: acked_count() >= before + records_per_phase)
        stop.set()
        thread.join(120)
        ends = {p.partition: p.high_watermark for p in partitions(admin)}

    got: dict[bytes, list[int]] = defaultdict(list)
    with Consumer(bootstrap) as consumer:
        tps = [TopicPartition(TOPIC, p) for p in ends]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, start_offsets[tp.partition])
        remaining = sum(ends[p] - start_offsets[p] for p in ends)
        deadline = time.monotonic() + 60
        while remaining > 0 and time.monotonic() < deadline:
            for record in consumer.poll(500):
                if record.offset < ends[record.partition]:
                    got[record.key].append(int(record.value))
                    remaining -= 1
    values = [(k, v) for k, vs in got.items() for v in vs]
    lost = [a for a in acked if a not in set(values)]
    doubled = len(values) - len(set(values))
    disordered = [k for k, vs in got.items() if vs != sorted(vs)]
    print(f"\n{len(acked)} records acknowledged, {len(values)} read back: "
          f"{len(lost)} lost, {doubled} duplicated, {len(disordered)} keys out of order, {len(failed)} sends failed")
    return 0 if not lost and not doubled and not disordered and not failed else 1


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--records", type=int, default=5000, help="records acknowledged before and after the kill")
    args = p.parse_args(argv)
    with broker(args.bootstrap) as bootstrap:
        return run(bootstrap, args.records)


if __name__ == "__main__":
    sys.exit(main())
