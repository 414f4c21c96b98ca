"""Storage benchmark: what the segmented log costs against the plain file system, in one run.

    python -m kbroker.storage.bench [--log-gib 1] [--batch-mib 1] [--repeat 3] [--json] [--dir DIR]
    make bench-storage ARGS="--log-gib 2 --json"

Figures (medians of ``--repeat`` runs; everything happens in a temporary directory under ``--dir``,
default the system temp dir, removed afterwards):

1. append: ``Log.append`` of one prebuilt batch of ~``--batch-mib`` (``BatchBuilder``, uncompressed
   ``--value-bytes`` values, many records; the same bytes every time) until the log holds
   ``--log-gib``, against ``os.write`` of the same bytes to a plain file. Both are timed in
   interleaved rounds of ~8 MiB (alternating which goes first) so that they see the same machine
   state (page-cache allocation speed swings 1-5 GB/s from one second to the next on a small VM);
   the ratio is taken per run, then the median. Neither includes an fsync unless
   ``--fsync`` is given, which adds one at the end to both (``Log.flush`` / ``os.fsync``).
2. read: the whole log from its start with ``Log.read(max_bytes=1 MiB)`` in a loop (page cache
   warm, as right after writing); and, separately, ``decode_batches`` over the first
   ``--decode-mib`` of it, in records/s (the consumer's side).
3. recovery and reopen: the writer is dropped as a killed process would leave it (its files closed
   by the kernel: no flush, no checkpoint, no clean-shutdown marker) and the log is opened again,
   which validates every batch of the active segment by CRC; then it is closed cleanly and opened
   again, which trusts the files.
4. small batches: ``Log.append`` of a one-record batch (one ``--value-bytes`` value) per call, in
   records/s, against ``os.write`` of the same bytes per call (per-batch overhead).

Units: MB and GB are 10^6 and 10^9 bytes; MiB and GiB are 2^20 and 2^30.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from kbroker.storage.batch import HEADER_SIZE, compute_crc
from kbroker.storage.config import TopicConfig
from kbroker.storage.log import Log
from kbroker.storage.records import BatchBuilder, decode_batches

__all__ = ["main", "run_benchmark", "build_test_batch", "BenchConfig", "TARGETS"]

MiB = 1 << 20
GiB = 1 << 30
_ROUND_BYTES = 8 * MiB  # append and os.write are interleaved in rounds of about this size
_READ_MAX_BYTES = 1 * MiB

# name -> (comparison, threshold, description)
TARGETS: dict[str, tuple[str, float, str]] = {
    "append_ratio": (">=", 0.8, "Log.append / os.write throughput"),
    "read_gb_s": (">=", 1.0, "sequential Log.read, GB/s"),
    "reopen_clean_s": ("<", 0.5, "reopen after a clean close, s"),
}


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    log_gib: float = 1.0
    batch_mib: float = 1.0
    value_bytes: int = 100
    repeat: int = 3
    small_batches: int = 50_000
    decode_mib: float = 32.0
    fsync: bool = False
    dir: str | None = None


def build_test_batch(target_bytes: int, value_bytes: int, timestamp_ms: int) -> tuple[bytes, int]:
    """An uncompressed batch of ``value_bytes`` values, as close to ``target_bytes`` as a few tries get
    without exceeding it (at least one record). Returns ``(batch, records)``."""
    value = (b"0123456789abcdef" * (value_bytes // 16 + 1))[:value_bytes]

    def build(n: int) -> bytes:
        builder = BatchBuilder()
        for _ in range(n):
            builder.append(value, timestamp_ms=timestamp_ms)
        return builder.build()

    probe = build(64)
    per_record = max(1.0, (len(probe) - len(build(1))) / 63)
    n = max(1, int((target_bytes - len(build(1))) / per_record) + 1)
    batch = build(n)
    while len(batch) > target_bytes and n > 1:
        n = max(1, n - max(1, int((len(batch) - target_bytes) / per_record)))
        batch = build(n)
    return batch, n


def _simulate_crash(log: Log) -> None:
    """Drop ``log`` as a killed process would: the kernel closes its files; nothing is flushed,
    checkpointed or marked clean. The object must not be used afterwards."""
    log.close_handlers()


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _append_vs_write(cfg: BenchConfig, run_dir: Path, topic: TopicConfig, batch: bytes, count: int) -> dict[str, Any]:
    """Append ``count`` copies of ``batch`` to a new Log and os.write them to a plain file, interleaved."""
    log = Log.open(run_dir / "log", topic)
    plain_path = run_dir / "plain.bin"
    fd = os.open(plain_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    per_round = max(1, _ROUND_BYTES // len(batch))
    t_log = t_plain = 0.0
    perf = time.perf_counter
    done = 0
    rounds = 0
    try:
        while done < count:
            n = min(per_round, count - done)
            for which in ((0, 1) if rounds % 2 == 0 else (1, 0)):
                if which == 0:
                    start = perf()
                    for _ in range(n):
                        log.append(batch)
                    t_log += perf() - start
                else:
                    start = perf()
                    for _ in range(n):
                        os.write(fd, batch)
                    t_plain += perf() - start
            done += n
            rounds += 1
        if cfg.fsync:
            start = perf()
            log.flush()
            t_log += perf() - start
            start = perf()
            os.fsync(fd)
            t_plain += perf() - start
    finally:
        os.close(fd)
        plain_path.unlink()
    total = count * len(batch)
    return {
        "log": log,
        "bytes": total,
        "log_mb_s": total / t_log / 1e6,
        "write_mb_s": total / t_plain / 1e6,
        "append_ratio": t_plain / t_log,
        "segments": len(log.segments),
    }


def _read_all(log: Log) -> tuple[int, float]:
    perf = time.perf_counter
    offset = log.log_start_offset
    end = log.log_end_offset
    total = 0
    start = perf()
    while offset < end:
        result = log.read(offset, max_bytes=_READ_MAX_BYTES)
        if not result.data:
            break
        total += len(result.data)
        offset = result.next_offset
    elapsed = perf() - start
    if offset != end:
        raise AssertionError(f"read stopped at offset {offset}, log end is {end}")
    return total, elapsed


def _decode_rate(log: Log, limit_bytes: int) -> tuple[int, float]:
    chunks = []
    offset, got = log.log_start_offset, 0
    while got < limit_bytes and offset < log.log_end_offset:
        result = log.read(offset, max_bytes=_READ_MAX_BYTES)
        chunks.append(result.data)
        got += len(result.data)
        offset = result.next_offset
    perf = time.perf_counter
    records = 0
    start = perf()
    for chunk in chunks:
        records += len(decode_batches(chunk))
    return records, perf() - start


def _crc_rate(batch: bytes) -> float:
    """GB/s of the CRC check every append does (``compute_crc``), for reading the append figure."""
    n = max(1, (64 * MiB) // len(batch))
    start = time.perf_counter()
    for _ in range(n):
        compute_crc(batch, 0, len(batch))
    return n * len(batch) / (time.perf_counter() - start) / 1e9


def _small_batches(cfg: BenchConfig, run_dir: Path, topic: TopicConfig, now_ms: int) -> dict[str, float]:
    batch, _ = build_test_batch(1, cfg.value_bytes, now_ms)  # target 1 byte: one record
    n = max(1, cfg.small_batches)
    perf = time.perf_counter
    log = Log.open(run_dir / "small-log", topic)
    try:
        start = perf()
        for _ in range(n):
            log.append(batch)
        t_log = perf() - start
    finally:
        log.close()
    fd = os.open(run_dir / "small.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        start = perf()
        for _ in range(n):
            os.write(fd, batch)
        t_plain = perf() - start
    finally:
        os.close(fd)
    return {
        "small_records_s": n / t_log,
        "small_us_per_batch": t_log / n * 1e6,
        "small_write_calls_s": n / t_plain,
        "small_batch_bytes": len(batch),
    }


def _one_run(cfg: BenchConfig, run_dir: Path, topic: TopicConfig, batch: bytes, count: int, now_ms: int) -> dict[str, Any]:
    perf = time.perf_counter
    run_dir.mkdir()
    out: dict[str, Any] = {}
    # 1. append against os.write
    appended = _append_vs_write(cfg, run_dir, topic, batch, count)
    writer: Log = appended.pop("log")
    out.update({k: appended[k] for k in ("log_mb_s", "write_mb_s", "append_ratio", "segments")})
    out["crc_gb_s"] = _crc_rate(batch)
    end_offset = writer.log_end_offset
    # 3b. unclean stop, then recovery
    _simulate_crash(writer)
    del writer
    start = perf()
    log = Log.open(run_dir / "log", topic)
    out["recovery_s"] = perf() - start
    if log.log_end_offset != end_offset or log.recovered_bytes:
        raise AssertionError(f"recovery lost data: end {log.log_end_offset} != {end_offset} or cut {log.recovered_bytes}")
    try:
        # 2. sequential read, then consumer-side decode
        total, elapsed = _read_all(log)
        out["read_gb_s"] = total / elapsed / 1e9
        decoded, elapsed = _decode_rate(log, max(1, int(cfg.decode_mib * MiB)))
        out["decode_records_s"] = decoded / elapsed if elapsed > 0 else float("inf")
    finally:
        log.close()
    # 3a. reopen after a clean close
    start = perf()
    log = Log.open(run_dir / "log", topic)
    out["reopen_clean_s"] = perf() - start
    if log.log_end_offset != end_offset:
        raise AssertionError(f"clean reopen: end {log.log_end_offset} != {end_offset}")
    log.close()
    # 4. small batches
    out.update(_small_batches(cfg, run_dir, topic, now_ms))
    shutil.rmtree(run_dir)
    return out


def run_benchmark(cfg: BenchConfig, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run every measurement ``cfg.repeat`` times; return the configuration, medians and samples."""
    now_ms = int(time.time() * 1000)
    target = max(HEADER_SIZE + 1, int(cfg.batch_mib * MiB))
    batch, records = build_test_batch(target, cfg.value_bytes, now_ms)
    topic = TopicConfig()
    if len(batch) > topic.max_message_bytes:
        topic = dataclasses.replace(topic, max_message_bytes=len(batch))
    count = max(1, int(cfg.log_gib * GiB) // len(batch))
    parent = cfg.dir if cfg.dir is not None else None
    if parent is not None:
        Path(parent).mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="kbroker-bench-", dir=parent))
    samples: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        for i in range(max(1, cfg.repeat)):
            if progress:
                progress(f"run {i + 1}/{max(1, cfg.repeat)}")
            samples.append(_one_run(cfg, root / f"run-{i}", topic, batch, count, now_ms))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    keys = [k for k in samples[0] if isinstance(samples[0][k], (int, float))]
    medians = {k: _median([float(s[k]) for s in samples]) for k in keys}
    checks = {}
    for name, (op, threshold, _) in TARGETS.items():
        value = medians[name]
        checks[name] = {"target": f"{op} {threshold:g}", "pass": value >= threshold if op == ">=" else value < threshold}
    return {
        "config": dataclasses.asdict(cfg),
        "setup": {
            "batch_bytes": len(batch),
            "records_per_batch": records,
            "batches": count,
            "log_bytes": count * len(batch),
            "segment_bytes": topic.segment_bytes,
            "max_message_bytes": topic.max_message_bytes,
            "fsync_included": cfg.fsync,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "medians": medians,
        "checks": checks,
        "samples": samples,
        "wall_s": time.perf_counter() - started,
    }


def _rows(result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    m, c, s = result["medians"], result["checks"], result["setup"]
    fsync = "both incl. final fsync" if s["fsync_included"] else "neither incl. fsync"

    def check(name: str) -> tuple[str, str]:
        return c[name]["target"], "PASS" if c[name]["pass"] else "FAIL"

    rows = [
        (f"append Log ({s['batch_bytes'] / MiB:.2f} MiB batches), MB/s", f"{m['log_mb_s']:,.0f}", "", ""),
        ("append os.write (same bytes), MB/s", f"{m['write_mb_s']:,.0f}", "", ""),
        (f"append ratio Log/os.write ({fsync})", f"{m['append_ratio']:.2f}", *check("append_ratio")),
        ("CRC-32C check each append does (compute_crc), GB/s (info)", f"{m['crc_gb_s']:.2f}", "", ""),
        ("read Log.read(max_bytes=1 MiB) loop, GB/s", f"{m['read_gb_s']:.2f}", *check("read_gb_s")),
        ("decode_batches, records/s", f"{m['decode_records_s']:,.0f}", "", ""),
        (f"reopen after clean close ({s['log_bytes'] / GiB:.2f} GiB), s", f"{m['reopen_clean_s']:.4f}", *check("reopen_clean_s")),
        ("recovery after unclean stop (CRC scan), s", f"{m['recovery_s']:.3f}", "", ""),
        (f"small batches (1 x {result['config']['value_bytes']} B), records/s", f"{m['small_records_s']:,.0f}", "", ""),
        ("small batches, us per Log.append", f"{m['small_us_per_batch']:.1f}", "", ""),
        ("small batches via os.write, calls/s (baseline)", f"{m['small_write_calls_s']:,.0f}", "", ""),
    ]
    return rows


def _notes(result: dict[str, Any]) -> list[str]:
    s, cfg = result["setup"], result["config"]
    notes = [
        f"{s['batches']} batches of {s['batch_bytes']:,} B ({s['records_per_batch']:,} records of {cfg['value_bytes']} B) "
        f"= {s['log_bytes'] / GiB:.3f} GiB; segment.bytes {s['segment_bytes']:,}; "
        f"medians of {cfg['repeat']}; Python {s['python']}, {s['cpus']} CPUs; MB = 1e6 B, GB = 1e9 B",
        "append and os.write timed in interleaved ~8 MiB rounds; page cache warm for read/reopen/recovery",
    ]
    segments = max(sample["segments"] for sample in result["samples"])
    if segments > 1:
        notes.append(f"the log rolled ({segments} segments): each roll fsyncs, inside the Log's append time")
    notes.append(f"total {result['wall_s']:.1f} s")
    return notes


def render(result: dict[str, Any], file=None) -> None:
    """Print the figures as a table (rich when available, else plain text)."""
    file = file or sys.stdout
    rows = _rows(result)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is a dependency; plain text is the fallback
        Console = None
    if Console is not None:
        table = Table(title="kbroker storage benchmark")
        for col, justify in (("measurement", "left"), ("figure", "right"), ("target", "left"), ("result", "left")):
            table.add_column(col, justify=justify)
        for name, value, target, verdict in rows:
            style = {"PASS": "green", "FAIL": "bold red"}.get(verdict, "")
            table.add_row(name, value, target, f"[{style}]{verdict}[/]" if style else verdict)
        console = Console(file=file, width=max(100, Console(file=file).width))
        console.print(table)
        for note in _notes(result):
            console.print(f"- {note}", highlight=False)
        return
    width = max(len(r[0]) for r in rows)
    for name, value, target, verdict in rows:
        print(f"{name:<{width}}  {value:>14}  {target:<6} {verdict}", file=file)
    for note in _notes(result):
        print(f"- {note}", file=file)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m kbroker.storage.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--log-gib", type=float, default=1.0, help="log size to write per run, GiB (default 1)")
    p.add_argument("--batch-mib", type=float, default=1.0, help="batch size for the append/read runs, MiB (default 1)")
    p.add_argument("--value-bytes", type=int, default=100, help="record value size, bytes (default 100)")
    p.add_argument("--repeat", type=int, default=3, help="runs; figures are medians (default 3)")
    p.add_argument("--small-batches", type=int, default=50_000, help="one-record appends per run (default 50000)")
    p.add_argument("--decode-mib", type=float, default=32.0, help="MiB of the log decoded per run (default 32)")
    p.add_argument("--fsync", action="store_true", help="include a final fsync in both append figures")
    p.add_argument("--dir", default=None, help="data dir under which a temporary directory is used (default: system temp)")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.log_gib <= 0 or args.batch_mib <= 0 or args.value_bytes < 0 or args.repeat < 1:
        _parser().error("--log-gib and --batch-mib must be > 0, --value-bytes >= 0, --repeat >= 1")
    cfg = BenchConfig(
        log_gib=args.log_gib,
        batch_mib=args.batch_mib,
        value_bytes=args.value_bytes,
        repeat=args.repeat,
        small_batches=args.small_batches,
        decode_mib=args.decode_mib,
        fsync=args.fsync,
        dir=args.dir,
    )
    progress = None if args.json else (lambda msg: print(msg, file=sys.stderr, flush=True))
    result = run_benchmark(cfg, progress)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        render(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
