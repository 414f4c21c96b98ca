"""``kbroker start``: the supervisor, its workers and the controller as real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable

import msgpack
import pytest
import zmq

from _cluster import LISTENING, READY_TIMEOUT, Cluster, broker_command, process_gone, wait_until
from kbroker.actors.datadir import DirLock
from kbroker.errors import InvalidRequestError
from kbroker.transport.codec import decode
from kbroker.transport.messages_admin import DescribeCluster
from kbroker.transport.messages_client import ErrorResponse, ListOffsets


def test_ready_cluster_describes_its_live_workers(cluster: Cluster) -> None:
    described = cluster.describe()

    assert described.controller_endpoint == cluster.bootstrap
    assert len(described.cluster_id) == 22
    assert [w.worker_id for w in described.workers] == [0, 1, 2]
    assert all(w.alive for w in described.workers)
    endpoints = {w.endpoint for w in described.workers}
    assert len(endpoints) == 3 and cluster.bootstrap not in endpoints
    assert all(e.startswith("tcp://127.0.0.1:") for e in endpoints)
    pids = {w.pid for w in described.workers}
    assert len(pids) == 3 and cluster.pid not in pids
    assert sorted(pids) == sorted(cluster.started_pids())
    assert (cluster.data_dir / ".lock").read_text().strip() == str(cluster.pid)
    assert sorted(p.name for p in cluster.data_dir.glob("worker-*")) == ["worker-0", "worker-1", "worker-2"]


def test_second_start_on_the_same_data_dir_fails_clearly(cluster: Cluster) -> None:
    second = subprocess.run(broker_command(cluster.data_dir, 1), capture_output=True, text=True, timeout=READY_TIMEOUT)

    assert second.returncode == 1
    assert f"pid {cluster.pid}" in second.stderr
    assert str(cluster.data_dir.resolve()) in second.stderr
    assert "in use" in second.stderr
    assert "Traceback" not in second.stderr
    assert len(cluster.alive_pids()) == 3  # the first broker is untouched


@pytest.mark.cluster(workers=2)
def test_sigterm_stops_everything_and_releases_the_data_dir(cluster: Cluster) -> None:
    pids = list(cluster.alive_pids().values())

    assert cluster.stop(signal.SIGTERM) == 0

    assert all(process_gone(pid) for pid in pids)  # joined by the supervisor before it exited
    assert "stopped" in cluster.output.lines[-1]
    assert "Traceback" not in cluster.output.text()
    with DirLock(cluster.data_dir):  # free again
        pass


@pytest.mark.cluster(workers=2)
def test_ctrl_c_on_the_whole_process_group_stops_cleanly(cluster: Cluster) -> None:
    cluster.alive_pids()
    cluster.close_connections()

    os.killpg(cluster.pid, signal.SIGINT)  # what a terminal does: every process of the group gets it

    assert cluster.process.wait(30) == 0
    cluster.assert_no_orphans()
    text = cluster.output.text()
    assert "KeyboardInterrupt" not in text and "Traceback" not in text
    assert "stopping (SIGINT)" in text


def test_a_killed_worker_is_reported_dead_then_restarted(cluster: Cluster) -> None:
    before = cluster.alive_pids()
    victim = before[1]

    os.kill(victim, signal.SIGKILL)

    def worker_1() -> tuple[bool, int]:
        entry = next(w for w in cluster.describe().workers if w.worker_id == 1)
        return entry.alive, entry.pid

    wait_until(lambda: worker_1() == (False, -1), 10, "worker 1 reported dead")
    alive, new_pid = wait_until(lambda: (s := worker_1())[0] and s, READY_TIMEOUT, "worker 1 alive again")
    assert new_pid not in (victim, -1)
    after = cluster.alive_pids()
    assert after[0] == before[0] and after[2] == before[2]
    assert any(f"worker 1 (pid {victim}) died" in line and "SIGKILL" in line for line in cluster.output.lines)
    assert process_gone(victim)


@pytest.mark.cluster(workers=2)
def test_workers_exit_by_themselves_when_the_supervisor_is_killed(cluster: Cluster, start_cluster: Callable[..., Cluster]) -> None:
    pids = list(cluster.alive_pids().values())

    cluster.close_connections()
    cluster.process.kill()
    assert cluster.process.wait(10) == -signal.SIGKILL

    cluster.assert_no_orphans(timeout=10)
    # nothing is left locked: the same data dir starts again
    again = start_cluster(workers=2, data_dir=cluster.data_dir)
    assert set(again.alive_pids().values()).isdisjoint(pids)


def test_garbage_gets_an_error_and_the_broker_keeps_serving(cluster: Cluster) -> None:
    worker_endpoint = cluster.describe().workers[0].endpoint
    pids = cluster.alive_pids()
    context = zmq.Context.instance()
    for endpoint in (cluster.bootstrap, worker_endpoint):
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        try:
            garbage = [
                [b"\xc1 not msgpack"],
                [msgpack.packb({"v": 1, "type": "NoSuchMessage", "id": 5, "body": {}})],
                [msgpack.packb({"v": 1, "type": "DescribeCluster", "id": 6, "body": {"surprise": 1}})],
                [msgpack.packb([1, 2, 3]), b"stray payload frame"],
            ]
            for frames in garbage:
                sock.send_multipart(frames)
                assert sock.poll(5000), f"no answer from {endpoint} to {frames!r}"
                reply = decode(sock.recv_multipart())
                assert isinstance(reply.message, ErrorResponse), reply
                assert reply.message.code == InvalidRequestError.code
                assert reply.message.message
        finally:
            sock.close(linger=0)

    # well-formed requests an actor does not serve are refused by name, not dropped
    with pytest.raises(InvalidRequestError, match="does not serve ListOffsets"):
        cluster.connection().request(ListOffsets(0, ()))  # the controller serves admin requests, not data
    with pytest.raises(InvalidRequestError, match="does not serve DescribeCluster"):
        cluster.connection(worker_endpoint).request(DescribeCluster())

    assert cluster.alive_pids() == pids  # same processes, still serving


@pytest.mark.cluster(workers=2, args=["--session-timeout-ms", "800"])
def test_a_hung_worker_is_fenced_and_comes_back(cluster: Cluster) -> None:
    pids = cluster.alive_pids()
    hung = pids[0]

    os.kill(hung, signal.SIGSTOP)
    try:
        fenced = wait_until(
            lambda: next(w for w in cluster.describe().workers if w.worker_id == 0).alive is False, 10, "worker 0 fenced"
        )
        assert fenced
        entry = next(w for w in cluster.describe().workers if w.worker_id == 0)
        assert entry.pid == hung  # fenced, not dead: the process still exists
    finally:
        os.kill(hung, signal.SIGCONT)

    assert wait_until(lambda: cluster.alive_pids() == pids, 10, "worker 0 registered again with the same pid")


def test_help_lists_the_start_flags() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kbroker.cli.main", "start", "--help"], capture_output=True, text=True, timeout=30,
        env=dict(os.environ, COLUMNS="200"),
    )  # fmt: skip
    assert result.returncode == 0
    for flag in ("--workers", "--data-dir", "--host", "--port", "--no-auto-create-topics", "--session-timeout-ms", "--heartbeat-interval-ms"):
        assert flag in result.stdout


def test_port_zero_prints_the_chosen_port(cluster: Cluster) -> None:
    port = int(cluster.bootstrap.rsplit(":", 1)[1])
    assert port > 0
    assert any(LISTENING.search(line) for line in cluster.output.lines)


def test_a_taken_port_fails_clearly(cluster: Cluster, tmp_path: Path) -> None:
    port = cluster.bootstrap.rsplit(":", 1)[1]
    command = broker_command(tmp_path / "other", 1)
    command[command.index("--port") + 1] = port
    result = subprocess.run(command, capture_output=True, text=True, timeout=READY_TIMEOUT)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
