"""kbroker.cli.bench.zmq_baseline: the raw ZeroMQ loopback run (a spawned PULL process, tiny)."""

from __future__ import annotations

from kbroker.cli.bench.zmq_baseline import loopback_bandwidth


def test_loopback_bandwidth_counts_every_byte() -> None:
    result = loopback_bandwidth(65_536, frames=20, timeout_s=60)
    assert result["frame_bytes"] == 65_536 and result["frames"] == 20
    assert result["seconds"] > 0
    assert result["mb_per_s"] == 65_536 * 20 / result["seconds"] / 1e6
