"""Fixtures for integration tests: a real ``kbroker start`` in a subprocess, on a free port.

``cluster`` is a running broker with 3 workers (``@pytest.mark.cluster(workers=2, args=[...])``
changes that); ``start_cluster(...)`` starts more, or with other flags. Each broker runs in its
own session (process group) with a tmp data dir and ``--port 0`` (see ``_cluster.py``).
Teardown sends SIGTERM, asserts exit code 0, and asserts that every worker process the broker
ever started has exited (no orphans); whatever is left is SIGKILLed (the process group this
fixture created) so one failure cannot leak into the next test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from _cluster import Cluster, force_cleanup, launch


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cluster(workers=3, args=[]): options for the `cluster` fixture")


@pytest.fixture
def start_cluster(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    """Start brokers: ``start_cluster(workers=3, args=(), data_dir=None, ready=True)``."""
    clusters: list[Cluster] = []

    def start(workers: int = 3, args: tuple[str, ...] | list[str] = (), data_dir: Path | None = None, ready: bool = True) -> Cluster:
        directory = data_dir if data_dir is not None else tmp_path / f"data-{len(clusters)}"
        cluster = launch(directory, workers, args, ready)
        clusters.append(cluster)
        return cluster

    yield start

    failures = []
    for cluster in reversed(clusters):
        try:
            if cluster.process.poll() is None:
                code = cluster.stop()
                assert code == 0, f"the broker exited with {code} after SIGTERM; output:\n{cluster.output.text()}"
            cluster.assert_no_orphans()
        except AssertionError as exc:
            failures.append(str(exc))
        finally:
            force_cleanup(cluster)
    if failures:
        pytest.fail("\n\n".join(failures))


@pytest.fixture
def cluster(start_cluster: Callable[..., Cluster], request: pytest.FixtureRequest) -> Cluster:
    """A ready broker with 3 workers (or as ``@pytest.mark.cluster(workers=..., args=[...])`` says)."""
    marker = request.node.get_closest_marker("cluster")
    return start_cluster(**(marker.kwargs if marker else {}))
