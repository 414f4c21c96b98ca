"""kbroker top's pure core: snapshots -> rates and states -> rich frames (rendered with a recording Console)."""

from __future__ import annotations

from rich.console import Console

from kbroker.cli.top_groups import NOT_AVAILABLE, GroupsState
from kbroker.cli.top_model import DEAD, NO_ANSWER, OFFLINE, OK, RECOVERING, UNDER_REPLICATED, UP, PartitionMeta, Snapshot, build_frame
from kbroker.cli.top_render import ViewState, render
from kbroker.transport.client.types import ReplicaStatus, WorkerStats


def worker(wid: int, *, alive: bool = True, uptime_ms: int | None = 10_000, pid: int = 100, bytes_in: int = 0,
           bytes_out: int = 0, replicas: list[ReplicaStatus] | None = None) -> WorkerStats:  # fmt: skip
    return WorkerStats(wid, f"tcp://h:{wid}", pid + wid if alive else None, alive, uptime_ms if alive else None,
                       0, 0, bytes_in, bytes_out, replicas or [], None if alive else "not running")  # fmt: skip


def replica(topic: str, p: int, hw: int, *, leader: bool = True, size: int = 1000) -> ReplicaStatus:
    return ReplicaStatus(topic, p, leader, 3, 0, hw, hw, size)


def meta(topic: str, p: int, leader: int, replicas: tuple[int, ...], isr: tuple[int, ...] | None = None) -> PartitionMeta:
    return PartitionMeta(topic, p, leader, 3, replicas, replicas if isr is None else isr)


def healthy(at: float, hw: int, bytes_in: int, uptime_ms: int) -> Snapshot:
    workers = (
        worker(0, uptime_ms=uptime_ms, bytes_in=bytes_in, replicas=[replica("orders", 0, hw), replica("orders", 1, 0, leader=False)]),
        worker(1, uptime_ms=uptime_ms, replicas=[replica("orders", 1, 5), replica("orders", 0, hw, leader=False)]),
    )
    return Snapshot(at, workers, (meta("orders", 0, 0, (0, 1)), meta("orders", 1, 1, (1, 0))))


def text(renderable: object, width: int = 100) -> str:
    console = Console(record=True, width=width, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_rates_come_from_two_snapshots() -> None:
    frame = build_frame(healthy(10.0, 100, 5_000, 10_000), healthy(12.0, 300, 9_000, 12_000))
    w0 = frame.workers[0]
    assert (w0.state, w0.partitions_led, w0.bytes_in_per_s) == (UP, 1, 2_000.0)
    p0 = frame.partitions[0]
    assert (p0.state, p0.high_watermark, p0.records_per_s, p0.size_bytes) == (OK, 300, 100.0, 1000)
    assert frame.partitions[1].records_per_s == 0.0 and frame.interval_s == 2.0


def test_no_rates_from_a_single_snapshot_or_across_a_restart() -> None:
    assert build_frame(None, healthy(1.0, 10, 10, 1_000)).workers[0].bytes_in_per_s is None
    restarted = build_frame(healthy(10.0, 100, 5_000, 50_000), healthy(11.0, 100, 10, 500))
    assert restarted.workers[0].bytes_in_per_s is None  # uptime went back: another process


def test_a_dead_worker_makes_partitions_offline_or_under_replicated() -> None:
    workers = (worker(0, alive=False), worker(1, replicas=[replica("orders", 1, 5)]))
    current = Snapshot(5.0, workers, (meta("orders", 0, 0, (0, 1), (0, 1)), meta("orders", 1, 1, (1, 0), (1,))))
    frame = build_frame(None, current)
    assert [w.state for w in frame.workers] == [DEAD, UP]
    assert [p.state for p in frame.partitions] == [OFFLINE, UNDER_REPLICATED]
    assert (frame.offline, frame.under_replicated) == (1, 1)
    screen = text(render(frame, bootstrap="tcp://h:7092", width=100))
    assert "workers 1/2 alive" in screen and "dead" in screen and "offline" in screen and "under-replicated" in screen
    assert "1,0*" in screen  # worker 0 out of sync on orders-1


def test_a_restarted_worker_is_recovering_until_back_in_the_isr() -> None:
    workers = (worker(0, uptime_ms=300, replicas=[replica("orders", 0, 3, leader=False)]), worker(1, replicas=[replica("orders", 0, 9)]))
    catching_up = Snapshot(1.0, workers, (meta("orders", 0, 1, (0, 1), (1,)),))
    assert build_frame(None, catching_up).workers[0].state == RECOVERING
    back = Snapshot(2.0, workers, (meta("orders", 0, 1, (0, 1), (1, 0)),))
    assert build_frame(None, back).workers[0].state == UP
    silent = Snapshot(3.0, (worker(0, uptime_ms=None), workers[1]), back.partitions)
    assert build_frame(None, silent).workers[0].state == NO_ANSWER


def test_views_and_topic_filter() -> None:
    current = healthy(2.0, 7, 0, 2_000)
    current = Snapshot(current.at, current.workers, current.partitions + (meta("clicks", 0, 1, (1,)),))
    frame = build_frame(None, current)
    state = ViewState()
    assert "Workers" in text(render(frame, bootstrap="b", view=state)) and "clicks-0" in text(render(frame, bootstrap="b", view=state))
    for key in "/clicks\r":
        assert state.key(key)
    assert state.topic == "clicks"
    screen = text(render(frame, bootstrap="b", view=state))
    assert "clicks-0" in screen and "orders-0" not in screen and "topic: clicks" in screen
    state.key("w")
    assert "Partitions" not in text(render(frame, bootstrap="b", view=state))
    state.key("\x1b")
    assert state.topic is None and state.key("q") is False


def test_overview_fits_the_height_and_says_what_it_hid() -> None:
    parts = tuple(meta("many", p, 0, (0,)) for p in range(40))
    frame = build_frame(None, Snapshot(1.0, (worker(0),), parts))
    screen = text(render(frame, bootstrap="b", width=100, height=30))
    assert "more partitions: press p" in screen
    assert len(screen.splitlines()) <= 30


def test_narrow_screens_keep_one_line_per_row() -> None:
    frame = build_frame(healthy(1.0, 1, 0, 1_000), healthy(2.0, 2, 100, 2_000))
    wide = text(render(frame, bootstrap="tcp://127.0.0.1:7092", width=100), 100)
    narrow = text(render(frame, bootstrap="tcp://127.0.0.1:7092", width=50), 50)
    assert "Size" in wide and "Size" not in narrow
    assert all(len(line) <= 50 for line in narrow.splitlines())
    assert "orders-0" in narrow and "orders-1" in narrow


def test_groups_unavailable_is_said_plainly() -> None:
    frame = build_frame(None, Snapshot(1.0, (worker(0),), (), GroupsState()))
    assert NOT_AVAILABLE in text(render(frame, bootstrap="b"))
