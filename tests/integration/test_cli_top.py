"""``kbroker top`` against a real broker: frames rendered from real cluster state (rich's console
capture) while a worker dies and comes back, consumer group lag, and the live screen under a real
pseudo-terminal (keys, a fenced worker shown, quit)."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest
from rich.console import Console

from _cluster import Cluster, wait_until
from _pty_terminal import PtyProcess
from kbroker import Admin, Consumer, Producer
from kbroker.cli.top_groups import LagHistory
from kbroker.cli.top_model import DEAD, OK, RECOVERING, UNDER_REPLICATED, UP, Frame, Snapshot, build_frame, collect
from kbroker.cli.top_render import ViewState, render


def screen(frame: Frame, bootstrap: str, width: int = 100, view: str = "overview") -> str:
    console = Console(record=True, width=width, color_system=None)
    console.print(render(frame, bootstrap=bootstrap, view=ViewState(view=view), width=width))
    return console.export_text()


def setup_topic(cluster: Cluster, name: str, partitions: int, records: int) -> Admin:
    admin = Admin(cluster.bootstrap, timeout=10)
    admin.create_topic(name, partitions=partitions, replication_factor=3)
    with Producer(cluster.bootstrap) as producer:
        for i in range(records):
            producer.send(name, b"v%d" % i, partition=i % partitions)
        producer.flush(30)
    return admin


def test_frames_show_leaders_then_a_killed_worker_then_its_recovery(cluster: Cluster) -> None:
    admin = setup_topic(cluster, "watched", 6, 60)
    try:
        def settled() -> Frame | None:  # every high watermark reported by its leader
            frame = build_frame(None, collect(admin, time.monotonic()))
            return frame if all(p.high_watermark == 10 and p.state == OK for p in frame.partitions) else None

        frame = wait_until(settled, 20, "every partition at high watermark 10", interval=0.05)
        leaders = {p.partition: p.leader for p in admin.describe_topic("watched").partitions}
        assert {p.partition: p.leader for p in frame.partitions} == leaders
        assert sum(w.partitions_led for w in frame.workers) == 6 and all(w.state == UP for w in frame.workers)
        text = screen(frame, cluster.bootstrap)
        assert "workers 3/3 alive" in text and "under-replicated 0" in text
        for p in frame.partitions:
            assert f"watched-{p.partition}" in text

        victim = frame.partitions[0].leader
        os.kill(cluster.alive_pids()[victim], signal.SIGKILL)
        seen: set[str] = set()
        degraded: list[Frame] = []
        previous: Snapshot | None = None

        def healed() -> bool:
            nonlocal previous
            current = collect(admin, time.monotonic())
            frame = build_frame(previous, current)
            previous = current
            state = frame.workers[victim].state
            seen.add(state)
            if frame.under_replicated or state in (DEAD, RECOVERING):
                degraded.append(frame)
            return bool(seen & {DEAD, RECOVERING}) and state == UP and frame.under_replicated == 0 and frame.offline == 0

        wait_until(healed, 30, f"worker {victim} dead or recovering, then up with full ISRs", interval=0.02)
        assert degraded, "no frame showed the killed worker's absence"
        worst = max(degraded, key=lambda f: f.under_replicated)
        assert worst.under_replicated > 0
        text = screen(worst, cluster.bootstrap)
        assert UNDER_REPLICATED in text and f"{victim}*" in text  # the dead worker is out of sync
        assert all(p.leader != victim for p in worst.partitions if p.state == UNDER_REPLICATED and p.leader >= 0)
    finally:
        admin.close()


def test_group_lag_is_shown_per_partition_and_in_total(cluster: Cluster) -> None:
    admin = setup_topic(cluster, "lagged", 1, 20)
    try:
        with Consumer(cluster.bootstrap, group_id="slowpokes", max_poll_records=5, enable_auto_commit=False) as consumer:
            consumer.subscribe(["lagged"])
            got: list = []
            wait_until(lambda: got.extend(consumer.poll(200)) or len(got) >= 5, 30, "the group's first records")
            consumer.commit()
            committed = consumer.committed(got[0].topic_partition)
        assert committed is not None and 5 <= committed < 20

        def lagging() -> Frame | None:
            frame = build_frame(None, collect(admin, time.monotonic()))
            groups = {g.group_id: g for g in frame.groups.groups}
            return frame if "slowpokes" in groups and groups["slowpokes"].partitions else None

        frame = wait_until(lagging, 30, "group slowpokes in the frame", interval=0.1)
        [part] = next(g for g in frame.groups.groups if g.group_id == "slowpokes").partitions
        assert (part.topic, part.partition, part.committed_offset, part.high_watermark, part.lag) == ("lagged", 0, committed, 20, 20 - committed)
        history = LagHistory()
        history.update(frame.groups.groups)
        console = Console(record=True, width=100, color_system=None)
        console.print(render(frame, bootstrap=cluster.bootstrap, view=ViewState(view="groups"), history=history))
        text = console.export_text()
        assert "slowpokes" in text and "lagged-0" in text and str(20 - committed) in text
    finally:
        admin.close()


@pytest.mark.cluster(workers=3, args=["--session-timeout-ms", "1000"])
def test_live_screen_under_a_pseudo_terminal(cluster: Cluster) -> None:
    setup_topic(cluster, "live", 3, 30).close()
    term = PtyProcess([sys.executable, "-m", "kbroker.cli.main", "top", "--interval", "0.2", "-b", cluster.bootstrap], columns=100, rows=30)
    try:
        term.wait_for(r"live-2 +\│ +\d", 30)
        term.wait_for(r"workers 3/3 alive", 10)
        mark = term.mark()
        term.send("p")
        term.wait_for(r"view: partitions", 10, since=mark)
        pid = cluster.alive_pids()[1]
        mark = term.mark()
        os.kill(pid, signal.SIGSTOP)  # alive as a process, silent: fenced after the session timeout
        try:
            term.wait_for(r"under-replicated [1-9]", 20, since=mark)
            term.send("w")
            term.wait_for(r"│ 1 │ (dead|no answer)", 20, since=mark)
        finally:
            os.kill(pid, signal.SIGCONT)
        mark = term.mark()
        term.wait_for(r"workers 3/3 alive  topics \d+  partitions \d+  under-replicated 0", 30, since=mark)
        term.send("q")
        assert term.wait(10) == 0
    finally:
        term.close()
