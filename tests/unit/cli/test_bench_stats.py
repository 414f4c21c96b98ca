"""kbroker.cli.bench.stats: percentiles, rates, medians of runs, ratios (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kbroker.cli.bench.stats import latency_summary, median_run, percentile, rates, ratio


def test_percentile_is_nearest_rank() -> None:
    samples = [float(i) for i in range(1, 101)]  # 1..100
    assert percentile(samples, 50) == 50
    assert percentile(samples, 99) == 99
    assert percentile(samples, 99.9) == 100
    assert percentile(samples, 100) == 100
    assert percentile([7.0], 50) == 7.0


def test_percentile_of_a_small_sample_rounds_up() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 51) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 99.9) == 4.0


@pytest.mark.parametrize("pct", [0, -1, 100.1])
def test_percentile_rejects_out_of_range(pct: float) -> None:
    with pytest.raises(ValueError):
        percentile([1.0], pct)


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=300))
def test_latency_summary_is_ordered_and_bounded(samples: list[float]) -> None:
    s = latency_summary(samples)
    assert s["count"] == len(samples)
    assert min(samples) <= s["p50_ms"] <= s["p99_ms"] <= s["p99_9_ms"] <= s["max_ms"] == max(samples)
    assert s["p50_ms"] in samples and s["p99_ms"] in samples


def test_latency_summary_of_known_samples() -> None:
    s = latency_summary([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s["p50_ms"], s["p99_ms"], s["max_ms"], s["mean_ms"]) == (3.0, 5.0, 5.0, 3.0)


def test_rates_count_value_bytes_in_decimal_megabytes() -> None:
    r = rates(1_000_000, 100, 2.0)
    assert r == {"records": 1_000_000, "seconds": 2.0, "records_per_s": 500_000.0, "mb_per_s": 50.0}


def test_rates_need_a_positive_duration() -> None:
    with pytest.raises(ValueError):
        rates(10, 100, 0.0)


def test_median_run_keeps_the_median_runs_figures_and_lists_all() -> None:
    runs = [{"records_per_s": 300.0, "seconds": 1.0}, {"records_per_s": 100.0, "seconds": 3.0},
            {"records_per_s": 200.0, "seconds": 1.5}]  # fmt: skip
    chosen = median_run(runs)
    assert chosen["records_per_s"] == 200.0 and chosen["seconds"] == 1.5
    assert chosen["runs"] == [300.0, 100.0, 200.0]
    assert "runs" not in runs[2]  # the input is not modified


def test_median_run_of_an_even_count_takes_the_lower_middle_and_other_keys() -> None:
    runs = [{"mb_per_s": 4.0}, {"mb_per_s": 1.0}, {"mb_per_s": 3.0}, {"mb_per_s": 2.0}]
    assert median_run(runs, key="mb_per_s")["mb_per_s"] == 2.0
    with pytest.raises(ValueError):
        median_run([])


def test_ratio() -> None:
    assert ratio(500.0, 100.0) == 5.0
    assert ratio(1.0, 0.0) is None
