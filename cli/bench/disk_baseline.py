"""Raw file append bandwidth: what the machine's page cache takes for new data, without a broker.

The broker's big-value produce writes every byte into new segment files (no fsync by default, as
Kafka). This baseline writes the same number of bytes with ``os.write`` in ``chunk_bytes`` pieces
into a new file in ``directory`` (the filesystem of the broker's data dir when it is local), keeps
the file until the clock stops (as the broker keeps its segments, so dirty pages add up the same
way), then deletes it. No Python per record, no sockets: the ceiling for any broker that persists.

On virtual machines this ceiling can be far below ``memcpy`` speed and change from run to run:
new page-cache pages are slow to get (the host backs them lazily) and past the dirty-page limit
writers are throttled to the disk's speed. Measured in the same round as the broker run, so both
see the same state.
"""

from __future__ import annotations

import os
import tempfile
import time

__all__ = ["append_bandwidth"]


def append_bandwidth(total_bytes: int, chunk_bytes: int, directory: str | os.PathLike[str] | None = None) -> dict[str, float]:
    """``{"bytes", "chunk_bytes", "seconds", "mb_per_s"}`` of appending ``total_bytes`` to a new file."""
    if total_bytes < 1 or chunk_bytes < 1:
        raise ValueError(f"total_bytes and chunk_bytes must be positive, got {total_bytes} and {chunk_bytes}")
    chunk = b"d" * chunk_bytes
    fd, path = tempfile.mkstemp(prefix="kbroker-bench-append-", dir=directory)
    try:
        written = 0
        started = time.perf_counter()
        while written < total_bytes:
            written += os.write(fd, chunk if total_bytes - written >= chunk_bytes else chunk[: total_bytes - written])
        seconds = time.perf_counter() - started
    finally:
        os.close(fd)
        os.unlink(path)
    return {"bytes": written, "chunk_bytes": chunk_bytes, "seconds": seconds, "mb_per_s": written / seconds / 1e6}
