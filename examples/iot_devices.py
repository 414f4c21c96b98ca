"""IoT devices: many devices send readings keyed by device id; a consumer group processes them,
and every device's readings arrive in the order the device sent them.

    python examples/iot_devices.py [--devices 50] [--readings 40] [--consumers 3] [--bootstrap HOST:PORT]

The key decides the partition (murmur2, as in Kafka), so one device's readings share a partition
and keep their order; three consumers in group ``iot-dashboard`` split the 6 partitions. Exit code
0 when every reading was processed and each device's sequence numbers came in order.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from collections import defaultdict

from _common import broker, parser, wait_for
from kbroker import Admin, Consumer, Producer

TOPIC = "demo-iot-readings"
GROUP = "iot-dashboard"


def run(bootstrap: str, devices: int, readings: int, consumers: int) -> int:
    with Admin(bootstrap, timeout=20) as admin:
        if TOPIC not in admin.list_topics():
            admin.create_topic(TOPIC, 6, None)
    seen: dict[str, list[int]] = defaultdict(list)
    by_member: dict[int, set[int]] = defaultdict(set)
    lock = threading.Lock()
    stop = threading.Event()
    total = devices * readings

    def member(index: int) -> None:
        with Consumer(bootstrap, group_id=GROUP, session_timeout_ms=6000, heartbeat_interval_ms=500) as consumer:
            consumer.subscribe([TOPIC])
            while not stop.is_set():
                for record in consumer.poll(200):
                    reading = json.loads(record.value)
                    with lock:
                        seen[record.key.decode()].append(reading["seq"])
                        by_member[index].add(record.partition)

    threads = [threading.Thread(target=member, args=(i,), daemon=True) for i in range(consumers)]
    for t in threads:
        t.start()
    rng = random.Random(1)
    with Producer(bootstrap, acks="all") as producer:
        for seq in range(readings):
            for d in range(devices):
                device = f"device-{d:03d}"
                value = {"device": device, "seq": seq, "celsius": round(20 + rng.gauss(0, 3), 2), "at": time.time()}
                producer.send(TOPIC, json.dumps(value).encode(), key=device.encode())
    print(f"{devices} devices sent {total} readings")
    wait_for("every reading to be processed", lambda: sum(len(v) for v in seen.values()) >= total)
    stop.set()
    for t in threads:
        t.join(10)
    out_of_order = [d for d, seqs in seen.items() if seqs != sorted(seqs)]
    print(f"{sum(len(v) for v in seen.values())} readings processed by {consumers} consumers; "
          f"partitions per consumer: {[sorted(p) for _, p in sorted(by_member.items())]}")
    print(f"devices whose readings arrived out of order: {len(out_of_order)}")
    return 0 if not out_of_order and all(len(v) >= readings for v in seen.values()) else 1


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--devices", type=int, default=50)
    p.add_argument("--readings", type=int, default=40, help="readings per device")
    p.add_argument("--consumers", type=int, default=3)
    args = p.parse_args(argv)
    with broker(args.bootstrap) as bootstrap:
        return run(bootstrap, args.devices, args.readings, args.consumers)


if __name__ == "__main__":
    sys.exit(main())
