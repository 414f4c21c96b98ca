"""Two in-process workers (_replica_cluster) each running a GroupCoordinator, with ``topics`` assigned."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pykka

from _replica_cluster import Cluster
from kbroker.actors.group_coordinator import GroupCoordinator
from kbroker.transport.envelope import Address
from kbroker.transport.messages_groups import GROUP_COORDINATOR


@contextmanager
def coordinated_cluster(tmp_path: Path, *topics: Any, workers: int = 2) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    refs = []
    for w in range(workers):
        worker = c.start_worker(w)
        ref = GroupCoordinator.start(worker_id=w, cache=worker.cache, directory=worker.directory, tick_interval=0.02)
        worker.io.register(GROUP_COORDINATOR, ref, accepts=GroupCoordinator.ACCEPTS)
        refs.append(ref)
    for topic in topics:
        c.assign(topic)
    try:
        yield c
    finally:
        for w, ref in enumerate(refs):
            c.workers[w].io.unregister(GROUP_COORDINATOR)
            try:
                ref.stop(timeout=5)
            except pykka.ActorDeadError:
                pass
        c.stop()


def coordinator_at(cluster: Cluster, w: int) -> Address:
    return Address(cluster.workers[w].endpoint, GROUP_COORDINATOR)
