"""A few "workers" in one test process: each an IOThread with a ReplicaManager and a Gateway, no
controller (tests play it: they send LeaderAndIsr / UpdateMetadata by hand), plus a client IOThread.
(A uniquely named module: tests import it by name.)"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import pykka
import pytest

from kbroker.actors.gateway import GATEWAY_ACTOR, Gateway
from kbroker.actors.metadata_cache import MetadataCache
from kbroker.actors.names import REPLICA_MANAGER
from kbroker.actors.replica_manager import LogFactory, ReplicaDirectory, ReplicaManager, disk_log_factory
from kbroker.actors.replica_outbox import ReplicaSettings
from kbroker.storage.config import TopicConfig
from kbroker.storage.memory_log import MemoryLog
from kbroker.storage.records import build_batch
from kbroker.transport.envelope import Address
from kbroker.transport.io_thread import IOThread
from kbroker.transport.messages_admin import ConfigEntry
from kbroker.transport.messages_client import (
    Fetch,
    FetchPartition,
    FetchResponse,
    FetchTopic,
    Produce,
    ProducePartition,
    ProduceResponse,
    ProduceTopic,
    WorkerEndpoint,
)
from kbroker.transport.messages_internal import (
    DescribeReplicas,
    DescribeReplicasResponse,
    LeaderAndIsr,
    LeaderAndIsrResponse,
    PartitionState,
    ReplicaDescription,
    ReplicaKey,
    TopicState,
    UpdateMetadata,
)
from kbroker.transport.schema import Message

FAST = ReplicaSettings(replica_fetch_wait_max_ms=200, request_timeout_ms=1_000, retry_backoff_ms=20, push_timeout_ms=200)


def memory_log_factory(path: Path, config: TopicConfig) -> MemoryLog:
    return MemoryLog(config)


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it holds; fail at the deadline (never a bare sleep)."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        pause.wait(0.005)


@dataclass
class Worker:
    worker_id: int
    io: IOThread
    cache: MetadataCache
    directory: ReplicaDirectory
    manager: pykka.ActorRef
    gateway: pykka.ActorRef
    data_dir: Path

    @property
    def endpoint(self) -> str:
        return self.io.endpoint

    def stop(self) -> None:
        self.io.unregister(GATEWAY_ACTOR)
        self.io.unregister(REPLICA_MANAGER)
        for ref in (self.manager, self.gateway):
            try:
                ref.stop(timeout=10)
            except pykka.ActorDeadError:
                pass
        self.io.stop()


@dataclass
class Cluster:
    tmp: Path
    log_factory: LogFactory = memory_log_factory
    settings: ReplicaSettings = FAST
    retention_check_interval_ms: int = 300_000
    workers: dict[int, Worker] = field(default_factory=dict)
    client: IOThread | None = None
    version: int = 0

    def start_worker(self, worker_id: int, lease: Any = None) -> Worker:
        io = IOThread(name=f"test-io-worker-{worker_id}")
        io.start()
        cache, directory = MetadataCache(), ReplicaDirectory()
        data_dir = self.tmp / f"worker-{worker_id}"
        manager = ReplicaManager.start(
            io=io, worker_id=worker_id, data_dir=data_dir, cache=cache, directory=directory, controller=None,
            settings=self.settings, log_factory=self.log_factory,
            retention_check_interval_ms=self.retention_check_interval_ms,
            replica_kwargs=None if lease is None else {"lease": lease},
        )
        io.register(REPLICA_MANAGER, manager, accepts=ReplicaManager.ACCEPTS)
        gateway = Gateway.start(io=io, worker_id=worker_id, cache=cache, directory=directory, manager=manager)
        io.register(GATEWAY_ACTOR, gateway, default=True, accepts=Gateway.ACCEPTS)
        worker = Worker(worker_id, io, cache, directory, manager, gateway, data_dir)
        self.workers[worker_id] = worker
        return worker

    def stop(self) -> None:
        for worker in list(self.workers.values()):
            worker.stop()
        self.workers.clear()
        if self.client is not None:
            self.client.stop()

    # --- playing the controller -------------------------------------------------------------

    def endpoints(self, ids: Sequence[int] | None = None) -> tuple[WorkerEndpoint, ...]:
        return tuple(WorkerEndpoint(w.worker_id, w.endpoint) for w in self.workers.values() if ids is None or w.worker_id in ids)

    def ask(self, address: Address, message: Message, timeout: float = 10.0) -> Message:
        return self.send(address, message, timeout).result(timeout + 1)

    def send(self, address: Address, message: Message, timeout: float = 10.0):
        if self.client is None:
            self.client = IOThread(name="test-io-client")
            self.client.start()
        return self.client.ask(address, message, timeout)

    def manager(self, worker_id: int) -> Address:
        return Address(self.workers[worker_id].endpoint, REPLICA_MANAGER)

    def gateway(self, worker_id: int) -> Address:
        return Address(self.workers[worker_id].endpoint, None)

    def update_metadata(self, topics: Sequence[TopicState], deleted: Sequence[str] = (), *, full: bool = False, to: Sequence[int] | None = None) -> None:
        self.version += 1
        update = UpdateMetadata(0, 1, self.version, full, self.endpoints(), tuple(topics), tuple(deleted))
        for w in to if to is not None else list(self.workers):
            self.ask(self.manager(w), update)

    def leader_and_isr(self, worker_id: int, topics: Sequence[TopicState]) -> LeaderAndIsrResponse:
        reply = self.ask(self.manager(worker_id), LeaderAndIsr(0, 1, self.endpoints(), tuple(topics)))
        assert isinstance(reply, LeaderAndIsrResponse)
        return reply

    def assign(self, topic: TopicState, to: Sequence[int] | None = None) -> None:
        """UpdateMetadata to every worker, then LeaderAndIsr to the replicas (``to``: only those)."""
        self.update_metadata([topic])
        replicas = sorted({r for p in topic.partitions for r in p.replicas})
        for w in replicas if to is None else to:
            reply = self.leader_and_isr(w, [topic])
            assert all(r.error_code == 0 for r in reply.partitions), reply

    def describe(self, worker_id: int, topic: str, partition: int) -> ReplicaDescription:
        reply = self.ask(self.manager(worker_id), DescribeReplicas((ReplicaKey(topic, partition),)))
        assert isinstance(reply, DescribeReplicasResponse)
        return reply.replicas[0]


@contextmanager
def running_cluster(tmp: Path, workers: int = 3, **kwargs: Any) -> Iterator[Cluster]:
    """A ``Cluster(tmp, **kwargs)`` with workers 0..workers-1 started, stopped on the way out."""
    c = Cluster(tmp, **kwargs)
    try:
        for w in range(workers):
            c.start_worker(w)
        yield c
    finally:
        c.stop()


def topic_state(name: str, *parts: PartitionState, configs: dict[str, str] | None = None) -> TopicState:
    return TopicState(name, tuple(ConfigEntry(k, v) for k, v in (configs or {}).items()), parts)


def partition(p: int, leader: int, replicas: Sequence[int], *, epoch: int = 1, isr: Sequence[int] | None = None) -> PartitionState:
    return PartitionState(p, leader, epoch, epoch, tuple(replicas), tuple(isr if isr is not None else replicas))


def produce(topic: str, part: int, *values: bytes, acks: int = -1, timeout_ms: int = 30_000) -> Produce:
    batch = build_batch([(v,) for v in values])
    return Produce("test", acks, timeout_ms, (ProduceTopic(topic, (ProducePartition(part, batch),)),))


def fetch(topic: str, part: int, offset: int = 0, *, max_wait_ms: int = 0, min_bytes: int = 1, max_bytes: int = 1 << 20) -> Fetch:
    return Fetch("test", max_wait_ms, min_bytes, max_bytes, 0, (FetchTopic(topic, (FetchPartition(part, offset, max_bytes, -1),)),))


def produce_part(reply: Message):
    assert isinstance(reply, ProduceResponse), reply
    return reply.topics[0].partitions[0]


def fetch_part(reply: Message):
    assert isinstance(reply, FetchResponse), reply
    return reply.topics[0].partitions[0]


__all__ = [
    "Cluster", "Worker", "FAST", "memory_log_factory", "disk_log_factory", "wait_until", "topic_state",
    "partition", "produce", "fetch", "produce_part", "fetch_part",
]
