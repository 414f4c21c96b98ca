"""Consumer groups against a real broker: the partitions split, move on close and on SIGKILL, and
every record is processed at least once (duplicates only after the killed member's last commit).

Figures (seconds for partitions to move) are printed with ``-s``.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

from _cluster import Cluster, wait_until
from _groups import ChildMember, Member, create_topic, produce
from kbroker import Admin, Consumer, GroupIdNotFoundError, TopicPartition
from kbroker.transport.client.group_client import GroupClient

TOPIC = "orders"
PARTITIONS = 6
BATCH = 1000
SESSION_S = 2.0  # _groups.FAST and _group_child.py
HEARTBEAT_S = 0.2


def _owners(admin: Admin, group: str) -> list[int]:
    """Partition counts per member, sorted, as the coordinator reports them ([] before anyone joined)."""
    try:
        info = admin.describe_group(group)
    except GroupIdNotFoundError:
        return []
    per_member = Counter(p.member for p in info.partitions if p.member is not None)
    return sorted(per_member[m] for m in info.members)


def test_members_split_partitions_and_take_over_on_close_and_sigkill(cluster: Cluster, tmp_path: Path) -> None:
    create_topic(cluster, TOPIC, PARTITIONS)
    produce(cluster, TOPIC, 0, BATCH)
    a, b = Member(cluster, "billing", TOPIC), Member(cluster, "billing", TOPIC)
    child = ChildMember(cluster, "billing", TOPIC, tmp_path / "child.log")
    a.start()
    b.start()
    admin = Admin(cluster.bootstrap, timeout=20)
    try:
        def values() -> Counter:
            return Counter([int(r.value) for r in a.records + b.records] + [v for _, _, v in child.records()])

        wait_until(lambda: _owners(admin, "billing") == [2, 2, 2], 30, "3 members with 2 partitions each", interval=0.05)
        wait_until(lambda: len(a.assignment) == 2 and len(b.assignment) == 2 and len(child.assignment()) == 2, 20, "each member reading 2")
        assert a.assignment.isdisjoint(b.assignment)
        wait_until(lambda: len(values()) == BATCH, 30, "the first batch consumed", interval=0.05)

        # a closes cleanly: it commits and leaves; b and the child take its partitions
        started = time.monotonic()
        a.close()
        wait_until(lambda: _owners(admin, "billing") == [3, 3], 20, "a's partitions moved to b and the child", interval=0.02)
        wait_until(lambda: len(b.assignment) == 3 and len(child.assignment()) == 3, 20, "b and the child reading 3 each", interval=0.02)
        moved_after_close = time.monotonic() - started
        produce(cluster, TOPIC, BATCH, BATCH)
        wait_until(lambda: len(values()) == 2 * BATCH, 30, "the second batch consumed", interval=0.05)

        # auto-commit catches up with what was processed
        wait_until(lambda: sum(p.committed_offset or 0 for p in admin.describe_group("billing").partitions) == 2 * BATCH,
                   10, "the second batch committed", interval=0.05)

        # the child is SIGKILLed: its partitions move to b once its session timed out
        child_parts = set(child.assignment())
        produce(cluster, TOPIC, 2 * BATCH, BATCH)  # some of it is in flight in the child when it dies
        child.kill(signal.SIGKILL)
        killed_at = time.monotonic()
        wait_until(lambda: _owners(admin, "billing") == [6], 30, "b owning every partition", interval=0.05)
        wait_until(lambda: len(b.assignment) == PARTITIONS, 20, "b reading all 6", interval=0.02)
        moved_after_kill = time.monotonic() - killed_at
        wait_until(lambda: len(values()) == 3 * BATCH, 30, "every record processed", interval=0.05)
        print(f"\npartitions moved {moved_after_close:.2f} s after close, {moved_after_kill:.2f} s after SIGKILL (session {SESSION_S:g} s)")
        # not before the session timed out (counted from its last heartbeat, up to one interval before the kill)
        assert moved_after_kill >= SESSION_S - HEARTBEAT_S - 0.1

        counts = values()
        assert set(counts) == set(range(3 * BATCH))  # at least once
        dups = {v for v, n in counts.items() if n > 1}
        # duplicates only where the killed member had processed past its last commit: in its
        # partitions, and per partition only a tail of what it processed
        child_seen = {(p, o): v for p, o, v in child.records()}
        b_seen = {(r.partition, r.offset): int(r.value) for r in b.records}
        dup_keys = {k for k, v in child_seen.items() if v in dups}
        assert {p for p, _ in dup_keys} <= child_parts, f"duplicates outside the killed member's partitions: {dups}"
        a_values = {int(r.value) for r in a.records}
        assert not a_values & dups, "a closed cleanly (committed): nothing it processed may be read again"
        for p in {p for p, _ in dup_keys}:
            first_dup = min(o for q, o in dup_keys if q == p)
            assert all((p, o) in b_seen for (q, o) in child_seen if q == p and o >= first_dup)
        assert all(v >= 2 * BATCH for v in dups), "only records processed after the last commit are read twice"
        print(f"{len(dups)} duplicate(s) after the SIGKILL, all past the last commit of the killed member")
        # every value has been seen (some by the killed child), but b may still be re-reading the
        # child's partitions from its last commit: close once b has caught up everywhere
        def caught_up() -> bool:
            ends = {p.partition: p.high_watermark for p in admin.describe_topic(TOPIC).partitions}
            return all(p.committed_offset == ends[p.partition] for p in admin.describe_group("billing").partitions)

        wait_until(caught_up, 20, "b caught up and committed on every partition", interval=0.05)
        b.close()
        info = admin.describe_group("billing")
        assert info.state == "Empty" and not info.members
        assert {(p.partition, p.committed_offset) for p in info.partitions} == {(p, admin.describe_topic(TOPIC).partitions[p].high_watermark) for p in range(PARTITIONS)}
    finally:
        for member in (a, b):
            if member.is_alive():
                member.close()
        if child.process.poll() is None:
            child.kill(signal.SIGKILL)
        admin.close()


def test_two_groups_each_see_every_record(cluster: Cluster) -> None:
    create_topic(cluster, "events", 3)
    produce(cluster, "events", 0, 500)
    members = {g: [Member(cluster, g, "events") for _ in range(2)] for g in ("g1", "g2")}
    for ms in members.values():
        for m in ms:
            m.start()
    try:
        for g, ms in members.items():
            wait_until(lambda ms=ms: len({int(r.value) for m in ms for r in m.records}) == 500, 30, f"{g} reading all 500", interval=0.05)
            got = Counter(int(r.value) for m in ms for r in m.records)
            assert set(got) == set(range(500)) and max(got.values()) == 1, f"{g}: duplicates without any failure"
            assert ms[0].assignment.isdisjoint(ms[1].assignment)
    finally:
        for ms in members.values():
            for m in ms:
                m.close()


def test_static_member_back_gets_its_partitions_without_a_reshuffle(cluster: Cluster, tmp_path: Path) -> None:
    create_topic(cluster, "static", 4)
    other = Member(cluster, "st", "static", group_instance_id="other")
    other.start()
    child = ChildMember(cluster, "st", "static", tmp_path / "c1.log", instance="worker-1")
    admin = Admin(cluster.bootstrap, timeout=20)
    try:
        wait_until(lambda: len(child.assignment()) == 2 and len(other.assignment) == 2, 30, "2 partitions each", interval=0.05)
        before, kept = child.assignment(), set(other.assignment)
        child.kill(signal.SIGKILL)  # comes back well within its session timeout (2 s)
        again = ChildMember(cluster, "st", "static", tmp_path / "c2.log", instance="worker-1")
        child = again
        wait_until(lambda: again.assignment() == before, 20, "the restarted static member owning its old partitions", interval=0.02)
        assert other.assignment == kept  # nobody else moved
        assert len(admin.describe_group("st").members) == 2
    finally:
        other.close()
        if child.process.poll() is None:
            child.kill(signal.SIGTERM)
        admin.close()


def test_regex_subscription_picks_up_new_topics(cluster: Cluster) -> None:
    create_topic(cluster, "logs-a", 2)
    produce(cluster, "logs-a", 0, 10)
    with Consumer(cluster.bootstrap, group_id="rx", session_timeout_ms=2000, heartbeat_interval_ms=200) as consumer:
        consumer.subscribe(pattern=r"logs-.*")
        seen: set[tuple[str, int]] = set()

        def read(n: int) -> bool:
            seen.update((r.topic, int(r.value)) for r in consumer.poll(100))
            return len(seen) >= n

        wait_until(lambda: read(10), 30, "logs-a read")
        create_topic(cluster, "logs-b", 1)
        produce(cluster, "logs-b", 100, 5)
        wait_until(lambda: read(15), 30, "logs-b picked up")
        assert consumer.assignment() == {TopicPartition("logs-a", 0), TopicPartition("logs-a", 1), TopicPartition("logs-b", 0)}


def test_members_carry_on_when_the_coordinator_worker_is_killed(cluster: Cluster) -> None:
    create_topic(cluster, "steady", 3)
    produce(cluster, "steady", 0, 300)
    member = Member(cluster, "steady-g", "steady")
    member.start()
    try:
        wait_until(lambda: len({int(r.value) for r in member.records}) == 300, 30, "the first 300 read", interval=0.05)
        client = GroupClient(cluster.bootstrap, "steady-g", timeout_s=10)
        try:
            endpoint = client.find_coordinator(10)
        finally:
            client.close()
        with Admin(cluster.bootstrap, timeout=20) as admin:
            pid = next(w.pid for w in admin.describe_cluster() if w.endpoint == endpoint)
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        produce(cluster, "steady", 300, 300)
        wait_until(lambda: len({int(r.value) for r in member.records}) == 600, 60, "all 600 read after the coordinator died", interval=0.05)
        print(f"\nall records read {time.monotonic() - killed_at:.2f} s after the coordinator's worker was killed")
        assert len(member.assignment) == 3
        with Admin(cluster.bootstrap, timeout=20) as admin:  # and the new coordinator has it as a member
            wait_until(lambda: _owners(admin, "steady-g") == [3], 30, "the member at the new coordinator", interval=0.05)
            rejoined = time.monotonic() - killed_at
        print(f"member known to the new coordinator {rejoined:.2f} s after the kill")
    finally:
        member.close()
