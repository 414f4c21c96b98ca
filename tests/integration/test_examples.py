"""Every example in examples/ runs with small counts and exits 0 (each starts its own broker)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(script: str, *args: str, timeout: float = 110) -> str:
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{script} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.timeout(120)
def test_failover_demo() -> None:
    out = _run("failover_demo.py", "--records", "500")
    assert "produce going again" in out and "0 lost, 0 duplicated, 0 keys out of order" in out


def test_latest_state() -> None:
    out = _run("latest_state.py", "--users", "50", "--updates", "10", "--wait", "8")
    assert "equals the latest value of every key" in out


def test_iot_devices() -> None:
    out = _run("iot_devices.py", "--devices", "20", "--readings", "10")
    assert "arrived out of order: 0" in out


def test_order_pipeline() -> None:
    out = _run("order_pipeline.py", "--orders", "60")
    assert "60 distinct orders shipped" in out


def test_replay() -> None:
    out = _run("replay.py", "--events", "300")
    assert "replayed 300 events from offset 0 (in order per key)" in out
