"""The worker's leadership lease (actors/lease.py), alone and inside a PartitionReplica."""

from __future__ import annotations

from pathlib import Path

import pytest

from _replica_cluster import Cluster, partition, produce, produce_part, topic_state, wait_until
from kbroker.actors.lease import Lease
from kbroker.errors import NotLeaderError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_no_lease_before_the_controller_answers() -> None:
    assert not Lease(5.0, Clock()).valid()


def test_an_answered_heartbeat_renews_from_when_it_was_sent() -> None:
    clock = Clock()
    lease = Lease(5.0, clock)
    lease.renew(sent_at=99.0)  # answered at 100: counts from 99, when the controller may have seen it
    assert lease.valid() and lease.remaining_s() == pytest.approx(4.0)
    clock.now = 103.99
    assert lease.valid()
    clock.now = 104.0
    assert not lease.valid() and lease.remaining_s() == 0.0


def test_a_late_answer_to_an_older_heartbeat_never_shortens_the_lease() -> None:
    clock = Clock()
    lease = Lease(5.0, clock)
    lease.renew(sent_at=100.0)
    lease.renew(sent_at=98.0)
    clock.now = 104.5
    assert lease.valid()


def test_revoked_until_renewed() -> None:
    clock = Clock()
    lease = Lease(5.0, clock)
    lease.renew(100.0)
    lease.revoke()
    assert not lease.valid()
    lease.renew(100.0)
    assert lease.valid()


def test_for_session_lapses_before_the_controller_could_fence() -> None:
    assert Lease.for_session(6.0).duration_s == pytest.approx(5.5)
    assert Lease.for_session(1.0).duration_s == pytest.approx(0.9)
    with pytest.raises(ValueError):
        Lease(0)


def test_a_leader_whose_lease_lapsed_refuses_produce_and_takes_it_again_once_renewed(tmp_path: Path) -> None:
    clock = Clock()
    lease = Lease(5.0, clock)
    lease.renew(100.0)
    cluster = Cluster(tmp_path)
    try:
        cluster.start_worker(0, lease=lease)
        cluster.assign(topic_state("t", partition(0, leader=0, replicas=[0])))
        wait_until(lambda: cluster.describe(0, "t", 0).is_leader, what="leadership")
        assert produce_part(cluster.ask(cluster.gateway(0), produce("t", 0, b"a", acks=1))).error_code == 0

        clock.now = 106.0  # frozen past the lease (SIGSTOP): the controller may have fenced us
        refused = produce_part(cluster.ask(cluster.gateway(0), produce("t", 0, b"zombie", acks=1)))
        assert refused.error_code == NotLeaderError.code
        assert cluster.describe(0, "t", 0).log_end_offset == 1  # nothing written

        lease.renew(106.0)  # the controller answered: still ours
        again = produce_part(cluster.ask(cluster.gateway(0), produce("t", 0, b"b", acks=1)))
        assert (again.error_code, again.base_offset) == (0, 1)
    finally:
        cluster.stop()
