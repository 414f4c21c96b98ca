"""What a worker reports about itself to ``DescribeWorkerStats`` (for ``kbroker top``).

    client ──DescribeWorkerStats──▶ Gateway ──StatsAsk(envelope, counters)──▶ ReplicaManager
                                                                        └──▶ DescribeWorkerStatsResponse

The gateway counts client traffic (``GatewayCounters``: produce and fetch requests, record batch
bytes in and out) and hands a snapshot of its counters, with the request's envelope, to the
replica manager, which adds every replica's state and size and answers. Counters only grow,
from 0 when the worker process starts; rates are computed by the reader from two answers.

Pure: data and one function building the answer; no sockets, no threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from kbroker.transport.envelope import Envelope
from kbroker.transport.messages_admin import DescribeWorkerStatsResponse, ReplicaStats
from kbroker.transport.messages_internal import ReplicaDescription

__all__ = ["GatewayCounters", "StatsAsk", "stats_response"]


@dataclass(frozen=True, slots=True)
class GatewayCounters:
    produce_requests: int = 0
    fetch_requests: int = 0
    bytes_in: int = 0
    bytes_out: int = 0

    def add(self, *, produce_requests: int = 0, fetch_requests: int = 0, bytes_in: int = 0, bytes_out: int = 0) -> GatewayCounters:
        return GatewayCounters(
            self.produce_requests + produce_requests,
            self.fetch_requests + fetch_requests,
            self.bytes_in + bytes_in,
            self.bytes_out + bytes_out,
        )


@dataclass(frozen=True, slots=True)
class StatsAsk:
    """Gateway -> replica manager: answer ``envelope`` (a DescribeWorkerStats) with these counters."""

    envelope: Envelope
    counters: GatewayCounters
    uptime_ms: int


def stats_response(worker_id: int, ask: StatsAsk, replicas: Iterable[ReplicaDescription]) -> DescribeWorkerStatsResponse:
    """The answer to ``ask``: its counters and these replica descriptions."""
    c = ask.counters
    return DescribeWorkerStatsResponse(
        worker_id, ask.uptime_ms, c.produce_requests, c.fetch_requests, c.bytes_in, c.bytes_out,
        tuple(
            ReplicaStats(d.topic, d.partition, d.error_code, d.is_leader, d.leader_epoch,
                         d.log_start_offset, d.high_watermark, d.log_end_offset, d.size_bytes)
            for d in replicas
        ),
    )  # fmt: skip
