"""Resident memory (RSS) of the broker's workers, sampled from ``/proc`` while a workload runs.

``RssSampler(pids)`` is a daemon thread reading ``VmRSS`` of every pid each ``interval_s``;
``summary()`` gives, per worker, the first, peak and last sample in MB (10**6 bytes) and the
growth over the second half of the run (last minus the sample at mid-run), which says whether the
memory stays flat. A pid that is not readable (another host, gone) is left out. Linux only:
elsewhere the summary is empty.
"""

from __future__ import annotations

import threading
from pathlib import Path

__all__ = ["RssSampler", "rss_bytes"]


def rss_bytes(pid: int) -> int | None:
    """Resident set size of ``pid`` in bytes, or None if it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class RssSampler:
    def __init__(self, pids: dict[int, int], interval_s: float = 0.5) -> None:
        self._pids = dict(pids)
        self._interval = interval_s
        self._samples: dict[int, list[int]] = {worker: [] for worker in self._pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)

    def __enter__(self) -> RssSampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._sample()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._sample()

    def _sample(self) -> None:
        for worker, pid in self._pids.items():
            rss = rss_bytes(pid)
            if rss is not None:
                self._samples[worker].append(rss)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def summary(self) -> dict[str, dict[str, float]]:
        """``{"worker-0": {"start_mb", "peak_mb", "end_mb", "growth_second_half_mb", "samples", "trend_mb"}}``
        (``trend_mb``: 10 samples evenly spread over the run, to see whether it stays flat)."""
        out: dict[str, dict[str, float]] = {}
        for worker, samples in sorted(self._samples.items()):
            if not samples:
                continue
            mid = samples[len(samples) // 2]
            out[f"worker-{worker}"] = {
                "start_mb": samples[0] / 1e6,
                "peak_mb": max(samples) / 1e6,
                "end_mb": samples[-1] / 1e6,
                "growth_second_half_mb": (samples[-1] - mid) / 1e6,
                "samples": len(samples),
                "trend_mb": [round(samples[i * (len(samples) - 1) // 9] / 1e6, 1) for i in range(10)],
            }
        return out
