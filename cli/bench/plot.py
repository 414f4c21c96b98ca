"""``--plot PATH``: throughput against record size and latency against rate, as one PNG.

Two sweeps on the session's broker (acks=1 RF1 produce over ``SIZES``; acks=all end-to-end latency
over ``RATES``), drawn with matplotlib (part of the optional ``bench`` extra; ``available()`` says
whether it is installed, so the command can refuse early with exit code 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kbroker.cli.bench import suite
from kbroker.cli.bench.options import BenchOptions

__all__ = ["available", "sweep", "draw", "SIZES", "RATES"]

SIZES = (10, 100, 1_000, 10_000, 100_000)
RATES = (1_000, 2_000, 5_000, 10_000, 20_000)
SWEEP_BYTES = 200_000_000  # value bytes per size point
LATENCY_SECONDS = 3


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def sweep(session: suite.Session, opts: BenchOptions) -> dict[str, list[dict[str, Any]]]:
    rf = min(3, len(session.workers()))
    sizes = []
    for size in SIZES:
        records = max(1_000, min(opts.records, SWEEP_BYTES // size))
        run = suite.run_produce(session, opts.with_(acks="1", replication_factor=1, record_size=size, records=records, repeat=1))
        sizes.append({"record_size": size, "records_per_s": run["records_per_s"], "mb_per_s": run["mb_per_s"]})
    rates = []
    for rate in RATES:
        lat_opts = opts.with_(acks="all", replication_factor=rf, partitions=1, rate=float(rate), records=rate * LATENCY_SECONDS)
        run = suite.run_latency(session, lat_opts)
        rates.append({"rate": rate, "p50_ms": run["p50_ms"], "p99_ms": run["p99_ms"], "p99_9_ms": run["p99_9_ms"]})
    return {"sizes": sizes, "rates": rates, "replication_factor": rf}


def draw(data: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    sizes = [p["record_size"] for p in data["sizes"]]
    left.plot(sizes, [p["mb_per_s"] for p in data["sizes"]], "o-", label="MB/s")
    left.set_xscale("log")
    left.set_xlabel("record size (bytes)")
    left.set_ylabel("MB/s of values")
    twin = left.twinx()
    twin.plot(sizes, [p["records_per_s"] / 1000 for p in data["sizes"]], "s--", color="tab:orange", label="k records/s")
    twin.set_ylabel("k records/s")
    left.set_title("produce throughput, acks=1 RF1")
    rates = [p["rate"] for p in data["rates"]]
    for key, label in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p99_9_ms", "p99.9")):
        right.plot(rates, [p[key] for p in data["rates"]], "o-", label=label)
    right.set_xlabel("target rate (records/s)")
    right.set_ylabel("end-to-end latency (ms)")
    right.set_title(f"latency, acks=all RF{data['replication_factor']}")
    right.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
