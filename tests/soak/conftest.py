"""The soak test runs only on demand (``make soak``, or KBROKER_SOAK=1): it takes minutes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))  # _cluster, _failover

collect_ignore_glob = [] if os.environ.get("KBROKER_SOAK") else ["test_*.py"]

from typing import Callable, Iterator  # noqa: E402

import pytest  # noqa: E402

from _cluster import Cluster, force_cleanup, launch  # noqa: E402


@pytest.fixture
def start_cluster(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    """``start_cluster(workers=3, args=(), data_dir=None)``: a real broker, stopped (SIGTERM) after the test."""
    clusters: list[Cluster] = []

    def start(workers: int = 3, args: tuple[str, ...] = (), data_dir: Path | None = None) -> Cluster:
        cluster = launch(data_dir or tmp_path / f"data-{len(clusters)}", workers, args)
        clusters.append(cluster)
        return cluster

    yield start
    for cluster in clusters:
        try:
            if cluster.process.poll() is None:
                cluster.stop()
        finally:
            force_cleanup(cluster)
