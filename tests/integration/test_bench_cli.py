"""``kbroker bench`` end to end, tiny counts: its own broker, a ``--bootstrap`` broker, Redis.

Each run is the real command in a subprocess (``python -m kbroker.cli.main bench ... --json``);
the JSON document's fields and the exit code are checked. The compare run needs Debian's
``redis-server`` and redis-py and is skipped cleanly without them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from _cluster import Cluster

RUN_TIMEOUT = 90


def bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kbroker.cli.main", "bench", *args],
        capture_output=True, text=True, timeout=RUN_TIMEOUT, env=env,
    )  # fmt: skip


def report_of(proc: subprocess.CompletedProcess[str]) -> dict:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return json.loads(proc.stdout)


def check_throughput(result: dict, records: int, record_size: int) -> None:
    assert result["records"] >= records
    assert result["seconds"] > 0 and result["records_per_s"] > 0
    assert result["mb_per_s"] == pytest.approx(result["records"] * record_size / result["seconds"] / 1e6)


def test_produce_against_its_own_broker() -> None:
    report = report_of(bench("produce", "--records", "2000", "--workers", "1", "--partitions", "2", "--json"))
    assert report["command"] == "produce"
    assert report["broker"]["own"] is True and report["broker"]["workers"] == 1
    assert 0 < report["broker"]["startup_s"] < 60
    assert report["machine"]["cpus"] >= 1 and len(report["machine"]["loadavg"]) == 3
    (result,) = report["results"]
    assert result["workload"].startswith("produce acks=1 RF1 2p 100B")
    check_throughput(result, 2000, 100)
    assert result["records"] == 2000
    (memory,) = result["memory"].values()  # one worker, sampled from /proc
    assert 0 < memory["start_mb"] <= memory["peak_mb"] and memory["end_mb"] <= memory["peak_mb"]


def test_produce_consume_and_latency_against_a_running_broker(cluster: Cluster) -> None:
    common = ("--bootstrap", cluster.bootstrap, "--json", "--partitions", "3")
    report = report_of(bench("produce", "--records", "2000", "--acks", "all", "--replication-factor", "3",
                             "--keys", "10", "--compression", "zstd", "--repeat", "2", *common))  # fmt: skip
    assert report["broker"] == {"bootstrap": cluster.bootstrap, "own": False, "workers": 3}
    (result,) = report["results"]
    assert result["workload"].startswith("produce acks=all RF3 3p 100B")
    check_throughput(result, 2000, 100)
    assert len(result["runs"]) == 2 and len(result["memory"]) == 3

    report = report_of(bench("consume", "--records", "2000", "--record-size", "50", *common))
    (result,) = report["results"]
    assert result["workload"] == "consume 3p RF1"
    check_throughput(result, 2000, 50)

    report = report_of(bench("produce", "--records", "2000", "--producers", "2", "--rate", "20000", *common))
    (result,) = report["results"]
    assert result["workload"] == "produce acks=1 RF1 3p 100B, 2 producers"
    assert result["records"] == 2000 and result["records_per_s"] <= 20_000 * 1.2  # --rate is the total

    report = report_of(bench("consume", "--records", "2000", "--consumers", "2", *common))
    (result,) = report["results"]
    assert result["workload"] == "consume 3p RF1, 2 consumers"
    check_throughput(result, 2000, 100)

    for pacing, label in ((["--pace-ms", "0"], ", pace 0 ms"), ([], "")):  # a record at a time; Kafka's 2 ms bursts
        args = ("--records", "600", "--rate", "3000", "--max-in-flight", "1", *pacing)
        report = report_of(bench("latency", *args, *common))
        assert report["options"]["max_in_flight"] == 1
        (result,) = report["results"]
        assert result["workload"] == "latency acks=all RF3 3p 100B, max_in_flight 1" + label
        assert result["count"] == 600 and result["rate"] == 3000
        assert result["achieved_rate"] <= 3000 * 1.2  # paced either way
        assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["p99_9_ms"] <= result["max_ms"]
        assert 0 < result["ack"]["p50_ms"] <= result["ack"]["max_ms"]


def test_compare_without_redis_server_on_path_exits_2(tmp_path: Path) -> None:
    env = dict(os.environ, PATH=str(tmp_path))  # an empty directory: no redis-server anywhere
    proc = bench("compare", "--records", "1000", env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "redis-server is not on PATH" in proc.stderr
    assert "apt-get install redis-server" in proc.stderr and "kbroker[bench]" in proc.stderr
    assert proc.stdout == ""


def _redis_available() -> bool:
    try:
        import redis  # noqa: F401
    except ImportError:
        return False
    return shutil.which("redis-server") is not None


@pytest.mark.skipif(not _redis_available(), reason="needs Debian's redis-server and redis-py (pip install 'kbroker[bench]')")
def test_tiny_compare_with_redis() -> None:
    report = report_of(bench("compare", "--records", "2000", "--repeat", "1", "--workers", "3", "--json"))
    rows = {row["unit"] + " " + row["peer"].split()[0]: row for row in report["comparison"]}
    assert len(report["comparison"]) == 6
    for row in report["comparison"]:
        assert row["kbroker"] > 0 and row["peer_value"] > 0
        assert row["ratio"] == pytest.approx(row["kbroker"] / row["peer_value"])
        assert isinstance(row["met"], bool) or (row["target"] is None and row["met"] is None)
        assert len(row["round_ratios"]) == 1 and row["round_ratios"][0] == pytest.approx(row["ratio"])
    assert "MB/s raw" in rows
    assert report["peers"]["redis_xadd"]["records"] == 2000
    assert report["peers"]["redis_xread"]["records"] == 2000
    assert report["peers"]["zmq_loopback"]["mb_per_s"] > 0
    assert report["peers"]["file_append"]["mb_per_s"] > 0 and report["comparison"][5]["peer"].startswith("raw file append")
    assert "send_many 1000" in report["comparison"][1]["workload"]
