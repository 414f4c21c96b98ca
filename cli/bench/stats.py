"""Pure arithmetic of the benchmark: percentiles, rates, medians of runs, ratios.

No clocks, no I/O: every function takes numbers and returns numbers (or small dicts of them), so
the figures the benchmark prints can be checked by unit tests.

- ``percentile`` is the nearest-rank percentile (as Kafka's perf tools report): the smallest
  sample with at least ``pct`` % of the samples at or below it.
- ``median_run`` picks, of N runs of one workload, the run whose headline figure is the median
  (so its other figures stay consistent with each other), and records every run's figure.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Mapping, Sequence

__all__ = ["percentile", "latency_summary", "rates", "median_run", "ratio"]

LATENCY_PERCENTILES = (50.0, 99.0, 99.9)


def percentile(sorted_samples: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of samples sorted ascending; ``pct`` in (0, 100]."""
    if not sorted_samples:
        raise ValueError("percentile of no samples")
    if not 0 < pct <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {pct}")
    rank = math.ceil(pct / 100 * len(sorted_samples))
    return sorted_samples[min(len(sorted_samples), max(1, rank)) - 1]


def _pct_name(pct: float) -> str:
    text = f"{pct:g}".replace(".", "_")
    return f"p{text}_ms"


def latency_summary(samples_ms: Sequence[float]) -> dict[str, float]:
    """count, p50/p99/p99.9/max/mean in ms of unsorted latency samples."""
    ordered = sorted(samples_ms)
    if not ordered:
        raise ValueError("no latency samples")
    summary: dict[str, float] = {"count": len(ordered)}
    for pct in LATENCY_PERCENTILES:
        summary[_pct_name(pct)] = percentile(ordered, pct)
    summary["max_ms"] = ordered[-1]
    summary["mean_ms"] = statistics.fmean(ordered)
    return summary


def rates(records: int, record_bytes: int, seconds: float) -> dict[str, float]:
    """Throughput of ``records`` of ``record_bytes`` value bytes each in ``seconds``.

    MB/s counts value bytes (1 MB = 10**6 bytes), as Kafka's perf tools count record sizes.
    """
    if seconds <= 0:
        raise ValueError(f"a run must take some time, got {seconds} s")
    return {
        "records": records,
        "seconds": seconds,
        "records_per_s": records / seconds,
        "mb_per_s": records * record_bytes / seconds / 1e6,
    }


def median_run(runs: Sequence[Mapping[str, Any]], key: str = "records_per_s") -> dict[str, Any]:
    """The run with the median ``key`` (the lower middle one for an even count), plus ``runs``:
    every run's ``key`` in run order."""
    if not runs:
        raise ValueError("no runs")
    order = sorted(range(len(runs)), key=lambda i: runs[i][key])
    chosen = dict(runs[order[(len(order) - 1) // 2]])
    chosen["runs"] = [run[key] for run in runs]
    return chosen


def ratio(ours: float, theirs: float) -> float | None:
    """ours / theirs, or None when the peer's figure is zero (nothing to compare against)."""
    if theirs == 0:
        return None
    return ours / theirs
