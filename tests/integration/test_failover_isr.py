"""ISR rules under failure against a real broker: min.insync.replicas, unclean leader election off
and on, and a diverged old leader truncating by leader epochs when it comes back.

Workers are frozen with SIGSTOP (the controller fences them after the 1.5 s session timeout) so a
replica stays out of the ISR as long as the test needs; SIGCONT brings it back (it registers again).
"""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager
from typing import Iterator

import pytest

from _cluster import Cluster, wait_until
from _failover import create_topic, read_topic, wait_healthy
from kbroker import Admin, Producer
from kbroker.actors.names import REPLICA_MANAGER
from kbroker.errors import NotEnoughReplicasError
from kbroker.transport.messages_internal import DescribeReplicas

SESSION = ["--session-timeout-ms", "1500"]


@contextmanager
def _frozen(cluster: Cluster, worker: int) -> Iterator[int]:
    """SIGSTOP ``worker`` for the block (SIGCONT whatever happens); yields its pid."""
    pid = cluster.alive_pids()[worker]
    os.kill(pid, signal.SIGSTOP)
    try:
        yield pid
    finally:
        os.kill(pid, signal.SIGCONT)


def _isr(admin: Admin, topic: str) -> list[int]:
    return admin.describe_topic(topic).partitions[0].isr


@pytest.mark.cluster(workers=3, args=SESSION)
def test_min_insync_replicas_refuses_acks_all_until_the_isr_grows_back(cluster: Cluster) -> None:
    with Admin(cluster.bootstrap, timeout=20) as admin:
        info = create_topic(admin, "misr", 1, config={"min.insync.replicas": "3"})
        leader = info.partitions[0].leader
        follower = next(r for r in info.partitions[0].replicas if r != leader)
        with Producer(cluster.bootstrap, acks="all", retries=0) as strict, Producer(cluster.bootstrap, acks=1) as loose:
            assert strict.send("misr", b"all three").result(30).offset == 0
            with _frozen(cluster, follower):
                wait_until(lambda: follower not in _isr(admin, "misr"), 20, f"worker {follower} to leave the ISR")
                with pytest.raises(NotEnoughReplicasError, match="min.insync.replicas|in-sync"):
                    strict.send("misr", b"refused").result(30)
                assert loose.send("misr", b"acks=1 still works").result(30).offset == 1
            wait_healthy(admin, "misr")  # woken, caught up, back in the ISR
            assert strict.send("misr", b"all three again").result(30).offset == 2
    assert [r.value for r in read_topic(cluster.bootstrap, "misr")] == [b"all three", b"acks=1 still works", b"all three again"]


def _log_ends(cluster: Cluster, admin: Admin, topic: str) -> dict[int, int]:
    ends = {}
    for worker in admin.describe_cluster():
        if not worker.alive:
            continue
        reply = cluster.connection(worker.endpoint, timeout=10).request(DescribeReplicas(()), to=REPLICA_MANAGER, timeout=10)
        ends.update({worker.id: d.log_end_offset for d in reply.replicas if d.topic == topic})
    return ends


@pytest.mark.cluster(workers=3, args=SESSION)
def test_unclean_election_off_then_on_and_the_old_leader_truncates_what_diverged(cluster: Cluster) -> None:
    """ISR {A}, A frozen: offline, even when B (out of sync) is back. Turning unclean election on
    makes B leader (records only A had are lost, and the broker says so). When A returns it
    truncates those records, found by leader epochs (KIP-101), and copies B's."""
    with Admin(cluster.bootstrap, timeout=20) as admin:
        info = create_topic(admin, "unclean", 1, rf=2, config={"min.insync.replicas": "1"})
        a = info.partitions[0].leader
        b = next(r for r in info.partitions[0].replicas if r != a)
        with Producer(cluster.bootstrap, acks="all") as both, Producer(cluster.bootstrap, acks=1, retries=0) as only_a:
            for i in range(10):
                both.send("unclean", b"both-%d" % i)
            both.flush(30)
            with _frozen(cluster, b):
                wait_until(lambda: _isr(admin, "unclean") == [a], 20, "the ISR to shrink to the leader alone")
                for i in range(5):
                    only_a.send("unclean", b"only-on-a-%d" % i)
                only_a.flush(30)
                a_pid = cluster.alive_pids()[a]
                os.kill(a_pid, signal.SIGSTOP)
            try:
                wait_until(lambda: b in cluster.alive_pids() and a not in cluster.alive_pids(), 20, f"{b} back, {a} fenced")
                assert admin.describe_topic("unclean").partitions[0].leader == -1, "an out-of-sync replica was elected"
                admin.alter_topic_config("unclean", {"unclean.leader.election.enable": "true"})
                wait_until(lambda: admin.describe_topic("unclean").partitions[0].leader == b, 20, f"worker {b} to lead")
                for i in range(3):
                    both.send("unclean", b"after-%d" % i)
                both.flush(30)
            finally:
                os.kill(a_pid, signal.SIGCONT)
            wait_healthy(admin, "unclean", rf=2)
            wait_until(lambda: set(_log_ends(cluster, admin, "unclean").values()) == {13}, 20, "both replicas to hold 13 records")
    assert "UNCLEAN election" in cluster.output.text()
    expected = [b"both-%d" % i for i in range(10)] + [b"after-%d" % i for i in range(3)]
    assert [r.value for r in read_topic(cluster.bootstrap, "unclean")] == expected
