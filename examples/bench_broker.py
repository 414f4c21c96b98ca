"""End-to-end broker benchmark: a thin caller of ``kbroker bench all`` (kbroker.cli.bench).

    python examples/bench_broker.py [--records 200000] [--workers 3] [--bootstrap HOST:PORT] [--json]
    make bench-broker ARGS="--records 100000"

Runs, with 100-byte values and one client (the engine lives in ``kbroker/cli/bench/``):

- produce acks=1 on a 6-partition RF 1 topic, produce acks=all on a 6-partition RF 3 topic;
- consume of the RF 1 topic from offset 0;
- end-to-end latency (produce to consumer receive) with acks=all at ``--latency-rate`` records/s.

Unless ``--bootstrap`` names a running broker, it starts its own (``kbroker start --workers N``
on a free port, a temporary data directory) and stops it at the end. The same, with every flag:
``kbroker bench all --help``.
"""

from __future__ import annotations

import argparse
import sys

from kbroker.cli.bench_command import bench_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", help="a running broker (default: start one for this run)")
    parser.add_argument("--workers", type=int, default=3, help="workers of the broker this starts (default 3)")
    parser.add_argument("--records", type=int, default=200_000, help="records per throughput run (default 200000)")
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--latency-records", type=int, default=None, help="records timed (default: 10 s at the rate)")
    parser.add_argument("--latency-rate", type=float, default=10_000.0, help="records/s during the latency run")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    flags = ["all", "--records", str(args.records), "--record-size", str(args.value_bytes),
             "--workers", str(args.workers), "--rate", str(args.latency_rate)]  # fmt: skip
    if args.latency_records is not None:
        flags += ["--latency-records", str(args.latency_records)]
    if args.bootstrap:
        flags += ["--bootstrap", args.bootstrap]
    if args.json:
        flags.append("--json")
    try:
        bench_app(flags, prog_name="bench_broker.py", standalone_mode=True)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
