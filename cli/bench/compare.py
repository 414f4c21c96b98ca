"""``kbroker bench compare``: the issue's workloads against Redis Streams and raw ZeroMQ, in one run.

Rows (targets from the issue; ratios are kbroker / peer, medians of ``--repeat`` rounds; each
round runs kbroker's workloads and then the peers', so both see the same machine load):

| kbroker workload                                   | peer                                   | target |
| produce acks=1 RF1, 6 partitions, 100-byte values  | Redis XADD pipelined by 1000           | 5x     |
| the same with ``send_many`` (1000 records a call)   | Redis XADD pipelined by 1000           | 5x     |
| produce acks=all RF3 (3+ workers)                  | Redis XADD pipelined by 1000           | 3x     |
| consume from offset 0                              | Redis XREAD COUNT 10000 from 0         | 3x     |
| produce acks=1, ``big_record_size`` values (MB/s)  | raw ZeroMQ PUSH/PULL, frame = a batch  | 0.4x   |
| the same                                           | raw file append, same bytes            | (none) |

Redis runs the same record count and value size as kbroker. The bulk row uses
``Producer.send_many`` with one future per 1000 records, as the pipeline has one round trip per
1000 XADDs; the first row is ``send`` with a future per record, as Kafka's perf test. The
big-value row also notes the absolute target (1 GB/s), and is set against a second ceiling:
appending the same bytes to a new file with ``os.write`` on the broker's filesystem
(disk_baseline.py), since every byte the broker takes goes into new segment files.
"""

from __future__ import annotations

from typing import Any

from kbroker.cli.bench import disk_baseline, redis_peer, stats, suite, zmq_baseline
from kbroker.cli.bench.report import comparison_row

__all__ = ["run_compare", "BIG_RECORD_SIZE"]

BIG_RECORD_SIZE = 10_000
BIG_BYTES = 1_000_000_000  # value bytes per big-value run


def run_compare(session: suite.Session, opts: Any, big_record_size: int = BIG_RECORD_SIZE) -> dict[str, Any]:
    """``--repeat`` rounds; each round runs every kbroker workload and then its peers, so both
    sides of a ratio see the same machine load; the median of the rounds is reported."""
    report = suite.new_report("compare", opts, session)
    workers = len(session.workers())
    rf = min(3, workers)
    once = opts.with_(repeat=1)
    one = once.with_(acks="1", replication_factor=1)
    every = once.with_(acks="all", replication_factor=rf)
    big_records = max(100, min(opts.records, BIG_BYTES // big_record_size))
    big = one.with_(record_size=big_record_size, records=big_records)
    frames = max(20, big_records * big_record_size // opts.batch_bytes)  # the same bytes as the big-value run
    consume_topic = suite.fill(session, one)
    rounds: dict[str, list[dict[str, Any]]] = {k: [] for k in ("one", "many", "all", "consume", "big", "zmq", "disk", "xadd", "xread")}
    scratch = session.broker.scratch_dir if session.broker is not None else None  # else: the temp dir
    with redis_peer.RedisPeer() as peer:
        version = peer.version
        for i in range(opts.repeat):
            rounds["one"].append(suite.run_produce(session, one))
            rounds["many"].append(suite.run_produce(session, one.with_(send_many=1000)))
            rounds["all"].append(suite.run_produce(session, every))
            rounds["consume"].append(suite.run_consume(session, one, consume_topic))
            rounds["big"].append(suite.run_produce(session, big))
            rounds["zmq"].append(zmq_baseline.loopback_bandwidth(opts.batch_bytes, frames=frames))
            rounds["disk"].append(disk_baseline.append_bandwidth(big_records * big_record_size, opts.batch_bytes, scratch))
            with session.progress(f"Redis Streams XADD / XREAD, round {i + 1}/{opts.repeat}", 2) as advance:
                rounds["xadd"].append(peer.xadd(f"bench-{i}", opts.records, opts.record_size))
                advance(1)
                rounds["xread"].append(peer.xread(f"bench-{i}", opts.record_size))
                advance(1)
                peer.client.delete(f"bench-{i}")
    produce_one, produce_many, produce_all, consume, xadd, xread = (
        stats.median_run(rounds[k]) for k in ("one", "many", "all", "consume", "xadd", "xread"))
    produce_big = stats.median_run(rounds["big"], key="mb_per_s")
    zmq = stats.median_run(rounds["zmq"], key="mb_per_s")
    disk = stats.median_run(rounds["disk"], key="mb_per_s")

    report["results"] = [produce_one, produce_many, produce_all, consume, produce_big]
    peer = f"Redis {version} XADD, pipeline {redis_peer.PIPELINE}"
    report["comparison"] = [
        comparison_row(produce_one["workload"], "records/s", produce_one["records_per_s"], peer, xadd["records_per_s"], 5),
        comparison_row(produce_many["workload"], "records/s", produce_many["records_per_s"], peer, xadd["records_per_s"], 5),
        comparison_row(produce_all["workload"], "records/s", produce_all["records_per_s"], peer, xadd["records_per_s"], 3),
        comparison_row(consume["workload"], "records/s", consume["records_per_s"],
                       f"Redis {version} XREAD COUNT {redis_peer.READ_COUNT}", xread["records_per_s"], 3),
        comparison_row(produce_big["workload"], "MB/s", produce_big["mb_per_s"],
                       f"raw ZeroMQ loopback, {opts.batch_bytes}-byte frames", zmq["mb_per_s"], 0.4),
        comparison_row(produce_big["workload"], "MB/s", produce_big["mb_per_s"],
                       f"raw file append (os.write), {opts.batch_bytes}-byte writes", disk["mb_per_s"], None),
    ]  # fmt: skip
    pairs = (("one", "xadd", "records_per_s"), ("many", "xadd", "records_per_s"), ("all", "xadd", "records_per_s"),
             ("consume", "xread", "records_per_s"),
             ("big", "zmq", "mb_per_s"), ("big", "disk", "mb_per_s"))  # fmt: skip
    for row, (ours, theirs, key) in zip(report["comparison"], pairs):
        row["round_ratios"] = [stats.ratio(a[key], b[key]) for a, b in zip(rounds[ours], rounds[theirs])]
    report["peers"] = {"redis_xadd": xadd, "redis_xread": xread, "zmq_loopback": zmq, "file_append": disk}
    gbps = produce_big["mb_per_s"] / 1000
    report["notes"].append(f"{big_record_size}-byte values: {gbps:.2f} GB/s (target >= 1 GB/s: {'met' if gbps >= 1 else 'missed'})")
    if rf < 3:
        report["notes"].append(f"only {workers} workers: the acks=all row uses RF{rf}, not RF3")
    return report
