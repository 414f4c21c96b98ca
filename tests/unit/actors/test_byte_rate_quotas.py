"""Client byte-rate quotas (actors/quotas.py): token buckets per client id, and delayed replies."""

from __future__ import annotations

import threading

import pytest

from kbroker.actors.quotas import ByteRateQuota, DelayedReplies


def test_a_client_within_its_burst_is_not_throttled() -> None:
    quota = ByteRateQuota(1000)
    assert quota.record("a", 600, now=0.0) == 0.0
    assert quota.record("a", 400, now=0.0) == 0.0


def test_going_over_waits_exactly_as_long_as_the_refill_takes() -> None:
    quota = ByteRateQuota(1000)
    assert quota.record("a", 1500, now=0.0) == pytest.approx(0.5)  # 500 bytes short at 1000 B/s
    assert quota.record("a", 100, now=0.5) == pytest.approx(0.1)  # refilled to 0, then 100 short
    assert quota.record("a", 0, now=10.0) == 0.0  # refills, but never past the burst
    assert quota.record("a", 1001, now=10.0) == pytest.approx(0.001)


def test_the_long_run_rate_is_the_quota() -> None:
    quota = ByteRateQuota(10_000)
    now, sent = 0.0, 0
    for _ in range(1000):  # a greedy client that waits out every throttle
        now += quota.record("greedy", 1000, now)
        sent += 1000
    assert sent / now == pytest.approx(10_000, rel=0.02)


def test_clients_are_throttled_independently() -> None:
    quota = ByteRateQuota(1000)
    assert quota.record("a", 3000, now=0.0) == pytest.approx(2.0)
    assert quota.record("b", 500, now=0.0) == 0.0


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        ByteRateQuota(0)


def test_delayed_replies_run_in_due_order() -> None:
    delayed = DelayedReplies()
    done = threading.Event()
    order: list[str] = []
    try:
        delayed.call_later(0.05, lambda: order.append("late"))
        delayed.call_later(0.0, lambda: order.append("now"))
        delayed.call_later(0.06, done.set)
        assert done.wait(5)
        assert order == ["now", "late"]
    finally:
        delayed.stop()
