"""Committed offsets against a real broker: they survive SIGKILL of the coordinator's worker and a
full restart; describe_group reports lag = high watermark - committed; list, delete and
reset-offsets (API and CLI) for groups without active members."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Callable

import pytest

from _cluster import Cluster, wait_until
from _groups import FAST, create_topic, produce
from kbroker import Admin, Consumer, GroupIdNotFoundError, GroupNotEmptyError, InvalidConfigError, TopicPartition
from kbroker.transport.client.group_client import GroupClient


def _member(cluster: Cluster, group: str, topic: str, partitions: int) -> Consumer:
    consumer = Consumer(cluster.bootstrap, group_id=group, enable_auto_commit=False, request_timeout_ms=20_000, **FAST)
    consumer.subscribe([topic])
    wait_until(lambda: consumer.poll(50) is not None and len(consumer.assignment()) == partitions, 30, f"{group} owning {topic}")
    return consumer


def test_committed_offsets_survive_coordinator_sigkill_and_full_restart(start_cluster: Callable[..., Cluster]) -> None:
    cluster = start_cluster()
    create_topic(cluster, "durable", 3)
    produce(cluster, "durable", 0, 300)
    wanted = {TopicPartition("durable", p): 10 * (p + 1) for p in range(3)}
    consumer = _member(cluster, "keep", "durable", 3)
    try:
        consumer.commit(wanted)
        assert {tp: consumer.committed(tp) for tp in wanted} == wanted
    finally:
        consumer.close()  # auto-commit off: nothing more is committed

    client = GroupClient(cluster.bootstrap, "keep", timeout_s=10)
    try:
        endpoint = client.find_coordinator(10)
    finally:
        client.close()
    with Admin(cluster.bootstrap, timeout=20) as admin:
        pid = next(w.pid for w in admin.describe_cluster() if w.endpoint == endpoint)
        os.kill(pid, signal.SIGKILL)
        with Consumer(cluster.bootstrap, group_id="keep", request_timeout_ms=30_000) as reader:
            assert {tp: reader.committed(tp) for tp in wanted} == wanted  # from the new coordinator
        wait_until(lambda: len([w for w in admin.describe_cluster() if w.alive]) == 3, 30, "the killed worker back")

    assert cluster.stop() == 0
    again = start_cluster(data_dir=cluster.data_dir)
    consumer = Consumer(again.bootstrap, group_id="keep", request_timeout_ms=30_000, **FAST)
    try:
        assert {tp: consumer.committed(tp) for tp in wanted} == wanted
        consumer.subscribe(["durable"])
        first: dict[TopicPartition, int] = {}

        def read() -> bool:
            for r in consumer.poll(100):
                first.setdefault(TopicPartition(r.topic, r.partition), r.offset)
            return len(first) == 3

        wait_until(read, 30, "records from every partition after the restart")
        assert first == wanted  # the group resumes where it committed
    finally:
        consumer.close()


def test_lag_list_reset_and_delete(cluster: Cluster) -> None:
    create_topic(cluster, "lagged", 2)
    produce(cluster, "lagged", 0, 100)
    tps = [TopicPartition("lagged", p) for p in range(2)]
    admin = Admin(cluster.bootstrap, timeout=20)
    consumer = _member(cluster, "lagger", "lagged", 2)
    try:
        consumer.commit({tps[0]: 5, tps[1]: 7})
        assert "lagger" in admin.list_groups()
        active = admin.describe_group("lagger")
        assert active.state in ("Stable", "Reconciling") and len(active.members) == 1
        assert {p.member for p in active.partitions} == {active.members[0]}
        with pytest.raises(GroupNotEmptyError):
            admin.reset_offsets("lagger", "lagged", to="earliest")
        with pytest.raises(GroupNotEmptyError):
            admin.delete_group("lagger")
    finally:
        consumer.close()

    hw = {p.partition: p.high_watermark for p in admin.describe_topic("lagged").partitions}
    assert sum(hw.values()) == 100
    info = wait_until(lambda: (i := admin.describe_group("lagger")).state == "Empty" and i, 10, "the group empty")
    assert info.members == []
    assert [(p.partition, p.committed_offset, p.high_watermark, p.lag) for p in info.partitions] == [
        (0, 5, hw[0], hw[0] - 5), (1, 7, hw[1], hw[1] - 7)
    ]
    assert admin.reset_offsets("lagger", "lagged", to="earliest") == {tps[0]: 0, tps[1]: 0}
    assert [p.lag for p in admin.describe_group("lagger").partitions] == [hw[0], hw[1]]
    assert admin.reset_offsets("lagger", "lagged", to="latest") == {tps[0]: hw[0], tps[1]: hw[1]}
    assert [p.lag for p in admin.describe_group("lagger").partitions] == [0, 0]
    assert admin.reset_offsets("lagger", "lagged", offset=3, partitions=[1]) == {tps[1]: 3}
    assert admin.reset_offsets("lagger", "lagged", timestamp_ms=0) == {tps[0]: 0, tps[1]: 0}
    assert admin.reset_offsets("lagger", "lagged", timestamp_ms=2**62) == {tps[0]: hw[0], tps[1]: hw[1]}
    with pytest.raises(InvalidConfigError, match="exactly one"):
        admin.reset_offsets("lagger", "lagged", to="earliest", offset=1)
    with pytest.raises(InvalidConfigError, match="no partition"):
        admin.reset_offsets("lagger", "lagged", offset=1, partitions=[9])
    with Consumer(cluster.bootstrap, group_id="lagger", **FAST) as reader:  # resumes at the reset offsets
        assert reader.committed(tps[0]) == hw[0]

    admin.delete_group("lagger")
    assert "lagger" not in admin.list_groups()
    with pytest.raises(GroupIdNotFoundError):
        admin.describe_group("lagger")
    with pytest.raises(GroupIdNotFoundError):
        admin.delete_group("lagger")
    admin.close()


def _cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kbroker.cli.main", *args, "--bootstrap", cluster.bootstrap],
        capture_output=True, text=True, timeout=60,
    )


def test_groups_cli(cluster: Cluster) -> None:
    create_topic(cluster, "cli", 2)
    produce(cluster, "cli", 0, 20)
    done = _cli(cluster, "consume", "cli", "--group", "cligroup", "--from-beginning", "--max-messages", "20")
    assert done.returncode == 0, done.stderr
    assert sorted(int(v) for v in done.stdout.split()) == list(range(20))
    listed = _cli(cluster, "groups", "list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert {"group": "cligroup", "state": "Empty", "members": 0} in json.loads(listed.stdout)
    described = _cli(cluster, "groups", "describe", "cligroup", "-o", "json")
    assert described.returncode == 0, described.stderr
    parts = json.loads(described.stdout)["partitions"]
    assert sum(p["committed_offset"] for p in parts) == 20 and all(p["lag"] == 0 for p in parts)
    table = _cli(cluster, "groups", "describe", "cligroup")
    assert "cligroup" in table.stdout and "High watermark" in table.stdout
    again = _cli(cluster, "consume", "cli", "--group", "cligroup", "--timeout-ms", "1500")
    assert again.returncode == 0 and again.stdout == ""  # everything was committed
    reset = _cli(cluster, "groups", "reset-offsets", "cligroup", "--topic", "cli", "--to-earliest", "-o", "json")
    assert reset.returncode == 0, reset.stderr
    assert [r["offset"] for r in json.loads(reset.stdout)] == [0, 0]
    bad = _cli(cluster, "groups", "reset-offsets", "cligroup", "--topic", "cli")
    assert bad.returncode == 2 and "exactly one" in bad.stderr
    deleted = _cli(cluster, "groups", "delete", "cligroup")
    assert deleted.returncode == 0, deleted.stderr
    missing = _cli(cluster, "groups", "describe", "cligroup")
    assert missing.returncode == 1 and "no consumer group" in missing.stderr
