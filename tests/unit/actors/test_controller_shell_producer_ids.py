"""ProducerIdAllocator: ids from persisted blocks, never repeated across restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbroker.actors.producer_ids import MAX_PRODUCER_EPOCH, ProducerIdAllocator
from kbroker.errors import CorruptRecordError


def test_ids_grow_and_a_restart_resumes_after_the_reserved_block(tmp_path: Path) -> None:
    path = tmp_path / "controller" / "producer-ids.json"
    first = ProducerIdAllocator(path, block_size=10)
    ids = [first.allocate() for _ in range(12)]  # crosses into a second block
    assert ids == list(range(12))
    assert path.exists()

    second = ProducerIdAllocator(path, block_size=10)  # as after a crash: the unused rest of block 2 is skipped
    assert second.allocate() == 20


def test_epoch_bumps_for_issued_ids_only(tmp_path: Path) -> None:
    ids = ProducerIdAllocator(tmp_path / "p.json", block_size=5)
    pid, epoch = ids.init_producer(-1, -1)
    assert (pid, epoch) == (0, 0)
    assert ids.init_producer(pid, 0) == (pid, 1)
    assert ids.init_producer(999, 3)[0] == 1  # never issued: a fresh id
    assert ids.init_producer(pid, MAX_PRODUCER_EPOCH) == (2, 0)  # epoch exhausted: a fresh id


def test_in_memory_allocation_needs_no_file() -> None:
    ids = ProducerIdAllocator(None)
    assert [ids.allocate() for _ in range(3)] == [0, 1, 2]


@pytest.mark.parametrize("text", ["not json", "[]", '{"version": 1}', '{"version": 1, "next_block": -1}', '{"version": 2, "next_block": 5}'])
def test_a_damaged_file_is_an_error_not_a_reset(tmp_path: Path, text: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(text)
    with pytest.raises(CorruptRecordError):
        ProducerIdAllocator(path)
