"""A Controller actor with a fake I/O thread and a journaled metadata log (for the shell tests).

``Journal`` records, in one ordered list, every metadata-log append and every message the
controller sends, so tests can check "persisted before sent". Requests go in as detached
envelopes; ``ask`` futures are held by the fake until the test completes or fails them.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable, Sequence

import pykka

from kbroker.errors import RequestTimedOutError

from kbroker.actors import controller as controller_module
from kbroker.actors.controller import Controller, WorkerDied
from kbroker.actors.controller_model import MetadataRecord
from kbroker.actors.metadata_log import METADATA_LOG_CONFIG, MetadataLog
from kbroker.storage.memory_log import MemoryLog
from kbroker.transport.envelope import Address, Envelope
from kbroker.transport.messages_admin import DescribeCluster
from kbroker.transport.messages_internal import RegisterWorker
from kbroker.transport.schema import Message

CLUSTER_ID = "AAAAAAAAAAAAAAAAAAAAAA"
WAIT = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Journal:
    def __init__(self) -> None:
        self.entries: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    def add(self, kind: str, item: Any) -> None:
        with self.lock:
            self.entries.append((kind, item))

    def take(self) -> list[tuple[str, Any]]:
        with self.lock:
            out, self.entries = self.entries, []
            return out


class JournaledLog(MetadataLog):
    """A memory-backed metadata log that journals appends (and can be made to fail)."""

    def __init__(self, journal: Journal) -> None:
        super().__init__(MemoryLog(METADATA_LOG_CONFIG))
        self.journal = journal
        self.fail: Exception | None = None

    def append(self, records: Sequence[MetadataRecord], now_ms: int) -> int:
        if self.fail is not None:
            raise self.fail
        self.journal.add("append", tuple(records))
        return super().append(records, now_ms)


class FakeIO:
    """Records tells and forgets; ``ask`` returns a future the test settles (``asks``)."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.asks: list[tuple[Address, Message, float, Future[Message]]] = []
        self.forgotten: list[str] = []
        self.asked = threading.Condition()

    def tell(self, address: Address, message: Message) -> None:
        self.journal.add("send", (address, message))

    def ask(self, address: Address, message: Message, timeout: float) -> Future[Message]:
        future: Future[Message] = Future()
        with self.asked:
            self.asks.append((address, message, timeout, future))
            self.asked.notify_all()
        return future

    def forget(self, endpoint: str) -> None:
        self.forgotten.append(endpoint)

    def wait_asks(self, count: int) -> list[tuple[Address, Message, float, Future[Message]]]:
        with self.asked:
            assert self.asked.wait_for(lambda: len(self.asks) >= count, WAIT), self.asks
            return list(self.asks)


def endpoint(worker_id: int) -> str:
    return f"tcp://w:{7100 + worker_id}"


class Shell:
    """A started Controller with its fakes; ``request`` waits until the actor handled it."""

    def __init__(self, *, data_dir: Path | None = None, auto_create_topics: bool = True, epoch: int = 3,
                 actor_class: type[Controller] = Controller, listener: Callable[[object], None] | None = None,
                 **overrides: Any) -> None:
        self.clock = Clock()
        self.events: list[object] = []
        self.journal = Journal()
        self.io = FakeIO(self.journal)
        self.log = None if data_dir is not None else JournaledLog(self.journal)
        kwargs = dict(
            cluster_id=CLUSTER_ID, controller_epoch=epoch, endpoint="tcp://boot:7092", io=self.io,
            data_dir=data_dir, metadata_log=self.log, session_timeout=6.0, check_interval=3600,
            rebalance_interval=3600, rebalance_delay=3600, compact_interval=3600, describe_timeout=0.5,
            auto_create_topics=auto_create_topics, listener=listener or self.events.append,
            clock=self.clock, rng=random.Random(7),
        ) | overrides  # fmt: skip
        self.ref: pykka.ActorRef = actor_class.start(**kwargs)
        self.request(DescribeCluster())  # on_start has run (the start's own append is journaled)
        self.journal.take()

    def request(self, message: Message) -> Message:
        replies: list[Message] = []
        self.ref.ask(Envelope.detached(message, replies.append), timeout=WAIT)
        assert len(replies) == 1, replies
        return replies[0]

    def request_later(self, message: Message) -> "Pending":
        pending = Pending()
        self.ref.ask(Envelope.detached(message, pending.set), timeout=WAIT)
        return pending

    def describe_silently(self, message: Message) -> Message:
        """A DescribeTopics whose leaders all stay silent (their asks time out)."""
        pending = self.request_later(message)
        deadline = time.monotonic() + WAIT
        while not pending.event.wait(0.01) and time.monotonic() < deadline:
            for _, _, _, future in list(self.io.asks):
                if not future.done():
                    future.set_exception(RequestTimedOutError("silent (test)"))
        return pending.wait()

    def register(self, worker_id: int, incarnation: int = 1) -> Message:
        return self.request(RegisterWorker(worker_id, endpoint(worker_id), 500 + worker_id, incarnation))

    def tick(self) -> None:
        self.ref.ask(controller_module._TICK, timeout=WAIT)

    def died(self, worker_id: int, pid: int) -> None:
        self.ref.ask(WorkerDied(worker_id, pid, "killed by SIGKILL"), timeout=WAIT)

    def stop(self) -> None:
        if self.ref.is_alive():
            self.ref.stop(timeout=WAIT)


class Pending:
    """A reply that may come later (from another thread)."""

    def __init__(self) -> None:
        self.replies: list[Message] = []
        self.event = threading.Event()

    def set(self, message: Message) -> None:
        self.replies.append(message)
        self.event.set()

    def wait(self, timeout: float = WAIT) -> Message:
        assert self.event.wait(timeout), "no reply"
        assert len(self.replies) == 1, self.replies
        return self.replies[0]

    @property
    def done(self) -> bool:
        return self.event.is_set()
