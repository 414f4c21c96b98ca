"""gather_worker_stats: workers asked in parallel; a silent or dead one costs one timeout, not the call."""

from __future__ import annotations

import time

import zmq

from kbroker.transport.client.types import WorkerInfo
from kbroker.transport.client.worker_stats import gather_worker_stats
from kbroker.transport.connection import Connection


def test_silent_and_dead_workers_come_back_with_an_error_within_one_timeout() -> None:
    context = zmq.Context.instance()
    silent = [context.socket(zmq.ROUTER) for _ in range(2)]  # accept connections, never answer
    connections: dict[str, Connection] = {}
    try:
        endpoints = [f"tcp://127.0.0.1:{s.bind_to_random_port('tcp://127.0.0.1')}" for s in silent]
        workers = [WorkerInfo(0, endpoints[0], 10, True), WorkerInfo(1, "", None, False), WorkerInfo(2, endpoints[1], 12, True)]
        started = time.monotonic()
        stats = gather_worker_stats(workers, connections, timeout=0.4)
        took = time.monotonic() - started
        assert took < 0.75  # the two silent workers were waited for together (one after the other: >= 0.8 s)
        assert [s.id for s in stats] == [0, 1, 2]
        assert stats[1].error == "not running" and stats[1].uptime_ms is None
        for s in (stats[0], stats[2]):
            assert s.uptime_ms is None and s.replicas == [] and "no answer" in (s.error or "")
            assert (s.pid, s.alive) in ((10, True), (12, True))
        assert set(connections) == set(endpoints)  # kept for the next call
    finally:
        for conn in connections.values():
            conn.close()
        for s in silent:
            s.close(linger=0)
