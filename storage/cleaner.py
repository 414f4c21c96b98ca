"""Log compaction: keep the latest record per key (``cleanup.policy=compact``).

One pass, as Kafka's cleaner does it:
1. The cleanable range is the run of segments from the log start that are not the active segment,
   lie wholly below the high watermark and are older than ``min.compaction.lag.ms``.
   ``log.cleaner_offset`` splits it into the clean head (already compacted) and the dirty tail.
2. Skip the pass unless dirty bytes / cleanable bytes >= ``min.cleanable.dirty.ratio``.
3. Build an offset map ``key -> last offset`` over the dirty tail.
4. Rewrite the whole cleanable range in groups of consecutive segments (each group at most
   ``segment.bytes``) keeping a record when no later record has its key, and dropping tombstones
   (value None) once their timestamp is more than ``delete.retention.ms`` old. Rebuilt batches keep
   their base offset and offset span, so offsets never move and later batches stay contiguous.
5. Swap each group crash-safely:
      write  <base>.log.cleaned, fsync          (a crash here: the .cleaned file is discarded)
      rename <base>.<end>.swap                  (a crash after here: the swap is completed on open)
      delete the group's old segments
      rename <base>.log
   ``finish_interrupted_swaps`` completes or discards these on open.

Records without a key are kept (producers may not send them to compacted topics; the broker
rejects them there, and the cleaner never silently drops data it cannot judge).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, NamedTuple

from kbroker.storage.batch import BatchHeader
from kbroker.storage.checkpoint import fsync_dir
from kbroker.storage.faults import fault_point
from kbroker.storage.records import LogRecord, decode_body, encode_records
from kbroker.storage.segment import LOG_SUFFIX, Segment, segment_path

if TYPE_CHECKING:
    from kbroker.storage.log import Log

__all__ = ["CleanResult", "clean_log", "compact_batch", "finish_interrupted_swaps", "filter_batch"]

_CLEANED = ".log.cleaned"
_SWAP = ".swap"


class CleanResult(NamedTuple):
    first_dirty_offset: int
    end_offset: int  # the cleaner offset after this pass
    segments_before: int
    segments_after: int
    bytes_before: int
    bytes_after: int
    records_removed: int
    tombstones_removed: int


def finish_interrupted_swaps(directory: Path) -> None:
    """On open: discard half-written cleaned segments, complete swaps that were renamed."""
    for path in directory.glob(f"*{_CLEANED}"):
        path.unlink()
    for path in sorted(directory.glob(f"*{_SWAP}")):
        parts = path.name.split(".")
        if len(parts) != 3 or not (parts[0].isdigit() and parts[1].isdigit()):
            path.unlink()
            continue
        base, end = int(parts[0]), int(parts[1])
        for other in directory.iterdir():
            stem, _, suffix = other.name.partition(".")
            if suffix in ("log", "index", "timeindex") and stem.isdigit() and base <= int(stem) < end:
                other.unlink()
        os.replace(path, segment_path(directory, base))
    fsync_dir(directory)


def filter_batch(
    records: list[LogRecord], offset_map: dict[bytes, int], now_ms: int, delete_retention_ms: int
) -> tuple[list[LogRecord], int, int]:
    """Records of one batch that survive compaction; also counts (removed, tombstones removed)."""
    kept: list[LogRecord] = []
    removed = tombstones = 0
    horizon = now_ms - delete_retention_ms
    for record in records:
        key = record.key
        if key is not None and offset_map.get(key, -1) > record.offset:
            removed += 1
            if record.value is None:
                tombstones += 1
            continue
        if key is not None and record.value is None and record.timestamp_ms < horizon:
            removed += 1
            tombstones += 1
            continue
        kept.append(record)
    return kept, removed, tombstones


def compact_batch(
    raw: bytes, header: BatchHeader, offset_map: dict[bytes, int], now_ms: int, delete_retention_ms: int
) -> tuple[bytes | None, int, int]:
    """One batch after compaction: ``raw`` itself when every record survives, None when none does,
    else the survivors re-encoded with the batch's base offset and offset span (offsets never move).
    Also returns (records removed, tombstones removed). Shared by the disk and memory twins."""
    records = decode_body(raw, 0, header)
    kept, removed, tombstones = filter_batch(records, offset_map, now_ms, delete_retention_ms)
    if not kept:
        return None, removed, tombstones
    if len(kept) == len(records):
        return raw, removed, tombstones  # untouched batch: copy the bytes as they are
    data = encode_records(
        kept,
        base_offset=header.base_offset,
        codec=header.codec,
        timestamp_type=header.timestamp_type,
        leader_epoch=header.leader_epoch,
        producer_id=header.producer_id,
        producer_epoch=header.producer_epoch,
        base_sequence=header.base_sequence,
        last_offset_delta=header.last_offset_delta,
    )
    return data, removed, tombstones


def compact_group(
    group: list, offset_map: dict[bytes, int], now_ms: int, delete_retention_ms: int, tally: list[int]
) -> Iterator[bytes]:
    """The surviving batches of a group of segments, in order (see ``compact_batch``).

    ``tally`` is ``[records removed, tombstones removed]``, added to as the batches go by.
    Shared by the disk twin (which writes them to a file) and the memory twin.
    """
    for segment in group:
        for _, header, raw in segment.iter_batches():
            data, removed, tombstones = compact_batch(raw, header, offset_map, now_ms, delete_retention_ms)
            tally[0] += removed
            tally[1] += tombstones
            if data is not None:
                yield data


def _cleanable_segments(log: "Log", now_ms: int) -> list[Segment]:
    lag = log.config.min_compaction_lag_ms
    cleanable: list[Segment] = []
    for segment in log.segments[:-1]:
        if segment.next_offset > log.high_watermark:
            break
        if lag > 0 and segment.max_timestamp > now_ms - lag:
            break
        cleanable.append(segment)
    return cleanable


def _build_offset_map(segments: list[Segment], first_dirty: int) -> dict[bytes, int]:
    offset_map: dict[bytes, int] = {}
    for segment in segments:
        if segment.next_offset <= first_dirty:
            continue
        for _, header, raw in segment.iter_batches(segment.find_position(first_dirty) or 0):
            for record in decode_body(raw, 0, header):
                if record.key is not None and record.offset >= first_dirty:
                    offset_map[record.key] = record.offset
    return offset_map


def _groups(segments: list[Segment], max_bytes: int) -> list[list[Segment]]:
    groups: list[list[Segment]] = []
    for segment in segments:
        if groups and sum(s.size for s in groups[-1]) + segment.size <= max_bytes:
            groups[-1].append(segment)
        else:
            groups.append([segment])
    return groups


def clean_log(log: "Log", now_ms: int, *, force: bool = False, rewrite: Callable | None = None) -> CleanResult | None:
    """One cleaner pass over ``log`` (steps 1-5 above). ``rewrite(log, group, offset_map, now_ms)``
    replaces one group of segments and returns ``(new segment, removed, tombstones removed)``; the
    default is the crash-safe on-disk swap, the memory twin passes its own."""
    rewrite = rewrite or _rewrite_group
    segments = _cleanable_segments(log, now_ms)
    if not segments:
        return None
    first_dirty = max(log.cleaner_offset, log.log_start_offset)
    end_offset = segments[-1].next_offset
    total = sum(s.size for s in segments)
    dirty = sum(s.size for s in segments if s.next_offset > first_dirty)
    if dirty == 0 or (not force and total and dirty / total < log.config.min_cleanable_dirty_ratio):
        return None
    offset_map = _build_offset_map(segments, first_dirty)
    removed = tombstones = 0
    after_segments: list[Segment] = []
    for group in _groups(segments, log.config.segment_bytes):
        new_segment, group_removed, group_tombstones = rewrite(log, group, offset_map, now_ms)
        removed += group_removed
        tombstones += group_tombstones
        after_segments.append(new_segment)
    log.cleaner_offset = max(log.cleaner_offset, end_offset)
    log.write_checkpoint()
    return CleanResult(
        first_dirty,
        end_offset,
        len(segments),
        len(after_segments),
        total,
        sum(s.size for s in after_segments),
        removed,
        tombstones,
    )


def _rewrite_group(
    log: "Log", group: list[Segment], offset_map: dict[bytes, int], now_ms: int
) -> tuple[Segment, int, int]:
    directory = log.directory
    base = group[0].base_offset
    end = group[-1].next_offset
    cleaned_path = directory / f"{base:020d}{_CLEANED}"
    tally = [0, 0]
    fd = os.open(cleaned_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for data in compact_group(group, offset_map, now_ms, log.config.delete_retention_ms, tally):
            os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    fault_point("cleaner.swap")
    swap_path = directory / f"{base:020d}.{end:020d}{_SWAP}"
    os.replace(cleaned_path, swap_path)
    fsync_dir(directory)
    for segment in group:
        segment.delete()
    os.replace(swap_path, segment_path(directory, base, LOG_SUFFIX))
    fsync_dir(directory)
    new_segment, _ = Segment.open_recover(directory, base, log.config.index_interval_bytes, now_ms)
    log.replace_segments(group, new_segment)
    return new_segment, tally[0], tally[1]
