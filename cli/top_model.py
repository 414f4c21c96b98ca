"""``kbroker top``, the pure core: snapshots of cluster state -> a frame of rows with rates and states.

    Admin ──collect()──▶ Snapshot(at, workers, topics, groups)      (one per refresh)
    build_frame(previous, current) ──▶ Frame(workers: [WorkerRow], partitions: [PartitionRow], groups)

A snapshot is what the broker said at one moment: ``DescribeCluster`` + ``Metadata`` (leaders,
replicas, ISR) at the bootstrap, ``DescribeWorkerStats`` from every live worker (counters,
replica offsets and sizes), and the consumer groups when the broker serves them
(``top_groups``). A frame compares two snapshots:

- bytes in/out per second of a worker: counter difference / uptime difference, only while the
  worker process is the same one (its uptime grew); a restarted worker shows no rate until its
  second answer;
- records/s into a partition: high watermark difference (from the leading replica) / time
  difference; none when either side has no high watermark or it went backwards (a truncation);
- a worker is ``dead`` (not alive), ``no answer`` (alive but silent), ``recovering`` (alive, but
  a follower of one of its partitions not yet back in the ISR) or ``up``;
- a partition is ``offline`` (no leader, or its leader is not alive), ``under-replicated`` (ISR
  smaller than the replicas) or ``ok``.

Pure: no sockets, no clocks of its own (``collect`` takes the time from its caller).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kbroker.cli.top_groups import GroupsState, collect_groups

__all__ = [
    "PartitionMeta",
    "Snapshot",
    "WorkerRow",
    "PartitionRow",
    "Frame",
    "collect",
    "build_frame",
    "OK",
    "UNDER_REPLICATED",
    "OFFLINE",
    "UP",
    "DEAD",
    "RECOVERING",
    "NO_ANSWER",
]

OK, UNDER_REPLICATED, OFFLINE = "ok", "under-replicated", "offline"
UP, DEAD, RECOVERING, NO_ANSWER = "up", "dead", "recovering", "no answer"


@dataclass(frozen=True, slots=True)
class PartitionMeta:
    """One partition as the controller's metadata has it."""

    topic: str
    partition: int
    leader: int
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    at: float  # seconds, monotonic
    workers: tuple[Any, ...]  # WorkerStats
    partitions: tuple[PartitionMeta, ...]
    groups: GroupsState = field(default_factory=GroupsState)


@dataclass(frozen=True, slots=True)
class WorkerRow:
    id: int
    pid: int | None
    state: str
    partitions_led: int
    replicas: int
    bytes_in_per_s: float | None
    bytes_out_per_s: float | None
    uptime_s: float | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PartitionRow:
    topic: str
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    state: str
    high_watermark: int | None
    log_end_offset: int | None
    size_bytes: int | None
    records_per_s: float | None


@dataclass(frozen=True, slots=True)
class Frame:
    workers: list[WorkerRow]
    partitions: list[PartitionRow]
    groups: GroupsState
    interval_s: float | None  # time between the two snapshots compared (None: only one)

    @property
    def topics(self) -> list[str]:
        return sorted({p.topic for p in self.partitions})

    @property
    def under_replicated(self) -> int:
        return sum(p.state == UNDER_REPLICATED for p in self.partitions)

    @property
    def offline(self) -> int:
        return sum(p.state == OFFLINE for p in self.partitions)


def collect(admin: Any, now: float, *, include_internal: bool = False) -> Snapshot:
    """One snapshot from an ``Admin`` (raises the Admin's errors when the bootstrap does not answer)."""
    workers = tuple(admin.describe_worker_stats())
    partitions = tuple(
        PartitionMeta(t.name, p.partition, p.leader_id, p.leader_epoch, tuple(p.replicas), tuple(p.isr))
        for t in admin._topic_metadata()
        if include_internal or not t.name.startswith("__")
        for p in sorted(t.partitions, key=lambda p: p.partition)
    )
    return Snapshot(now, workers, partitions, collect_groups(admin))


def _leader_replica(snapshot: Snapshot, meta: PartitionMeta) -> Any | None:
    for worker in snapshot.workers:
        if worker.id == meta.leader:
            for replica in worker.replicas:
                if replica.topic == meta.topic and replica.partition == meta.partition and replica.log_end_offset >= 0:
                    return replica
    return None


def _rate(now: float, before: float, dt: float | None) -> float | None:
    if dt is None or dt <= 0 or now < before:
        return None
    return (now - before) / dt


def _worker_rows(previous: Snapshot | None, current: Snapshot) -> list[WorkerRow]:
    before = {w.id: w for w in previous.workers} if previous is not None else {}
    led: dict[int, int] = {}
    catching_up: set[int] = set()
    for p in current.partitions:
        led[p.leader] = led.get(p.leader, 0) + 1
        catching_up.update(r for r in p.replicas if r not in p.isr)
    rows = []
    for w in current.workers:
        old = before.get(w.id)
        same_process = (
            old is not None and old.uptime_ms is not None and w.uptime_ms is not None
            and old.pid == w.pid and w.uptime_ms > old.uptime_ms
        )  # fmt: skip
        dt = (w.uptime_ms - old.uptime_ms) / 1000 if same_process else None
        if not w.alive:
            state = DEAD
        elif w.uptime_ms is None:
            state = NO_ANSWER
        elif w.id in catching_up:
            state = RECOVERING
        else:
            state = UP
        rows.append(WorkerRow(
            w.id, w.pid, state, led.get(w.id, 0), len(w.replicas),
            _rate(w.bytes_in, old.bytes_in, dt) if same_process else None,
            _rate(w.bytes_out, old.bytes_out, dt) if same_process else None,
            None if w.uptime_ms is None else w.uptime_ms / 1000, w.error,
        ))  # fmt: skip
    return rows


def _partition_rows(previous: Snapshot | None, current: Snapshot) -> list[PartitionRow]:
    alive = {w.id for w in current.workers if w.alive}
    old_hw: dict[tuple[str, int], int] = {}
    if previous is not None:
        for meta in previous.partitions:
            replica = _leader_replica(previous, meta)
            if replica is not None:
                old_hw[(meta.topic, meta.partition)] = replica.high_watermark
    dt = current.at - previous.at if previous is not None else None
    rows = []
    for meta in current.partitions:
        if meta.leader < 0 or meta.leader not in alive:
            state = OFFLINE
        elif len(set(meta.isr)) < len(meta.replicas):
            state = UNDER_REPLICATED
        else:
            state = OK
        replica = _leader_replica(current, meta)
        hw = replica.high_watermark if replica is not None and replica.high_watermark >= 0 else None
        before = old_hw.get((meta.topic, meta.partition))
        rate = _rate(hw, before, dt) if hw is not None and before is not None and before >= 0 else None
        rows.append(PartitionRow(
            meta.topic, meta.partition, meta.leader, meta.replicas, meta.isr, state, hw,
            replica.log_end_offset if replica is not None else None,
            replica.size_bytes if replica is not None else None, rate,
        ))  # fmt: skip
    return rows


def build_frame(previous: Snapshot | None, current: Snapshot) -> Frame:
    """Rows, states and rates from two consecutive snapshots (``previous`` None: no rates yet)."""
    return Frame(
        _worker_rows(previous, current),
        _partition_rows(previous, current),
        current.groups,
        current.at - previous.at if previous is not None else None,
    )
