"""Latest state with a compacted topic: a changelog per key, compaction keeps the latest, tombstones delete.

    python examples/latest_state.py                       # starts its own broker (cleaner every second)
    python examples/latest_state.py --bootstrap HOST:PORT  # or uses yours (its cleaner runs every
                                                           # --log-retention-check-interval-ms)

1. creates ``demo-profiles`` with ``cleanup.policy=compact`` and small segments, so the cleaner
   has closed segments to work on;
2. writes a changelog: every user's profile is updated many times (key = user id, value = the
   profile), and some users are deleted (a tombstone: the key with value None);
3. waits (a bounded time) until compaction has removed superseded records;
4. rebuilds the current table by reading the topic from offset 0 — the way a service restores its
   state after a restart — and checks it equals the latest value per key, deleted users absent.
Exit code 0 when the rebuilt table is right.
"""

from __future__ import annotations

import json
import sys
import time

from _common import broker, parser
from kbroker import Admin, Consumer, Producer, TopicPartition

TOPIC = "demo-profiles"
CONFIG = {"cleanup.policy": "compact", "segment.bytes": "16384", "min.cleanable.dirty.ratio": "0.01", "min.compaction.lag.ms": "0"}


def rebuild(bootstrap: str, partitions: list[int], ends: dict[int, int]) -> tuple[dict[str, dict], int]:
    """The table as of the high watermarks: replay every record from offset 0; a tombstone deletes."""
    table: dict[str, dict] = {}
    read = 0
    with Consumer(bootstrap, auto_offset_reset="earliest") as consumer:
        consumer.assign([TopicPartition(TOPIC, p) for p in partitions])
        done = {p for p in partitions if ends[p] == 0}
        deadline = time.monotonic() + 60
        while len(done) < len(partitions) and time.monotonic() < deadline:
            for record in consumer.poll(500):
                if record.offset >= ends[record.partition]:
                    continue
                read += 1
                key = record.key.decode()
                if record.value is None:
                    table.pop(key, None)
                else:
                    table[key] = json.loads(record.value)
                if record.offset == ends[record.partition] - 1:
                    done.add(record.partition)
    return table, read


def run(bootstrap: str, users: int, updates: int, wait_s: float) -> int:
    with Admin(bootstrap, timeout=20) as admin:
        if TOPIC not in admin.list_topics():
            admin.create_topic(TOPIC, 3, None, CONFIG)
    expected: dict[str, dict] = {}
    written = 0
    futures = []
    # batches well under segment.bytes: segments roll, and only closed segments are compacted
    with Producer(bootstrap, acks="all", batch_bytes=4096) as producer:
        for version in range(updates):
            for user in range(users):
                key = f"user-{user}"
                profile = {"name": f"User {user}", "version": version, "visits": version * (user + 1)}
                futures.append(producer.send(TOPIC, json.dumps(profile).encode(), key=key.encode()))
                expected[key] = profile
                written += 1
        for user in range(0, users, 5):  # every fifth user deletes their account
            key = f"user-{user}"
            futures.append(producer.send(TOPIC, None, key=key.encode()))
            expected.pop(key)
            written += 1
        producer.flush(60)
    failed = [f.exception() for f in futures if f.exception() is not None]
    if failed:
        print(f"WRONG: {len(failed)} of {written} records were not written, e.g. {failed[0]}")
        return 1
    print(f"wrote {written} records: {updates} versions of {users} profiles, then {users // 5 + (users % 5 > 0)} tombstones")

    with Admin(bootstrap, timeout=20) as admin:
        parts = admin.describe_topic(TOPIC).partitions
    partitions = [p.partition for p in parts]
    ends = {p.partition: p.high_watermark for p in parts}
    deadline = time.monotonic() + wait_s
    while True:
        table, read = rebuild(bootstrap, partitions, ends)
        print(f"  reading from offset 0 gives {read} records", flush=True)
        if read < written / 2 or time.monotonic() >= deadline:
            break
        time.sleep(1.0)  # pacing between looks at the topic while the cleaner works, not synchronisation
    print(f"reading from offset 0 returned {read} of the {written} records written: compaction kept "
          f"{100 * read / written:.0f}% (the latest per key, the tombstones, and the active segments)")
    print(f"rebuilt table: {len(table)} users, e.g. user-1 = {table.get('user-1')}")
    if table != expected:
        wrong = sorted(set(table) ^ set(expected)) or [k for k in table if table[k] != expected[k]]
        print(f"WRONG: the rebuilt table differs from the latest state, e.g. {wrong[:5]}")
        return 1
    print("the rebuilt table equals the latest value of every key; deleted users are gone")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--users", type=int, default=200)
    p.add_argument("--updates", type=int, default=20, help="versions written per user")
    p.add_argument("--wait", type=float, default=30.0, help="seconds to give the cleaner at most")
    args = p.parse_args(argv)
    cleaner_every_second = ("--log-retention-check-interval-ms", "1000", "--default-replication-factor", "1")
    with broker(args.bootstrap, workers=1, extra_args=cleaner_every_second) as bootstrap:
        return run(bootstrap, args.users, args.updates, args.wait)


if __name__ == "__main__":
    sys.exit(main())
