"""Client-core benchmark: what the producer and consumer cost per record in Python, no sockets.

    python -m kbroker.transport.client.bench [--records 200000] [--value-bytes 100] [--repeat 3] [--json]

Figures, in ns/record (medians of ``--repeat`` runs; the garbage collector stays on, as in a real
client, and the baseline runs in the same process so machines can be compared):

- ``baseline``: a plain Python send loop (dict-cached partition, append a tuple, ``msgpack.packb``
  per 1 MiB): MEASUREMENTS.md's "plain Python send loop", ~0.5 us on the reference machine
- ``partition_sticky`` / ``partition_keyed`` / ``partition_keyed_repeat``: ``Partitioner.partition``
  for keyless records, unique 12-byte keys (murmur2 each time) and 1000 keys over and over (memo)
- ``send_keyless`` / ``send_keyed``: ``Accumulator.send`` (validation, partitioning, append,
  future): the work done on the user's thread
- ``produce_keyless``: ``send`` plus the sender's share (``drain``, building the batch bytes,
  ``complete``): all the client-side Python work per record of an acks=1 producer
- ``consume``: ``records_from_fetch`` over 4000-record batches (CRC, decode, ``Record`` objects)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Callable

import msgpack

from kbroker.storage.batch import read_header
from kbroker.storage.records import build_batch
from kbroker.transport.client.accumulator import Accumulator
from kbroker.transport.client.partitioner import Partitioner
from kbroker.transport.client.records import records_from_fetch

__all__ = ["run", "main"]

_PARTITIONS = 6


def _leader(topic: str, partition: int) -> str:
    return "tcp://bench:1"


def _baseline(n: int, value: bytes) -> float:
    cache: dict[tuple[str, int], int] = {}
    buf: list = []
    size = 0
    t0 = time.perf_counter()
    for i in range(n):
        key = ("t", i % _PARTITIONS)
        p = cache.get(key)
        if p is None:
            p = cache[key] = i % _PARTITIONS
        buf.append((value, None, p))
        size += len(value) + 10
        if size >= 1 << 20:
            msgpack.packb(buf)
            buf = []
            size = 0
    return time.perf_counter() - t0


def _partition(n: int, keys: list[bytes] | None) -> float:
    p = Partitioner()
    partition = p.partition
    if keys is None:
        t0 = time.perf_counter()
        for _ in range(n):
            partition("t", None, _PARTITIONS)
        return time.perf_counter() - t0
    t0 = time.perf_counter()
    for k in keys:
        partition("t", k, _PARTITIONS)
    return time.perf_counter() - t0


def _producer(n: int, value: bytes, keys: list[bytes] | None, with_sender: bool) -> float:
    """Sends in chunks of one batch's worth, draining and completing between chunks."""
    acc = Accumulator(linger_ms=0, idempotent=False, buffer_memory=1 << 34)
    acc_send = acc.send
    chunk = max(1, (512 * 1024) // (len(value) + 16))
    elapsed = 0.0
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        t0 = time.perf_counter()
        if keys is None:
            for _ in range(start, stop):
                acc_send("t", value, num_partitions=_PARTITIONS)
        else:
            for k in keys[start:stop]:
                acc_send("t", value, k, num_partitions=_PARTITIONS)
        t1 = time.perf_counter()
        drained = acc.drain(_leader)
        for batches in drained.requests.values():
            for batch in batches:
                acc.complete(batch, base_offset=0)
        t2 = time.perf_counter()
        elapsed += (t2 - t0) if with_sender else (t1 - t0)
    acc.close()
    return elapsed


def _fetch_bytes(n: int, value: bytes) -> bytes:
    parts = []
    for base in range(0, n, 4000):
        count = min(4000, n - base)
        raw = build_batch([(value, None, None, 1_700_000_000_000 + i) for i in range(count)])
        parts.append(base.to_bytes(8, "big") + raw[8:])
    data = b"".join(parts)
    assert read_header(data).records_count == min(4000, n)
    return data


def _consume(n: int, data: bytes) -> float:
    t0 = time.perf_counter()
    fetched = records_from_fetch("t", 0, data, 0)
    elapsed = time.perf_counter() - t0
    assert len(fetched.records) == n
    return elapsed


def run(records: int = 200_000, value_bytes: int = 100, repeat: int = 3) -> dict[str, float]:
    """Median ns/record of every figure."""
    value = b"x" * value_bytes
    unique = [b"key-%08d" % i for i in range(records)]
    repeated = [b"key-%08d" % (i % 1000) for i in range(records)]
    data = _fetch_bytes(records, value)
    cases: dict[str, Callable[[], float]] = {
        "baseline": lambda: _baseline(records, value),
        "partition_sticky": lambda: _partition(records, None),
        "partition_keyed": lambda: _partition(records, unique),
        "partition_keyed_repeat": lambda: _partition(records, repeated),
        "send_keyless": lambda: _producer(records, value, None, False),
        "send_keyed": lambda: _producer(records, value, unique, False),
        "produce_keyless": lambda: _producer(records, value, None, True),
        "consume": lambda: _consume(records, data),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, case in cases.items():  # interleaved, so every figure sees the same machine state
            samples[name].append(case() / records * 1e9)
    return {name: round(statistics.median(values), 1) for name, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kbroker.transport.client.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    figures = run(args.records, args.value_bytes, args.repeat)
    if args.json:
        print(json.dumps({"ns_per_record": figures, "records": args.records, "value_bytes": args.value_bytes}))
        return 0
    print(f"client core, {args.records} records of {args.value_bytes}-byte values, median of {args.repeat} (ns/record):")
    for name, ns in figures.items():
        print(f"  {name:24s} {ns:8.0f} ns   {1e9 / ns / 1e6 if ns else float('inf'):6.2f} M records/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
