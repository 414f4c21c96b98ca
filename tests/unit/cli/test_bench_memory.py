"""kbroker.cli.bench.memory: RSS sampling from /proc (this process stands in for a worker)."""

from __future__ import annotations

import mmap
import os
import sys

import pytest

from kbroker.cli.bench.memory import RssSampler, rss_bytes

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_rss_of_this_process_and_of_no_process() -> None:
    assert rss_bytes(os.getpid()) > 1_000_000
    assert rss_bytes(2**22 + 12345) is None  # above any pid_max: never a process


def test_sampler_reports_start_peak_end_and_a_trend_per_worker() -> None:
    with RssSampler({0: os.getpid(), 1: 2**22 + 12345}, interval_s=60) as sampler:
        # A fresh anonymous mapping with every page touched: RSS grows by ~20 MB before the last sample.
        # (A bytearray can be carved from heap pages a long test session already holds resident.)
        ballast = mmap.mmap(-1, 20_000_000)
        for page in range(0, len(ballast), mmap.PAGESIZE):
            ballast[page] = 1
    summary = sampler.summary()
    assert list(summary) == ["worker-0"]  # the pid that cannot be read is left out
    m = summary["worker-0"]
    assert m["samples"] == 2  # one when it starts, one when it stops
    assert m["start_mb"] <= m["peak_mb"] and m["end_mb"] == m["peak_mb"]
    assert m["end_mb"] - m["start_mb"] >= 15
    assert len(m["trend_mb"]) == 10 and m["trend_mb"][0] == round(m["start_mb"], 1)
    ballast.close()
