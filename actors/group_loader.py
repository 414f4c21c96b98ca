"""Which ``__consumer_offsets`` partitions a coordinator serves, and loading them from the log.

    leads(p, epoch) per tick ──▶ Leadership.update ──▶ (start loading: [p...], lost: [p...])
    Describe (log end)  ──▶ Load.next_fetch()  ──▶ fetch from next_offset
    fetch answer bytes ──▶ Load.on_records(...) ──▶ (key, value) records in log order

A partition is *served* once its log was read up to the log end offset the replica had when it
became leader (everything the previous coordinator wrote, since commits are acknowledged only
once every in-sync replica has them). Until then requests for its groups get
CoordinatorNotAvailable (retriable). A new leader epoch for a served partition reloads it (its
groups are dropped, then read again). Topics deleted while a partition loads are remembered on its
``Load`` and their offsets dropped (with tombstones) once it is done. Pure: no I/O; the actor
shell does the fetching.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kbroker.errors import CorruptRecordError
from kbroker.storage.batch import HEADER_SIZE, read_header, validate_batch
from kbroker.storage.records import decode_body

__all__ = ["Load", "Leadership", "records_in"]


@dataclass(slots=True)
class Load:
    partition: int
    leader_epoch: int
    next_offset: int = 0
    end_offset: int | None = None  # the log end when it became leader (None: not asked yet)
    in_flight: bool = False
    deleted: set[str] = field(default_factory=set)  # topics deleted while loading: dropped once done

    @property
    def done(self) -> bool:
        return self.end_offset is not None and self.next_offset >= self.end_offset

    def on_described(self, is_leader: bool, log_start: int, log_end: int) -> None:
        if not is_leader:
            return
        if self.end_offset is None:
            self.end_offset = log_end
        self.next_offset = max(self.next_offset, log_start)

    def on_records(self, data: bytes | memoryview | None) -> list[tuple[bytes | None, bytes | None]]:
        """The records of a fetch answer at or after ``next_offset``, moving ``next_offset`` past them."""
        self.in_flight = False
        out: list[tuple[bytes | None, bytes | None]] = []
        start = self.next_offset
        for offset, key, value, next_offset in records_in(data or b""):
            if offset is not None and offset >= start:
                out.append((key, value))
            self.next_offset = max(self.next_offset, next_offset)
        return out


def records_in(data: bytes | memoryview) -> list[tuple[int | None, bytes | None, bytes | None, int]]:
    """``(offset, key, value, next offset of its batch)`` for every record of the whole batches in
    ``data`` (a partial trailing batch is ignored); an emptied batch gives ``(None, None, None, next)``."""
    view = memoryview(data)
    out: list[tuple[int | None, bytes | None, bytes | None, int]] = []
    pos = 0
    while pos + HEADER_SIZE <= len(view):
        header = read_header(view, pos)
        if pos + header.size > len(view):
            break
        try:
            validate_batch(view, pos)
        except CorruptRecordError:
            break
        records = decode_body(view, pos, header)
        if not records:
            out.append((None, None, None, header.next_offset))
        for r in records:
            out.append((r.offset, r.key, r.value, header.next_offset))
        pos += header.size
    return out


class Leadership:
    """partition -> leader epoch of the ``__consumer_offsets`` partitions this worker leads, and their loads."""

    def __init__(self) -> None:
        self.loads: dict[int, Load] = {}  # led, loading or loaded

    def update(self, led: dict[int, int]) -> tuple[list[int], list[int]]:
        """``led``: partition -> leader epoch as the metadata says now. Returns (started, lost)."""
        lost = [p for p, load in self.loads.items() if led.get(p) != load.leader_epoch]
        for p in lost:
            del self.loads[p]
        started = [p for p in led if p not in self.loads]
        for p in started:
            self.loads[p] = Load(p, led[p])
        return sorted(started), sorted(lost)

    def serving(self, partition: int) -> bool:
        load = self.loads.get(partition)
        return load is not None and load.done

    def loading(self, partition: int) -> bool:
        load = self.loads.get(partition)
        return load is not None and not load.done
