"""Replay: a consumer group that joins late reads the whole history, from offset 0.

    python examples/replay.py [--events 2000] [--bootstrap HOST:PORT]

``live`` (a group that has been reading and committing all along) is caught up; then ``audit``, a
group that never existed, subscribes with ``auto_offset_reset="earliest"``: having no committed
offsets, it starts at the beginning of every partition and reads every event ever written, while
``live`` keeps its own position. Exit code 0 when ``audit`` saw all the events, in order per key.
"""

from __future__ import annotations

import sys
from collections import defaultdict

from _common import broker, parser, wait_for
from kbroker import Admin, Consumer, Producer

TOPIC = "demo-history"


def read_group(bootstrap: str, group: str, expected: int) -> list:
    out: list = []
    with Consumer(bootstrap, group_id=group, auto_offset_reset="earliest") as consumer:
        consumer.subscribe([TOPIC])
        wait_for(f"group {group} to read {expected} events", lambda: out.extend(consumer.poll(200)) or len(out) >= expected)
        consumer.commit()
    return out


def run(bootstrap: str, events: int) -> int:
    with Admin(bootstrap, timeout=20) as admin:
        if TOPIC not in admin.list_topics():
            admin.create_topic(TOPIC, 4, None)
        before = sum(p.high_watermark for p in admin.describe_topic(TOPIC).partitions)
    with Producer(bootstrap, acks="all") as producer:
        for i in range(events):
            producer.send(TOPIC, b"%d" % i, key=b"account-%d" % (i % 25))
    total = before + events
    live = read_group(bootstrap, "live", total)
    print(f"group live read {len(live)} events as they came and committed")

    audit = read_group(bootstrap, f"audit-{total}", total)  # a group that never existed before
    per_key: dict[bytes, list[int]] = defaultdict(list)
    for r in audit:
        per_key[r.key].append(r.offset)
    in_order = all(offsets == sorted(offsets) for offsets in per_key.values())
    print(f"group audit joined late and replayed {len(audit)} events from offset 0 "
          f"({'in order per key' if in_order else 'OUT OF ORDER'})")
    with Admin(bootstrap, timeout=20) as admin:
        print(f"groups on the broker: {[g for g in admin.list_groups() if g.startswith(('live', 'audit'))]}")
    return 0 if len(audit) >= total and in_order else 1


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--events", type=int, default=2000)
    args = p.parse_args(argv)
    with broker(args.bootstrap) as bootstrap:
        return run(bootstrap, args.events)


if __name__ == "__main__":
    sys.exit(main())
