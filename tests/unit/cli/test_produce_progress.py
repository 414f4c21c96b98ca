"""kbroker produce's progress bar: only for large inputs, only when enabled (a terminal)."""

from __future__ import annotations

from kbroker.cli.produce_progress import LARGE_FILE, LARGE_STREAM, ProduceProgress


def test_small_inputs_and_pipes_get_no_bar() -> None:
    small = ProduceProgress(1000, enabled=True)
    for _ in range(100):
        small.advance(9)
    assert small._progress is None
    piped = ProduceProgress(LARGE_FILE * 4, enabled=False)
    piped.advance(9)
    assert piped._progress is None


def test_a_large_file_or_a_long_stream_gets_a_bar_with_records_per_second() -> None:
    for total, lines in ((LARGE_FILE, 1), (None, LARGE_STREAM)):
        bar = ProduceProgress(total, enabled=True)
        try:
            for _ in range(lines):
                bar.advance(9)
            assert bar._progress is not None
            task = bar._progress.tasks[0]
            assert task.fields["records"] == lines and task.completed == lines * 10
            assert float(task.fields["rate"].replace(",", "")) > 0
        finally:
            bar.close()
        assert bar._progress is None
