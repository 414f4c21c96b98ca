"""``kbroker start`` on a terminal: the live panel above the log lines, under a real pseudo-terminal;
and plain log lines when stdout is not a terminal (the other integration tests' broker)."""

from __future__ import annotations

import signal
from pathlib import Path

from _cluster import Cluster, broker_command
from _pty_terminal import PtyProcess


def test_the_live_panel_shows_workers_above_the_logs_and_the_logs_stay(tmp_path: Path) -> None:
    term = PtyProcess(broker_command(tmp_path / "data", 2), columns=100, rows=30)
    try:
        term.wait_for(r"kbroker start \(Ctrl-C stops\)", 30)
        term.wait_for(r"workers 2/2 alive", 30)
        term.wait_for(r"ready in \d+\.\d+ s", 10)  # log lines below the panel
        term.process.send_signal(signal.SIGTERM)
        assert term.wait(30) == 0
        text = term.text()
        assert text.rstrip().endswith("stopped")  # the terminal is given back with the last log lines, in full
        assert "Traceback" not in text
    finally:
        term.close()


def test_without_a_terminal_the_logs_are_plain(cluster: Cluster) -> None:
    lines = cluster.output.lines
    assert any("ready in" in line for line in lines)
    assert not any("╭" in line or "\x1b[" in line for line in lines)
