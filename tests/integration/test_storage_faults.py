"""A worker's disk fails under a running broker: its replicas go offline there, leadership and the
ISR move to healthy replicas, produce goes on (the failed request is retried), nothing corrupt is
served, and the replicas come back by themselves once the disk works again.

Two ways to break a disk: the named storage fault points (``InjectFault`` to a worker of a broker
started with ``--fault-injection``), and a really full filesystem (a small tmpfs mounted as one
worker's data directory; needs root, skipped otherwise).
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from _cluster import Cluster, wait_until
from _failover import AckedProducer, check_exactly_once_in_order, create_topic, read_topic, wait_healthy
from kbroker import Admin
from kbroker.actors.names import REPLICA_MANAGER
from kbroker.errors import InvalidRequestError
from kbroker.transport.messages_internal import InjectFault, InjectFaultResponse

FAULTS = ["--fault-injection", "--storage-retry-interval-ms", "500"]


def _inject(cluster: Cluster, admin: Admin, worker: int, point: str, code: int, times: int) -> InjectFaultResponse:
    endpoint = next(w.endpoint for w in admin.describe_cluster() if w.id == worker)
    reply = cluster.connection(endpoint, timeout=10).request(InjectFault(point, code, times), to=REPLICA_MANAGER, timeout=10)
    assert isinstance(reply, InjectFaultResponse), reply
    return reply


def _on_worker(admin: Admin, topic: str, worker: int) -> tuple[int, int]:
    """(partitions it leads, partitions whose ISR has it)."""
    parts = admin.describe_topic(topic).partitions
    return sum(p.leader == worker for p in parts), sum(worker in p.isr for p in parts)


@pytest.mark.cluster(workers=3, args=FAULTS)
def test_a_failing_disk_takes_the_workers_replicas_offline_and_they_heal_when_it_is_fixed(cluster: Cluster) -> None:
    with Admin(cluster.bootstrap, timeout=20) as admin:
        create_topic(admin, "disk", 6, config={"min.insync.replicas": "2"})
        victim = admin.describe_topic("disk").partitions[0].leader
        pid = cluster.alive_pids()[victim]
        producer = AckedProducer(cluster.bootstrap, "disk").start()
        try:
            producer.wait_acked(1000, 30)
            assert _inject(cluster, admin, victim, "segment.append", errno.ENOSPC, -1).error_code == 0
            wait_until(lambda: _on_worker(admin, "disk", victim) == (0, 0), 20, f"worker {victim} to lead nothing and leave every ISR")
            before = producer.acked_count
            producer.wait_acked(before + 2000, 60, "produce to go on without the failed disk")
            assert cluster.alive_pids().get(victim) == pid, "the worker must keep serving, not die"

            assert _inject(cluster, admin, victim, "segment.append", 0, 0).error_code == 0  # the disk is fixed
            wait_healthy(admin, "disk", preferred=True)  # reopened, caught up, in sync, leading again
            producer.wait_acked(producer.acked_count + 1000, 60)
        finally:
            producer.stop()
    assert cluster.alive_pids().get(victim) == pid
    assert "storage failed" in cluster.output.text() and "back online" in cluster.output.text()
    records = read_topic(cluster.bootstrap, "disk")
    check_exactly_once_in_order(records, producer.acked, producer.failed)
    assert not producer.failed, producer.failed[:3]


def test_fault_injection_is_refused_unless_enabled(cluster: Cluster) -> None:
    with Admin(cluster.bootstrap, timeout=20) as admin:
        reply = _inject(cluster, admin, 0, "segment.append", errno.EIO, 1)
        assert reply.error_code == InvalidRequestError.code and "--fault-injection" in reply.error_message
    with Admin(cluster.bootstrap, timeout=20) as admin:
        create_topic(admin, "fine", 1)  # and the broker still serves


def _can_mount() -> bool:
    return os.geteuid() == 0 and subprocess.run(["which", "mount"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_mount(), reason="needs root to mount a small tmpfs as a worker's data directory")
def test_a_really_full_filesystem(start_cluster, tmp_path: Path) -> None:
    """Worker 1's directory is a 12 MiB tmpfs: produce until it is full, see its replicas go offline
    and the others carry on; grow the filesystem and see them come back and catch up."""
    data = tmp_path / "data"
    mount_point = data / "worker-1"
    mount_point.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount_point)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        cluster = start_cluster(workers=3, data_dir=data, args=["--storage-retry-interval-ms", "500"])
        with Admin(cluster.bootstrap, timeout=20) as admin:
            create_topic(admin, "full", 3, config={"min.insync.replicas": "2", "segment.bytes": "1048576"})
            producer = AckedProducer(cluster.bootstrap, "full", producer_kwargs={"linger_ms": 20}).start()
            try:
                producer.wait_acked(200_000, 90, "enough data to fill 12 MiB")
                wait_until(lambda: _on_worker(admin, "full", 1) == (0, 0), 30, "worker 1 (full disk) to lead nothing and leave every ISR")
                producer.wait_acked(producer.acked_count + 5000, 60, "produce to go on on the other workers")
                grown = subprocess.run(["mount", "-o", "remount,size=512m", str(mount_point)], capture_output=True, text=True)
                assert grown.returncode == 0, grown.stderr
                wait_healthy(admin, "full", timeout=90)
            finally:
                producer.stop()
        assert "No space left on device" in cluster.output.text()
        records = read_topic(cluster.bootstrap, "full")
        check_exactly_once_in_order(records, producer.acked, producer.failed)
        assert not producer.failed, producer.failed[:3]
        cluster.stop()
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)
