"""The Controller actor shell on ControllerState: fake I/O thread, journaled metadata log, driven clock."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator

import pytest

from _controller_shell_helpers import CLUSTER_ID, Shell, endpoint
from kbroker.actors import controller as controller_module
from kbroker.actors.controller import Controller, ControllerFailed, WorkerLost, WorkerRegistered, WorkerState
from kbroker.errors import (
    InvalidConfigError,
    InvalidReplicationFactorError,
    InvalidTopicError,
    KafkaStorageError,
    NotLeaderError,
    RequestTimedOutError,
    StaleMemberEpochError,
    TopicAlreadyExistsError,
    UnknownError,
    UnknownMemberError,
    UnknownTopicOrPartitionError,
)
from kbroker.transport.envelope import Address, Envelope
from kbroker.transport.messages_acls import CreateAcls, DeleteAcls, DescribeAcls
from kbroker.transport.messages_admin import (
    AlterConfigs,
    AlterConfigsResource,
    AlterConfigsResponse,
    ConfigEntry,
    CreatableTopic,
    CreateTopics,
    CreateTopicsResponse,
    DeleteTopics,
    DeleteTopicsResponse,
    DescribeCluster,
    DescribeClusterResponse,
    DescribeTopics,
    DescribeTopicsResponse,
)
from kbroker.transport.messages_client import ErrorResponse, InitProducerId, InitProducerIdResponse, Metadata, MetadataResponse
from kbroker.transport.messages_internal import (
    AlterIsr,
    AlterReplicaStatus,
    AlterIsrResponse,
    DescribeReplicas,
    DescribeReplicasResponse,
    LeaderAndIsr,
    RegisterWorker,
    RegisterWorkerResponse,
    ReplicaDescription,
    UpdateMetadata,
    WorkerHeartbeat,
    WorkerHeartbeatResponse,
)


@pytest.fixture
def shell() -> Iterator[Shell]:
    s = Shell()
    try:
        yield s
    finally:
        s.stop()


def create(shell: Shell, name: str, partitions: int = 1, factor: int = -1, configs: tuple[ConfigEntry, ...] = ()) -> CreateTopicsResponse:
    reply = shell.request(CreateTopics((CreatableTopic(name, partitions, factor, configs),), 1000, False))
    assert isinstance(reply, CreateTopicsResponse)
    return reply


def three_workers(shell: Shell) -> None:
    for w in range(3):
        assert shell.register(w) == RegisterWorkerResponse(0, None, 3)
    shell.journal.take()


# --- workers --------------------------------------------------------------------------------


def test_it_accepts_the_worker_and_client_requests_it_serves() -> None:
    assert Controller.ACCEPTS == {
        RegisterWorker, WorkerHeartbeat, AlterIsr, AlterReplicaStatus, DescribeCluster, Metadata, CreateTopics,
        DeleteTopics, AlterConfigs, DescribeTopics, InitProducerId, CreateAcls, DescribeAcls, DeleteAcls,
    }  # fmt: skip


def test_register_heartbeat_describe(shell: Shell) -> None:
    assert shell.register(0) == RegisterWorkerResponse(0, None, 3)
    assert shell.register(1) == RegisterWorkerResponse(0, None, 3)
    reply = shell.request(WorkerHeartbeat(0, 1, 0))
    assert isinstance(reply, WorkerHeartbeatResponse) and reply.error_code == 0

    described = shell.request(DescribeCluster())
    assert isinstance(described, DescribeClusterResponse)
    assert (described.cluster_id, described.controller_endpoint) == (CLUSTER_ID, "tcp://boot:7092")
    assert [(w.worker_id, w.endpoint, w.pid, w.alive) for w in described.workers] == [
        (0, endpoint(0), 500, True), (1, endpoint(1), 501, True),
    ]  # fmt: skip
    assert shell.events == [WorkerRegistered(0, 500, endpoint(0), 1), WorkerRegistered(1, 501, endpoint(1), 1)]


def test_a_registration_is_persisted_before_the_worker_gets_its_metadata(shell: Shell) -> None:
    shell.register(0)
    entries = shell.journal.take()
    assert [kind for kind, _ in entries] == ["append", "send"]
    address, message = entries[1][1]
    assert address == Address(endpoint(0), "replica-manager")
    assert isinstance(message, UpdateMetadata) and message.full


def test_stale_registrations_and_heartbeats_are_refused_in_the_response(shell: Shell) -> None:
    reply = shell.request(WorkerHeartbeat(4, 1, 0))
    assert isinstance(reply, WorkerHeartbeatResponse) and reply.error_code == UnknownMemberError.code
    shell.register(4, incarnation=5)
    reply = shell.request(WorkerHeartbeat(4, 1, 0))
    assert isinstance(reply, WorkerHeartbeatResponse) and reply.error_code == StaleMemberEpochError.code
    reply = shell.register(4, incarnation=4)
    assert isinstance(reply, RegisterWorkerResponse) and reply.error_code == StaleMemberEpochError.code


def test_a_reported_death_moves_leadership_at_once(shell: Shell) -> None:
    three_workers(shell)
    create(shell, "t", 3, 3)
    shell.journal.take()

    shell.died(0, 500)

    entries = shell.journal.take()
    assert entries[0][0] == "append" and all(kind == "send" for kind, _ in entries[1:])
    assert {addr.endpoint for kind, (addr, _) in entries[1:]} == {endpoint(1), endpoint(2)}
    assert shell.io.forgotten == [endpoint(0)]
    assert shell.events[-1] == WorkerLost(0, 500, WorkerState.DEAD, "process exited (killed by SIGKILL)")
    metadata = shell.request(Metadata(("t",), False))
    assert isinstance(metadata, MetadataResponse)
    assert all(p.leader_id in (1, 2) and 0 not in p.isr for p in metadata.topics[0].partitions)
    shell.died(0, 500)  # twice: nothing new
    assert len([e for e in shell.events if isinstance(e, WorkerLost)]) == 1


def test_a_silent_worker_is_fenced_after_the_session_timeout_and_may_return(shell: Shell) -> None:
    shell.register(0)
    shell.clock.now += 6.0
    shell.tick()
    assert not any(isinstance(e, WorkerLost) for e in shell.events)  # exactly the timeout: still alive
    shell.clock.now += 0.5
    shell.tick()
    assert isinstance(shell.events[-1], WorkerLost) and shell.events[-1].state is WorkerState.FENCED

    reply = shell.request(WorkerHeartbeat(0, 1, 0))
    assert isinstance(reply, WorkerHeartbeatResponse) and reply.error_code == UnknownMemberError.code
    assert shell.register(0) == RegisterWorkerResponse(0, None, 3)


def test_a_worker_behind_on_metadata_gets_a_full_resend(shell: Shell) -> None:
    three_workers(shell)
    create(shell, "t", 1, 1)
    version = shell.request(WorkerHeartbeat(0, 1, 0))
    assert isinstance(version, WorkerHeartbeatResponse)
    shell.journal.take()

    shell.request(WorkerHeartbeat(0, 1, version.metadata_version))  # caught up: nothing
    assert shell.journal.take() == []
    shell.request(WorkerHeartbeat(0, 1, 0))  # still at 0 a whole interval later: behind
    [(kind, (address, message))] = shell.journal.take()
    assert address == Address(endpoint(0), "replica-manager")
    assert isinstance(message, UpdateMetadata) and message.full and [t.name for t in message.topics] == ["t"]


def test_leadership_returns_to_the_preferred_replica_soon_after_it_rejoins() -> None:
    shell = Shell(rebalance_delay=1.0)
    try:
        three_workers(shell)
        create(shell, "t", 1, 3)
        metadata = shell.request(Metadata(("t",), False))
        assert isinstance(metadata, MetadataResponse)
        preferred = metadata.topics[0].partitions[0].replicas[0]
        shell.died(preferred, 500 + preferred)
        shell.register(preferred, incarnation=2)  # back, but out of sync
        metadata = shell.request(Metadata(("t",), False))
        assert isinstance(metadata, MetadataResponse)
        part = metadata.topics[0].partitions[0]
        assert part.leader_id != preferred and preferred not in part.isr
        reply = shell.request(AlterIsr(part.leader_id, "t", 0, part.leader_epoch, 1, (*part.isr, preferred)))  # caught up (one election: partition epoch 1)
        assert isinstance(reply, AlterIsrResponse) and reply.error_code == 0, reply
        shell.journal.take()

        shell.clock.now += 1.0
        shell.tick()

        metadata = shell.request(Metadata(("t",), False))
        assert isinstance(metadata, MetadataResponse) and metadata.topics[0].partitions[0].leader_id == preferred
        entries = shell.journal.take()
        assert entries[0][0] == "append"
        assert any(isinstance(m, LeaderAndIsr) for kind, (_, m) in entries[1:])
    finally:
        shell.stop()


# --- topics ---------------------------------------------------------------------------------


def test_create_topic_persists_then_tells_every_replica_manager(shell: Shell) -> None:
    three_workers(shell)

    reply = create(shell, "orders", 6, 3)

    [result] = reply.topics
    assert (result.error_code, result.num_partitions, result.replication_factor) == (0, 6, 3)
    entries = shell.journal.take()
    assert entries[0][0] == "append" and all(kind == "send" for kind, _ in entries[1:])
    sends = [item for _, item in entries[1:]]
    assert all(address.actor == "replica-manager" for address, _ in sends)
    kinds = [type(message) for _, message in sends]
    assert kinds == [UpdateMetadata] * 3 + [LeaderAndIsr] * 3  # metadata first, then roles
    metadata = shell.request(Metadata(("orders",), False))
    assert isinstance(metadata, MetadataResponse)
    parts = metadata.topics[0].partitions
    assert all(len(set(p.replicas)) == 3 for p in parts)
    assert len({p.leader_id for p in parts}) >= 2


def test_create_errors_come_per_topic_and_change_nothing(shell: Shell) -> None:
    three_workers(shell)
    create(shell, "dup")
    shell.journal.take()

    cases = {
        "dup": TopicAlreadyExistsError,
        "../x": InvalidTopicError,
        "": InvalidTopicError,
        "big": InvalidReplicationFactorError,
        "cfg": InvalidConfigError,
    }
    request = CreateTopics(
        (
            CreatableTopic("dup", 1, -1, ()),
            CreatableTopic("../x", 1, -1, ()),
            CreatableTopic("", 1, -1, ()),
            CreatableTopic("big", 1, 4, ()),
            CreatableTopic("cfg", 1, 1, (ConfigEntry("retention.mss", "1"),)),
        ),
        1000,
        False,
    )
    reply = shell.request(request)

    assert isinstance(reply, CreateTopicsResponse)
    assert {r.name: r.error_code for r in reply.topics} == {name: cls.code for name, cls in cases.items()}
    assert all(r.error_message for r in reply.topics)
    assert "retention.mss" in reply.topics[-1].error_message  # type: ignore[operator]
    assert shell.journal.take() == []  # nothing persisted, nothing sent


def test_validate_only_creates_nothing(shell: Shell) -> None:
    three_workers(shell)
    reply = shell.request(CreateTopics((CreatableTopic("v", 2, 2, ()),), 1000, True))
    assert isinstance(reply, CreateTopicsResponse) and reply.topics[0].error_code == 0
    metadata = shell.request(Metadata(("v",), False))
    assert isinstance(metadata, MetadataResponse) and metadata.topics[0].error_code == UnknownTopicOrPartitionError.code
    assert shell.journal.take() == []


def test_delete_and_alter(shell: Shell) -> None:
    three_workers(shell)
    create(shell, "t")
    reply = shell.request(AlterConfigs((AlterConfigsResource("t", (ConfigEntry("cleanup.policy", "compact"),)),
                                        AlterConfigsResource("t", (ConfigEntry("cleanup.policy", "nope"),)),
                                        AlterConfigsResource("missing", (ConfigEntry("retention.ms", "1"),))), False))  # fmt: skip
    assert isinstance(reply, AlterConfigsResponse)
    assert [r.error_code for r in reply.resources] == [0, InvalidConfigError.code, UnknownTopicOrPartitionError.code]
    described = shell.describe_silently(DescribeTopics(("t",), True))
    assert isinstance(described, DescribeTopicsResponse)
    assert dict((c.name, c.value) for c in described.topics[0].configs)["cleanup.policy"] == "compact"

    reply = shell.request(DeleteTopics(("t", "t"), 1000))
    assert isinstance(reply, DeleteTopicsResponse)
    assert [r.error_code for r in reply.topics] == [0, UnknownTopicOrPartitionError.code]
    sent = [message for kind, (_, message) in shell.journal.take()[-3:]]
    assert all(isinstance(m, UpdateMetadata) and m.deleted_topics == ("t",) for m in sent)


def test_metadata_auto_creates_unknown_topics() -> None:
    shell = Shell()
    try:
        three_workers(shell)
        reply = shell.request(Metadata(("fresh", "__internal", "bad/name"), True))
        assert isinstance(reply, MetadataResponse)
        codes = {t.name: t.error_code for t in reply.topics}
        assert codes["fresh"] == 0 and len(reply.topics[0].partitions) == 1
        assert codes["__internal"] != 0 and codes["bad/name"] == InvalidTopicError.code
        reply = shell.request(Metadata(("other",), False))  # the client did not allow it
        assert isinstance(reply, MetadataResponse) and reply.topics[0].error_code == UnknownTopicOrPartitionError.code
    finally:
        shell.stop()


def test_no_auto_create_answers_unknown_topic() -> None:
    shell = Shell(auto_create_topics=False)
    try:
        three_workers(shell)
        reply = shell.request(Metadata(("fresh",), True))
        assert isinstance(reply, MetadataResponse)
        assert reply.topics[0].error_code == UnknownTopicOrPartitionError.code
        assert "kbroker topics create" in (reply.topics[0].error_message or "")
    finally:
        shell.stop()


# --- DescribeTopics: deferred, offsets from the leaders -------------------------------------


def test_describe_topics_waits_for_leaders_without_blocking_the_actor(shell: Shell) -> None:
    three_workers(shell)
    create(shell, "t", 3, 1)

    pending = shell.request_later(DescribeTopics(("t",), False))

    asks = shell.io.wait_asks(3)
    assert not pending.done
    assert all(address.actor == "replica-manager" and isinstance(m, DescribeReplicas) for address, m, _, _ in asks)
    assert isinstance(shell.request(DescribeCluster()), DescribeClusterResponse)  # the actor is not blocked
    by_worker = {int(address.endpoint.rsplit(":", 1)[1]) - 7100: (m, f) for address, m, _, f in asks}
    for worker_id, (message, future) in sorted(by_worker.items()):
        if worker_id == 2:
            future.set_exception(RequestTimedOutError("silent"))  # what the I/O thread does at the deadline
            continue
        replicas = tuple(
            ReplicaDescription(k.topic, k.partition, 0, True, 0, 5, 10 + worker_id, 12 + worker_id, 100)
            for k in message.partitions
        )
        future.set_result(DescribeReplicasResponse(worker_id, replicas))

    reply = pending.wait()
    assert isinstance(reply, DescribeTopicsResponse)
    offsets = {p.leader_id: (p.log_start_offset, p.high_watermark, p.log_end_offset) for p in reply.topics[0].partitions}
    assert offsets == {0: (5, 10, 12), 1: (5, 11, 13), 2: (-1, -1, -1)}


def test_describe_of_unknown_topics_answers_at_once(shell: Shell) -> None:
    three_workers(shell)
    reply = shell.request(DescribeTopics(("nope",), False))
    assert isinstance(reply, DescribeTopicsResponse) and reply.topics[0].error_code == UnknownTopicOrPartitionError.code
    assert shell.io.asks == []


# --- ISR, producer ids --------------------------------------------------------------------


def test_alter_isr_persists_and_answers_with_the_new_state(shell: Shell) -> None:
    three_workers(shell)
    create(shell, "t", 1, 3)
    metadata = shell.request(Metadata(("t",), False))
    assert isinstance(metadata, MetadataResponse)
    part = metadata.topics[0].partitions[0]
    leader = part.leader_id
    shell.journal.take()

    shrunk = (leader,)
    reply = shell.request(AlterIsr(leader, "t", 0, part.leader_epoch, 0, shrunk))
    assert isinstance(reply, AlterIsrResponse) and reply.error_code == 0 and reply.state is not None
    assert reply.state.isr == shrunk and reply.state.partition_epoch == 1
    assert shell.journal.take()[0][0] == "append"

    other = next(w for w in range(3) if w != leader)
    reply = shell.request(AlterIsr(other, "t", 0, part.leader_epoch, 1, (other,)))
    assert isinstance(reply, AlterIsrResponse) and reply.error_code == NotLeaderError.code and reply.state is None


def test_producer_ids_never_repeat_across_restarts(tmp_path: Path) -> None:
    first = Shell(data_dir=tmp_path)
    try:
        ids = []
        for _ in range(3):
            reply = first.request(InitProducerId(None, 60000, -1, -1))
            assert isinstance(reply, InitProducerIdResponse) and reply.error_code == 0
            ids.append((reply.producer_id, reply.producer_epoch))
        bumped = first.request(InitProducerId(None, 60000, ids[0][0], 0))
        assert isinstance(bumped, InitProducerIdResponse) and (bumped.producer_id, bumped.producer_epoch) == (ids[0][0], 1)
        refused = first.request(InitProducerId("tx", 60000, -1, -1))
        assert isinstance(refused, InitProducerIdResponse) and refused.error_code != 0
    finally:
        first.stop()
    assert [i for i, _ in ids] == sorted(set(i for i, _ in ids)) and all(e == 0 for _, e in ids)

    second = Shell(data_dir=tmp_path)
    try:
        reply = second.request(InitProducerId(None, 60000, -1, -1))
        assert isinstance(reply, InitProducerIdResponse) and reply.producer_id > max(i for i, _ in ids)
    finally:
        second.stop()


def test_topics_survive_a_restart_on_the_same_data_dir(tmp_path: Path) -> None:
    first = Shell(data_dir=tmp_path)
    try:
        three_workers(first)
        create(first, "kept", 4, 2, (ConfigEntry("retention.ms", "60000"),))
        epoch = first.register(0, incarnation=2)
        assert isinstance(epoch, RegisterWorkerResponse)
    finally:
        first.stop()

    second = Shell(data_dir=tmp_path, epoch=0)
    try:
        reply = second.register(0, incarnation=3)
        assert isinstance(reply, RegisterWorkerResponse) and reply.controller_epoch > epoch.controller_epoch
        described = second.describe_silently(DescribeTopics(("kept",), True))
        assert isinstance(described, DescribeTopicsResponse)
        topic = described.topics[0]
        assert topic.error_code == 0 and len(topic.partitions) == 4
        assert dict((c.name, c.value) for c in topic.configs)["retention.ms"] == "60000"
    finally:
        second.stop()


# --- failures -------------------------------------------------------------------------------


def test_a_failed_metadata_write_fails_the_request_and_the_controller() -> None:
    failed = threading.Event()
    events: list[object] = []

    def listener(event: object) -> None:
        events.append(event)
        if isinstance(event, ControllerFailed):
            failed.set()

    shell = Shell(listener=listener)
    try:
        three_workers(shell)
        assert shell.log is not None
        shell.log.fail = OSError("disk full")
        replies: list[object] = []
        shell.ref.tell(Envelope.detached(CreateTopics((CreatableTopic("t", 1, 1, ()),), 1000, False), replies.append))
        assert failed.wait(10)
        assert isinstance(replies[0], ErrorResponse) and replies[0].code == KafkaStorageError.code
        assert "disk full" in events[-1].error  # type: ignore[attr-defined]
        assert shell.journal.take() == []  # nothing was sent for the unpersisted change
    finally:
        shell.stop()


class _BrokenController(Controller):
    def _on_describe_cluster(self, envelope: Envelope) -> None:
        raise RuntimeError("boom")


def test_a_failing_handler_answers_unknown_error_and_the_actor_lives_on() -> None:
    shell = Shell(actor_class=_BrokenController)
    try:
        reply = shell.request(DescribeCluster())
        assert isinstance(reply, ErrorResponse) and reply.code == UnknownError.code and "boom" in reply.message
        assert shell.register(0) == RegisterWorkerResponse(0, None, 3)
    finally:
        shell.stop()


class _CrashingController(Controller):
    def _on_tick(self) -> None:
        raise RuntimeError("bug in the tick path")


def test_a_crash_outside_requests_is_reported_to_the_listener() -> None:
    failed = threading.Event()
    events: list[object] = []

    def listener(event: object) -> None:
        events.append(event)
        if isinstance(event, ControllerFailed):
            failed.set()

    shell = Shell(actor_class=_CrashingController, listener=listener)
    try:
        shell.ref.tell(controller_module._TICK)
        assert failed.wait(10)
        assert "bug in the tick path" in events[-1].error  # type: ignore[attr-defined]
    finally:
        shell.stop()
