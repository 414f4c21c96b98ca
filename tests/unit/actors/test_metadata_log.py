"""Tests for kbroker.actors.metadata_log: the record codec, append/replay, compaction, and the
property that replaying the log rebuilds the live controller's model exactly."""

from __future__ import annotations

import dataclasses
import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _controller_helpers import T0, check_invariants, endpoint, pid
from kbroker.actors.controller_model import (
    MetadataImage,
    Partition,
    Removal,
    Topic,
    VersionStamp,
    WorkerRegistration,
)
from kbroker.actors.controller_state import ControllerSettings, ControllerState
from kbroker.actors.metadata_log import METADATA_DIR, METADATA_LOG_CONFIG, MetadataLog, decode_record, encode_record
from kbroker.errors import CorruptRecordError, FencedLeaderEpochError, KBrokerError
from kbroker.storage.memory_log import MemoryLog

RECORDS = [
    Topic("orders", (("cleanup.policy", "compact,delete"), ("retention.ms", "5")), 3),
    Partition("orders", 2, (1, 0, 2), -1, 7, 12, (1,)),
    WorkerRegistration(4, "tcp://10.0.0.5:7093", 1_700_000_000_000_000_000),
    VersionStamp(42, 3),
    Removal("topic/orders"),
    Removal("partition/a.b-c/10"),
    Removal("worker/3"),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_codec_round_trip(record) -> None:
    key, value = encode_record(record)
    assert key == record.key.encode()
    assert (value is None) == isinstance(record, Removal)
    assert decode_record(key, value) == record


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (b"topic/x", b"\xc1"),  # not msgpack
        (b"topic/x", encode_record(Topic("y", (), 1))[1]),  # stored under another key
        (b"topic/x", encode_record(Topic("x", (), 1))[1].replace(b"topic", b"tapic")),  # unknown type
        (b"worker/1", encode_record(WorkerRegistration(1, "e", 1))[1].replace(b"\x01", b"\xc3")),  # bool for int
        (b"meta/version", None),  # a tombstone for something that cannot be deleted
        (b"partition/x/one", None),
        (None, None),
    ],
)
def test_corrupt_records_are_refused(key, value) -> None:
    with pytest.raises(CorruptRecordError):
        decode_record(key, value)


def test_replay_refuses_an_inconsistent_image() -> None:
    log = MetadataLog(MemoryLog(METADATA_LOG_CONFIG))
    log.append([Topic("t", (), 2), Partition("t", 0, (0,), 0, 0, 0, (0,))], T0)
    with pytest.raises(CorruptRecordError, match="lacks partition 1"):
        log.replay()


def test_disk_log_survives_reopen_and_bumps_the_controller_epoch(tmp_path: Path) -> None:
    log = MetadataLog.open(tmp_path)
    state, changes = ControllerState.start(log.replay(), rng=random.Random(0))
    log.append(changes.records, T0)
    for w in range(3):
        log.append(state.register_worker(w, endpoint(w), pid(w), 1, T0).records, T0)
    log.append(state.create_topic("orders", 4, 3, {"retention.ms": "60000"}).changes.records, T0)
    log.append(state.worker_died(1).records, T0)
    image = state.image()
    log.close()
    assert (tmp_path / METADATA_DIR).is_dir()

    reopened = MetadataLog.open(tmp_path)
    assert reopened.replay() == image
    again, changes = ControllerState.start(reopened.replay(), rng=random.Random(0))
    assert again.controller_epoch == image.controller_epoch + 1
    reopened.append(changes.records, T0 + 1)
    assert reopened.replay().controller_epoch == again.controller_epoch


def test_an_older_controller_epoch_cannot_append() -> None:
    log = MetadataLog(MemoryLog(METADATA_LOG_CONFIG))
    log.append([VersionStamp(5, 2)], T0)
    with pytest.raises(FencedLeaderEpochError):
        log.append([VersionStamp(6, 1)], T0)


def test_empty_append_writes_nothing() -> None:
    log = MetadataLog(MemoryLog(METADATA_LOG_CONFIG))
    assert log.append([], T0) == -1 and log.log.log_end_offset == 0
    assert log.replay() == MetadataImage()


def test_compaction_keeps_the_image_and_drops_old_tombstones() -> None:
    config = dataclasses.replace(METADATA_LOG_CONFIG, segment_bytes=512, delete_retention_ms=1000)
    log = MetadataLog(MemoryLog(config))
    state, changes = ControllerState.start(MetadataImage(), rng=random.Random(0))
    log.append(changes.records, T0)
    for w in range(3):
        log.append(state.register_worker(w, endpoint(w), pid(w), 1, T0).records, T0)
    for i in range(20):
        log.append(state.create_topic(f"t{i}", 2, 2).changes.records, T0)
        log.append(state.alter_config(f"t{i}", {"retention.ms": str(i + 1)}).changes.records, T0)
    for i in range(0, 20, 2):
        log.append(state.delete_topic(f"t{i}").records, T0)
    log.append(state.rebalance_leaders().records, T0 + 5000)
    size_before = log.log.size_bytes
    assert log.maybe_compact(T0 + 5000, force=True) is not None
    assert log.replay() == state.image()
    assert log.log.size_bytes < size_before / 2
    keys = [r.key for s in log.log.segments for _, h, raw in s.iter_batches() for r in _records(raw)]
    assert not any(k.startswith(b"topic/t0") for k in keys)  # tombstones older than delete.retention.ms are gone


def _records(raw: bytes):
    from kbroker.storage.records import decode_batch

    return decode_batch(raw)


# --- the replay property -------------------------------------------------------------------------

TOPICS = ["a", "b", "c.d", "__internal"]
OPERATIONS = st.one_of(
    st.tuples(st.just("register"), st.integers(0, 4), st.integers(0, 2)),
    st.tuples(st.just("died"), st.integers(0, 4)),
    st.tuples(st.just("heartbeat"), st.integers(0, 4)),
    st.tuples(st.just("tick"), st.integers(0, 1500)),
    st.tuples(st.just("create"), st.sampled_from(TOPICS), st.integers(0, 4), st.integers(-1, 4), st.booleans()),
    st.tuples(st.just("delete"), st.sampled_from(TOPICS)),
    st.tuples(st.just("alter"), st.sampled_from(TOPICS), st.sampled_from(["true", "false", None, "bad"])),
    st.tuples(st.just("isr"), st.sampled_from(TOPICS), st.integers(0, 3), st.integers(0, 3), st.booleans()),
    st.tuples(st.just("rebalance")),
    st.tuples(st.just("catch_up")),
    st.tuples(st.just("restart")),
    st.tuples(st.just("compact")),
)


class Driver:
    """Applies random operations to a controller and its metadata log, like the actor shell would."""

    def __init__(self, seed: int, directory: str | None = None) -> None:
        self.config = dataclasses.replace(METADATA_LOG_CONFIG, segment_bytes=2048, delete_retention_ms=500)
        self.directory = directory
        self.log = MetadataLog.open(directory, config=self.config) if directory else MetadataLog(MemoryLog(self.config))
        self.settings = ControllerSettings(session_timeout_ms=1000, default_replication_factor=2)
        self.rng = random.Random(seed)
        self.now = T0
        self.incarnation = 10
        self.restart()
        for w in range(4):
            self.run(("register", w, 1))
        self.run(("create", "a", 3, 3, False))
        self.run(("create", "b", 4, 2, True))

    def restart(self) -> None:
        self.state, changes = ControllerState.start(self.log.replay(), self.settings, rng=self.rng)
        self.persist(changes)

    def persist(self, changes) -> None:
        assert (changes.metadata_version > getattr(self, "version", -1)) == bool(changes.records)
        self.version = changes.metadata_version
        self.log.append(changes.records, self.now)

    def run(self, op: tuple) -> None:
        kind, *args = op
        state = self.state
        try:
            if kind == "register":
                w, same = args
                self.incarnation += same != 0
                session = state.workers.get(w)
                incarnation = session.incarnation if session and same == 0 else self.incarnation
                self.persist(state.register_worker(w, endpoint(w), 100 + incarnation, incarnation, self.now))
            elif kind == "died":
                self.persist(state.worker_died(args[0]))
            elif kind == "heartbeat":
                session = state.workers.get(args[0])
                state.heartbeat(args[0], session.incarnation if session else 1, state.metadata_version, self.now)
            elif kind == "tick":
                self.now += args[0]
                self.persist(state.tick(self.now))
            elif kind == "create":
                name, partitions, factor, unclean = args
                config = {"unclean.leader.election.enable": str(unclean).lower()}
                created = state.create_topic(name, partitions, factor, config, internal=name.startswith("__"))
                self.persist(created.changes)
            elif kind == "delete":
                self.persist(state.delete_topic(args[0], internal=True))
            elif kind == "alter":
                self.persist(state.alter_config(args[0], {"unclean.leader.election.enable": args[1]}).changes)
            elif kind == "isr":
                name, number, index, add = args
                part = state.partition(name, number)
                member = part.replicas[index % len(part.replicas)]
                isr = set(part.isr) | {member} if add else set(part.isr) - {member}
                epochs = (part.leader_epoch, part.partition_epoch)
                result = state.alter_isr(part.leader, name, number, *epochs, sorted(isr))
                self.persist(result.changes)
            elif kind == "catch_up":  # every leader adds its live followers back to the ISR
                live = set(state.live_workers())
                for part in [p for parts in state.partitions.values() for p in parts if p.leader in live]:
                    isr = sorted(set(part.isr) | (live & set(part.replicas)))
                    result = state.alter_isr(
                        part.leader, part.topic, part.partition, part.leader_epoch, part.partition_epoch, isr
                    )
                    self.persist(result.changes)
            elif kind == "rebalance":
                self.persist(state.rebalance_leaders())
            elif kind == "restart":
                if self.directory:  # the whole broker restarts: the log is reopened from disk
                    self.log.close()
                    self.log = MetadataLog.open(self.directory, config=self.config)
                self.restart()
            elif kind == "compact":
                self.log.maybe_compact(self.now, force=True)
        except KBrokerError:
            pass  # refused: must have changed nothing (checked by the replay below)
        check_invariants(self.state)


@settings(max_examples=150, deadline=None, print_blob=True)
@given(seed=st.integers(0, 2**32 - 1), operations=st.lists(OPERATIONS, min_size=10, max_size=60))
def test_replay_rebuilds_the_live_model_exactly(seed: int, operations: list[tuple]) -> None:
    driver = Driver(seed)
    for op in operations:
        driver.run(op)
        assert driver.log.replay() == driver.state.image(), op


@settings(max_examples=25, deadline=None, print_blob=True)
@given(seed=st.integers(0, 2**32 - 1), operations=st.lists(OPERATIONS, min_size=10, max_size=40))
def test_replay_from_disk_after_restarts_and_compaction(seed: int, operations: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        driver = Driver(seed, directory)
        for op in operations:
            driver.run(op)
        driver.log.close()
        assert MetadataLog.open(directory, config=driver.config).replay() == driver.state.image()


def test_an_image_written_as_a_snapshot_replays_to_itself() -> None:
    driver = Driver(3)
    driver.run(("died", 1))
    image = driver.state.image()
    log = MetadataLog(MemoryLog(METADATA_LOG_CONFIG))
    log.append(image.records(), T0)
    assert log.replay() == image
