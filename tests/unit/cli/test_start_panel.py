"""The `kbroker start` live panel's pure parts: the log tail, compact log lines, the panel itself."""

from __future__ import annotations

from rich.console import Console

from kbroker.cli.start_panel import LogTail, compact_log_line, panel_renderable
from kbroker.cli.top_model import PartitionMeta, Snapshot, build_frame
from kbroker.transport.client.types import WorkerStats


def text(renderable: object, width: int) -> str:
    console = Console(record=True, width=width, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_the_tail_keeps_the_last_lines_and_finds_the_supervisors_endpoint() -> None:
    tail = LogTail(keep=3)
    tail.add("12:00:00.000 INFO    [worker-0] kbroker.actors.worker: worker 0 listening on tcp://127.0.0.1:5555 (pid 1)")
    assert tail.bootstrap is None  # a worker's endpoint is not the bootstrap
    tail.add("12:00:00.001 INFO    [supervisor] kbroker.actors.supervisor: listening on tcp://127.0.0.1:7092 (cluster x)")
    for i in range(3):
        tail.add(f"line {i}")
    assert tail.bootstrap == "tcp://127.0.0.1:7092"
    assert tail.last(2) == ["line 1", "line 2"] and tail.last(10) == ["line 0", "line 1", "line 2"] and tail.last(0) == []


def test_log_lines_are_compacted_for_the_panel() -> None:
    assert compact_log_line("12:00:01.123 INFO    [worker-1] kbroker.actors.worker: registered").plain == "12:00:01 worker-1: registered"
    assert compact_log_line("12:00:01.123 ERROR   [supervisor] kbroker.x: bad").plain == "12:00:01 supervisor: ERROR bad"
    assert compact_log_line("  File \"x.py\", line 1").plain == "  File \"x.py\", line 1"


def test_the_panel_shows_workers_leaders_and_problems() -> None:
    workers = (
        WorkerStats(0, "tcp://h:1", 11, True, 5000, 1, 0, 100, 0, []),
        WorkerStats(1, "tcp://h:2", None, False, None, 0, 0, 0, 0, [], "not running"),
    )
    frame = build_frame(None, Snapshot(1.0, workers, (PartitionMeta("t", 0, 0, 2, (0, 1), (0,)),)))
    shown = text(panel_renderable(frame, "tcp://h:7092", 100), 100)
    assert "workers 1/2 alive" in shown and "leaders 0:1, 1:0" in shown and "t-0 under-replicated" in shown and "dead" in shown
    narrow = text(panel_renderable(frame, "tcp://h:7092", 40), 40)
    assert all(len(line) <= 40 for line in narrow.splitlines()) and "dead" in narrow
    assert "starting" in text(panel_renderable(None, None, 60), 60)
