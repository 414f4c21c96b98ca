"""``Admin.describe_worker_stats()``: ask every live worker for its counters and replicas, in parallel.

    Admin ──DescribeCluster──▶ bootstrap          (which workers, their endpoints, pids)
          ──DescribeWorkerStats──▶ each live worker's endpoint, all sent before any is awaited

One ``Connection`` per worker endpoint, kept by the caller between calls (``connections``). A
worker that does not answer within ``timeout`` (dead, stopped, busy) costs at most ``timeout``
for the whole call, not per worker; its connection is replaced so a late answer cannot be taken
for the next one. Not thread-safe: the Admin calls it under its lock.
"""

from __future__ import annotations

import time
from typing import Any, MutableMapping

from kbroker.errors import KBrokerError, RequestTimedOutError, UnknownError, error_for_code
from kbroker.transport.client.types import ReplicaStatus, WorkerInfo, WorkerStats
from kbroker.transport.connection import Connection
from kbroker.transport.messages_admin import DescribeWorkerStats, DescribeWorkerStatsResponse
from kbroker.transport.messages_client import ErrorResponse

__all__ = ["gather_worker_stats"]


def _missing(worker: WorkerInfo, why: str) -> WorkerStats:
    return WorkerStats(worker.id, worker.endpoint, worker.pid, worker.alive, None, 0, 0, 0, 0, [], why)


def _from_reply(worker: WorkerInfo, reply: DescribeWorkerStatsResponse) -> WorkerStats:
    replicas = [
        ReplicaStatus(r.topic, r.partition, r.is_leader, r.leader_epoch, r.log_start_offset, r.high_watermark, r.log_end_offset, r.size_bytes)
        for r in reply.replicas
    ]
    return WorkerStats(
        worker.id, worker.endpoint, worker.pid, worker.alive, reply.uptime_ms,
        reply.produce_requests, reply.fetch_requests, reply.bytes_in, reply.bytes_out, replicas,
    )  # fmt: skip


def gather_worker_stats(
    workers: list[WorkerInfo], connections: MutableMapping[str, Connection], timeout: float, *, socket_setup: Any = None
) -> list[WorkerStats]:
    """One ``WorkerStats`` per worker, in the order given; see the module docstring."""
    out: dict[int, WorkerStats] = {}
    sent: dict[int, tuple[Connection, int]] = {}
    for worker in workers:
        if not worker.alive or not worker.endpoint:
            out[worker.id] = _missing(worker, "not running")
            continue
        conn = connections.get(worker.endpoint)
        if conn is None or conn.closed:
            conn = connections[worker.endpoint] = Connection(worker.endpoint, timeout=timeout, socket_setup=socket_setup)
        try:
            sent[worker.id] = (conn, conn.send(DescribeWorkerStats(), timeout=timeout))
        except KBrokerError as exc:
            conn.reconnect()
            out[worker.id] = _missing(worker, exc.message)
    deadline = time.monotonic() + timeout
    by_id = {w.id: w for w in workers}
    for worker_id, (conn, correlation_id) in sent.items():
        worker = by_id[worker_id]
        try:
            out[worker_id] = _from_reply(worker, _await(conn, correlation_id, deadline))
        except KBrokerError as exc:
            out[worker_id] = _missing(worker, exc.message or type(exc).__name__)
    return [out[w.id] for w in workers]


def _await(conn: Connection, correlation_id: int, deadline: float) -> DescribeWorkerStatsResponse:
    while True:
        remaining = deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise RequestTimedOutError()
            got, reply = conn.receive(remaining)
        except RequestTimedOutError:
            conn.reconnect()
            raise RequestTimedOutError(f"no answer from {conn.endpoint} in time") from None
        if got != correlation_id:
            continue
        if isinstance(reply, ErrorResponse):
            raise error_for_code(reply.code, reply.message)
        if not isinstance(reply, DescribeWorkerStatsResponse):
            raise UnknownError(f"expected DescribeWorkerStatsResponse, got {type(reply).__name__}")
        return reply
