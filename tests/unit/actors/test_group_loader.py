"""Loading __consumer_offsets on becoming leader: which partitions, up to where, records in order."""

from __future__ import annotations

from kbroker.actors.group_loader import Leadership, Load, records_in
from kbroker.storage.records import build_batch


def _batch(base: int, pairs: list[tuple[bytes, bytes | None]]) -> bytes:
    return build_batch([(v, k, None, 1000) for k, v in pairs], base_offset=base)


def test_leadership_starts_loads_and_drops_on_loss_or_new_epoch() -> None:
    lead = Leadership()
    assert lead.update({0: 3, 2: 1}) == ([0, 2], [])
    assert lead.loading(0) and not lead.serving(0) and not lead.loading(1)
    assert lead.update({0: 3, 2: 1}) == ([], [])
    assert lead.update({0: 4}) == ([0], [0, 2])  # new epoch: reload; 2 lost
    assert lead.loads[0].leader_epoch == 4 and 2 not in lead.loads


def test_a_load_reads_up_to_the_log_end_seen_on_becoming_leader() -> None:
    load = Load(0, 1)
    load.on_described(False, 0, 10)
    assert load.end_offset is None and not load.done  # not leader yet
    load.on_described(True, 2, 5)
    assert load.end_offset == 5 and load.next_offset == 2 and not load.done
    data = _batch(2, [(b"k1", b"a"), (b"k2", b"b")]) + _batch(4, [(b"k1", None)])
    assert load.on_records(data) == [(b"k1", b"a"), (b"k2", b"b"), (b"k1", None)]
    assert load.next_offset == 5 and load.done
    load.on_described(True, 0, 99)  # later growth (its own commits) does not move the goal
    assert load.end_offset == 5


def test_records_before_the_fetch_offset_and_partial_tails_are_skipped() -> None:
    load = Load(0, 1, next_offset=1, end_offset=3)
    whole = _batch(0, [(b"a", b"0"), (b"b", b"1"), (b"c", b"2")])
    assert load.on_records(whole + whole[:20]) == [(b"b", b"1"), (b"c", b"2")]
    assert load.next_offset == 3
    assert records_in(b"") == []
    assert load.on_records(None) == []
