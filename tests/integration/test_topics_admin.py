"""Topic administration end to end: ``Admin`` and ``kbroker topics`` against a real 3-worker broker."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Callable

import pytest
from typer.testing import CliRunner

from _cluster import Cluster, wait_until
from kbroker import Admin, PartitionInfo, TopicInfo, WorkerInfo
from kbroker.cli.main import app
from kbroker.errors import (
    InvalidConfigError,
    InvalidReplicationFactorError,
    InvalidTopicError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)
from kbroker.storage.records import BatchBuilder
from kbroker.transport.messages_client import (
    InitProducerId,
    InitProducerIdResponse,
    Metadata,
    MetadataResponse,
    Produce,
    ProducePartition,
    ProduceResponse,
    ProduceTopic,
)

DESCRIBE_PROMPT_S = 5.0  # a describe must answer well within this, silent workers or not


def admin_for(cluster: Cluster) -> Admin:
    return Admin(cluster.bootstrap, timeout=10)


def describe_with_offsets(admin: Admin, name: str) -> TopicInfo:
    """Describe until every partition has offsets from its leader (the leaders may still be starting)."""

    def described() -> TopicInfo | None:
        info = admin.describe_topic(name)
        return info if all(p.high_watermark >= 0 for p in info.partitions) else None

    return wait_until(described, 20, f"offsets of every partition of {name!r}", interval=0.05)


def test_create_describe_list_alter_delete(cluster: Cluster) -> None:
    with admin_for(cluster) as admin:
        workers = admin.describe_cluster()
        assert [w.id for w in workers] == [0, 1, 2] and all(isinstance(w, WorkerInfo) and w.alive and w.pid for w in workers)

        admin.create_topic("orders", partitions=6, replication_factor=3, config={"retention.ms": 3_600_000})

        started = time.monotonic()
        info = admin.describe_topic("orders")
        assert time.monotonic() - started < DESCRIBE_PROMPT_S
        assert info.name == "orders" and [p.partition for p in info.partitions] == list(range(6))
        for p in info.partitions:
            assert isinstance(p, PartitionInfo)
            assert sorted(p.replicas) == [0, 1, 2]  # three replicas on distinct workers
            assert sorted(p.isr) == [0, 1, 2]
            assert p.leader in p.replicas and p.leader_epoch >= 0
        assert len({p.leader for p in info.partitions}) >= 2
        assert info.config["retention.ms"] == "3600000" and info.config["cleanup.policy"] == "delete"

        empty = describe_with_offsets(admin, "orders")  # the worker side answers DescribeReplicas
        assert all((p.log_start_offset, p.high_watermark, p.log_end_offset) == (0, 0, 0) for p in empty.partitions)

        assert admin.list_topics() == ["orders"]

        admin.alter_topic_config("orders", {"cleanup.policy": "compact", "retention.ms": None})
        config = admin.describe_topic("orders").config
        assert config["cleanup.policy"] == "compact" and config["retention.ms"] == "604800000"  # back to the default

        admin.delete_topic("orders")
        assert admin.list_topics() == []
        with pytest.raises(UnknownTopicOrPartitionError):
            admin.describe_topic("orders")
        with pytest.raises(UnknownTopicOrPartitionError):
            admin.delete_topic("orders")


def test_offsets_in_describe_follow_produced_records(cluster: Cluster) -> None:
    with admin_for(cluster) as admin:
        admin.create_topic("events", partitions=2, replication_factor=3)
        leader = describe_with_offsets(admin, "events").partitions[0].leader
        endpoints = {w.id: w.endpoint for w in admin.describe_cluster()}
        builder = BatchBuilder()
        for i in range(3):
            builder.append(f"v{i}".encode(), f"k{i}".encode())
        produce = Produce("test", -1, 10_000, (ProduceTopic("events", (ProducePartition(0, builder.build()),)),))

        reply = cluster.connection(endpoints[leader], timeout=15).request(produce)

        assert isinstance(reply, ProduceResponse) and reply.topics[0].partitions[0].error_code == 0

        def offsets() -> tuple[int, int, int] | None:
            p = admin.describe_topic("events").partitions[0]
            got = (p.log_start_offset, p.high_watermark, p.log_end_offset)
            return got if got == (0, 3, 3) else None

        wait_until(offsets, 20, "high watermark 3 on events-0", interval=0.05)
        other = admin.describe_topic("events").partitions[1]
        assert (other.high_watermark, other.log_end_offset) == (0, 0)


def test_a_silent_leader_gives_unknown_offsets_promptly_not_a_hang(cluster: Cluster) -> None:
    with admin_for(cluster) as admin:
        admin.create_topic("quiet", partitions=6, replication_factor=3)
        info = describe_with_offsets(admin, "quiet")
        silent = info.partitions[0].leader
        pid = next(w.pid for w in admin.describe_cluster() if w.id == silent)
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # alive to the supervisor and (for a while) to the controller, but mute
        try:
            started = time.monotonic()
            during = admin.describe_topic("quiet")
            took = time.monotonic() - started
        finally:
            os.kill(pid, signal.SIGCONT)
        assert took < DESCRIBE_PROMPT_S
        for p in during.partitions:
            offsets = (p.log_start_offset, p.high_watermark, p.log_end_offset)
            if p.leader == silent:
                assert offsets == (-1, -1, -1), p
            else:
                assert offsets == (0, 0, 0), p
        describe_with_offsets(admin, "quiet")  # and back once it answers again


def test_bad_requests_get_clear_errors_and_the_broker_keeps_serving(cluster: Cluster) -> None:
    with admin_for(cluster) as admin:
        admin.create_topic("taken")
        bad: list[tuple[Callable[[], None], type[Exception], str]] = [
            (lambda: admin.create_topic("taken"), TopicAlreadyExistsError, "already exists"),
            (lambda: admin.create_topic("../x"), InvalidTopicError, "'/'"),
            (lambda: admin.create_topic(""), InvalidTopicError, "empty"),
            (lambda: admin.create_topic("wide", replication_factor=4), InvalidReplicationFactorError, "live workers"),
            (lambda: admin.create_topic("c1", config={"retention.mss": 1}), InvalidConfigError, "retention.mss"),
            (lambda: admin.create_topic("c2", config={"cleanup.policy": "bogus"}), InvalidConfigError, "cleanup.policy"),
            (lambda: admin.alter_topic_config("taken", {"min.insync.replicas": "zero"}), InvalidConfigError, "min.insync.replicas"),
            (lambda: admin.alter_topic_config("missing", {"retention.ms": 1}), UnknownTopicOrPartitionError, "missing"),
        ]
        for call, error, text in bad:
            with pytest.raises(error) as caught:
                call()
            assert text in str(caught.value), (error, str(caught.value))
        assert admin.list_topics() == ["taken"]
        assert len(admin.describe_cluster()) == 3  # still serving
        admin.create_topic("fine", partitions=2)
        assert admin.list_topics() == ["fine", "taken"]

        conn = cluster.connection()
        reply = conn.request(Metadata(("auto-made",), True))  # auto-creation is on by default
        assert isinstance(reply, MetadataResponse) and reply.topics[0].error_code == 0
        assert "auto-made" in admin.list_topics()


def test_without_auto_create_unknown_topics_stay_unknown(start_cluster: Callable[..., Cluster]) -> None:
    cluster = start_cluster(workers=1, args=["--no-auto-create-topics"])
    reply = cluster.connection().request(Metadata(("ghost",), True))
    assert isinstance(reply, MetadataResponse)
    assert reply.topics[0].error_code == UnknownTopicOrPartitionError.code
    assert "kbroker topics create" in (reply.topics[0].error_message or "")


def test_topics_and_producer_ids_survive_a_restart_of_the_whole_broker(start_cluster: Callable[..., Cluster], tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = start_cluster(workers=3, data_dir=data_dir)
    with admin_for(first) as admin:
        admin.create_topic("kept", partitions=3, replication_factor=2, config={"cleanup.policy": "compact"})
        before = admin.describe_topic("kept")
    pid = first.connection().request(InitProducerId(None, 60_000, -1, -1))
    assert isinstance(pid, InitProducerIdResponse) and pid.error_code == 0
    assert first.stop() == 0

    second = start_cluster(workers=3, data_dir=data_dir)
    with admin_for(second) as admin:
        assert admin.list_topics() == ["kept"]
        after = describe_with_offsets(admin, "kept")  # leaders are back once the workers registered
        assert [p.replicas for p in after.partitions] == [p.replicas for p in before.partitions]
        assert all(p.leader in p.replicas for p in after.partitions)
        assert after.config["cleanup.policy"] == "compact"

        def healed() -> TopicInfo | None:  # followers rejoin the ISR; leadership returns to preferred replicas
            info = admin.describe_topic("kept")
            in_sync = all(sorted(p.isr) == sorted(p.replicas) for p in info.partitions)
            preferred = all(p.leader == p.replicas[0] for p in info.partitions)
            return info if in_sync and preferred else None

        healed_info = wait_until(healed, 30, "full ISRs and preferred leaders after the restart", interval=0.1)
        assert len({p.leader for p in healed_info.partitions}) >= 2
        assert all(p.leader_epoch > b.leader_epoch for p, b in zip(healed_info.partitions, before.partitions))
    again = second.connection().request(InitProducerId(None, 60_000, -1, -1))
    assert isinstance(again, InitProducerIdResponse) and again.producer_id > pid.producer_id


def test_cli_topics_commands(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    boot = ["--bootstrap", cluster.bootstrap]

    created = runner.invoke(app, ["topics", "create", "clicks", "--partitions", "6", "--replication-factor", "3", "--config", "retention.ms=60000", *boot])
    assert created.exit_code == 0, created.output
    assert "clicks" in created.output

    monkeypatch.setenv("KBROKER_BOOTSTRAP", cluster.bootstrap)  # the env var stands in for --bootstrap
    listed = runner.invoke(app, ["topics", "list"])
    assert listed.exit_code == 0, listed.output
    assert "clicks" in listed.output and "6" in listed.output

    described = runner.invoke(app, ["topics", "describe", "clicks"])
    assert described.exit_code == 0, described.output
    assert "retention.ms" in described.output and "60000" in described.output
    assert "replication factor 3" in described.output

    altered = runner.invoke(app, ["topics", "alter", "clicks", "--config", "retention.ms=120000"])
    assert altered.exit_code == 0, altered.output
    with Admin(cluster.bootstrap, timeout=10) as admin:
        assert admin.describe_topic("clicks").config["retention.ms"] == "120000"

    duplicate = runner.invoke(app, ["topics", "create", "clicks"])
    assert duplicate.exit_code == 1
    assert duplicate.stderr.strip().splitlines() == ["error: topic 'clicks' already exists"]

    bad_config = runner.invoke(app, ["topics", "alter", "clicks", "--config", "retention.ms=soon"])
    assert bad_config.exit_code == 1 and "retention.ms" in bad_config.stderr and "Traceback" not in bad_config.output

    usage = runner.invoke(app, ["topics", "create", "x", "--config", "no-equals-sign"])
    assert usage.exit_code == 2

    deleted = runner.invoke(app, ["topics", "delete", "clicks"])
    assert deleted.exit_code == 0, deleted.output
    missing = runner.invoke(app, ["topics", "describe", "clicks"])
    assert missing.exit_code == 1 and missing.stderr.startswith("error: topic 'clicks' does not exist")
