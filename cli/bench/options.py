"""The benchmark's settings as one frozen value, and their validation (pure).

``BenchOptions.validate()`` returns the list of problems, each naming its flag, so the command
can exit 2 with a clear message before it starts anything.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

__all__ = ["MAX_IN_FLIGHT", "PACE_MS", "BenchOptions", "ACKS", "COMPRESSIONS", "parse_acks"]

ACKS = ("0", "1", "all", "-1")
COMPRESSIONS = ("none", "gzip", "zstd", "lz4")


def parse_acks(text: str) -> int | str:
    """"0" -> 0, "1" -> 1, "all" / "-1" -> "all"; anything else is a ValueError."""
    value = str(text).strip().lower()
    if value not in ACKS:
        raise ValueError(f"--acks must be one of 0, 1, all (or -1), got {text!r}")
    return "all" if value in ("all", "-1") else int(value)


MAX_IN_FLIGHT = 5  # the Producer's default max_in_flight (Kafka's max.in.flight.requests.per.connection)
PACE_MS = 2.0  # Kafka's ThroughputThrottler sleeps only once it is 2 ms (MIN_SLEEP_NS) ahead of its rate


@dataclass(frozen=True)
class BenchOptions:
    records: int = 1_000_000
    record_size: int = 100
    key_count: int = 0  # 0: keyless records (sticky partitioning); N: keys key-0 .. key-(N-1) in turn
    partitions: int = 6
    replication_factor: int = 1
    acks: str = "1"
    batch_bytes: int = 512 * 1024
    linger_ms: float = 5.0
    max_in_flight: int = MAX_IN_FLIGHT  # the producer's unanswered requests per partition
    compression: str = "none"
    send_many: int = 0  # 0: Producer.send per record; N: Producer.send_many with N keyless records per call
    producers: int = 1
    consumers: int = 1
    rate: float = 0.0  # records/s; 0: as fast as it goes (latency runs need a rate)
    pace_ms: float = PACE_MS  # latency runs: sleep only this far ahead of the rate (Kafka's throttler); 0: per record
    duration_s: float = 0.0  # produce: run this long instead of --records (0: --records)
    repeat: int = 1
    latency_records: int = 0  # `all`: records of the latency run (0: 10 s at the rate)
    workers: int = 3
    bootstrap: str | None = None

    def with_(self, **changes: Any) -> BenchOptions:
        return replace(self, **changes)

    @property
    def acks_value(self) -> int | str:
        return parse_acks(self.acks)

    @property
    def compression_value(self) -> str | None:
        return None if self.compression == "none" else self.compression

    def validate(self) -> list[str]:
        problems: list[str] = []
        positive = {
            "--records": self.records, "--record-size": self.record_size, "--partitions": self.partitions,
            "--replication-factor": self.replication_factor, "--batch-bytes": self.batch_bytes,
            "--max-in-flight": self.max_in_flight,
            "--producers": self.producers, "--consumers": self.consumers, "--repeat": self.repeat,
            "--workers": self.workers,
        }  # fmt: skip
        for flag, value in positive.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{flag} must be a positive whole number, got {value!r}")
        if self.send_many and self.key_count:
            problems.append("--send-many sends keyless records: leave out --keys")
        for flag, value in {"--keys": self.key_count, "--send-many": self.send_many, "--linger-ms": self.linger_ms, "--rate": self.rate,
                            "--pace-ms": self.pace_ms,
                            "--duration": self.duration_s, "--latency-records": self.latency_records}.items():  # fmt: skip
            if value < 0:
                problems.append(f"{flag} must not be negative, got {value!r}")
        try:
            parse_acks(self.acks)
        except ValueError as exc:
            problems.append(str(exc))
        if self.compression.lower() not in COMPRESSIONS:
            problems.append(f"--compression must be one of {', '.join(COMPRESSIONS)}, got {self.compression!r}")
        if self.bootstrap is None and isinstance(self.workers, int) and isinstance(self.replication_factor, int):
            if self.replication_factor > self.workers >= 1:
                problems.append(
                    f"--replication-factor {self.replication_factor} needs at least as many workers "
                    f"(--workers {self.workers})"
                )
        return problems
