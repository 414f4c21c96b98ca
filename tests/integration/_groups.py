"""Helpers for consumer-group integration tests: topics, producing, member threads and processes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from _cluster import Cluster, wait_until
from kbroker import Admin, Consumer, Producer, Record

CHILD = Path(__file__).with_name("_group_child.py")
FAST = dict(session_timeout_ms=2000, heartbeat_interval_ms=200, auto_commit_interval_ms=200, fetch_max_wait_ms=100)


def create_topic(cluster: Cluster, name: str, partitions: int) -> None:
    with Admin(cluster.bootstrap, timeout=20) as admin:
        admin.create_topic(name, partitions, 3)
        wait_until(lambda: all(p.leader >= 0 for p in admin.describe_topic(name).partitions), 20, f"leaders for {name}", interval=0.05)


def produce(cluster: Cluster, topic: str, start: int, count: int) -> None:
    with Producer(cluster.bootstrap) as producer:
        for i in range(start, start + count):
            producer.send(topic, b"%d" % i, key=b"k%d" % i)
        producer.flush(30)


class Member(threading.Thread):
    """A Consumer polling in its own thread (the Consumer is not thread-safe: only this thread uses it)."""

    def __init__(self, cluster: Cluster, group: str, topic: str, **kw: object) -> None:
        super().__init__(daemon=True)
        self.consumer = Consumer(cluster.bootstrap, group_id=group, **{**FAST, **kw})
        self.topic = topic
        self.records: list[Record] = []
        self.assignment: set = set()
        self.error: BaseException | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            self.consumer.subscribe([self.topic])
            while not self._stop_event.is_set():
                self.records.extend(self.consumer.poll(100))
                self.assignment = self.consumer.assignment()
        except BaseException as exc:  # reported by close()
            self.error = exc
        finally:
            self.consumer.close()

    def close(self) -> None:
        self._stop_event.set()
        self.join(30)
        assert not self.is_alive(), "the member thread did not stop"
        if self.error is not None:
            raise self.error


class ChildMember:
    """A group member in a child process (``_group_child.py``), to be SIGKILLed."""

    def __init__(self, cluster: Cluster, group: str, topic: str, out: Path, instance: str | None = None) -> None:
        self.out = out
        args = [sys.executable, str(CHILD), cluster.bootstrap, group, topic, str(out)] + ([instance] if instance else [])
        self.process = subprocess.Popen(args, env=dict(os.environ, PYTHONUNBUFFERED="1"))

    def lines(self) -> list[str]:
        return self.out.read_text().splitlines() if self.out.exists() else []

    def records(self) -> list[tuple[int, int, int]]:
        """(partition, offset, value) of every record it processed."""
        return [tuple(map(int, line.split()[1:])) for line in self.lines() if line.startswith("R ")]  # type: ignore[misc]

    def assignment(self) -> set[int]:
        last = [line for line in self.lines() if line.startswith("A ")]
        return {int(p) for p in last[-1][2:].split(",") if p} if last else set()

    def kill(self, sig: int) -> None:
        self.process.send_signal(sig)
        self.process.wait(30)
