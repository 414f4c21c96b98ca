"""A consumer-group member in its own process, for tests that SIGKILL it.

    python _group_child.py BOOTSTRAP GROUP TOPIC OUT_FILE [INSTANCE_ID]

Appends ``R partition offset value`` per record processed and ``A p,p,...`` on every assignment
change to OUT_FILE, flushed after every poll (so what is in the file was processed). Runs until
killed, or until SIGTERM (then closes cleanly: commit and leave).
"""

from __future__ import annotations

import signal
import sys

from kbroker import Consumer


def main() -> None:
    bootstrap, group, topic, out_path = sys.argv[1:5]
    instance = sys.argv[5] if len(sys.argv) > 5 else None
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    consumer = Consumer(
        bootstrap, group_id=group, session_timeout_ms=2000, heartbeat_interval_ms=200,
        auto_commit_interval_ms=200, group_instance_id=instance, fetch_max_wait_ms=100,
    )
    consumer.subscribe([topic])
    assigned: set = set()
    with open(out_path, "a", buffering=1) as out:
        while not stop:
            records = consumer.poll(100)
            for r in records:
                out.write(f"R {r.partition} {r.offset} {r.value.decode()}\n")
            now = consumer.assignment()
            if now != assigned:
                assigned = now
                out.write("A " + ",".join(str(tp.partition) for tp in sorted(now)) + "\n")
            out.flush()
    consumer.close()


if __name__ == "__main__":
    main()
