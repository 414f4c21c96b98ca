"""Tests for kbroker.storage.faults: named fault points that tests arm and disarm."""

from __future__ import annotations

import errno
import re
from typing import Iterator

import pytest

import kbroker.storage.faults as faults_module
from kbroker.storage.faults import POINTS, arm, armed, disarm, fault_point


@pytest.fixture(autouse=True)
def nothing_left_armed() -> Iterator[None]:
    disarm()
    yield
    disarm()


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


def injected() -> OSError:
    return OSError(errno.EIO, "injected")


def test_points_are_the_documented_ones() -> None:
    documented = re.search(r"Points: (.*?)\.\s", faults_module.__doc__ or "", re.DOTALL)
    assert documented is not None
    assert POINTS == {name.strip() for name in documented.group(1).split(",")}
    assert POINTS == {
        "segment.append",
        "segment.fsync",
        "segment.truncate",
        "segment.roll",
        "log.checkpoint",
        "cleaner.swap",
        "transport.send",
    }


@pytest.mark.parametrize("point", sorted(POINTS))
def test_unarmed_points_do_nothing(point: str) -> None:
    assert fault_point(point) is None


def test_armed_exception_is_raised_every_time_until_disarmed() -> None:
    error = injected()
    arm("segment.fsync", error)
    for _ in range(3):
        with pytest.raises(OSError) as info:
            fault_point("segment.fsync")
        assert info.value is error
    disarm("segment.fsync")
    fault_point("segment.fsync")


def test_armed_callable_is_called_each_time() -> None:
    counter = Counter()
    arm("segment.roll", counter)
    for _ in range(4):
        fault_point("segment.roll")
    assert counter.calls == 4


@pytest.mark.parametrize("times", [1, 2, 5])
def test_times_limits_how_often_a_point_fires(times: int) -> None:
    counter = Counter()
    arm("segment.append", counter, times=times)
    for _ in range(times + 3):
        fault_point("segment.append")
    assert counter.calls == times


def test_times_with_an_exception_disarms_after_the_last_raise() -> None:
    arm("segment.truncate", injected(), times=2)
    for _ in range(2):
        with pytest.raises(OSError):
            fault_point("segment.truncate")
    fault_point("segment.truncate")


def test_arming_one_point_leaves_the_others_alone() -> None:
    arm("segment.append", injected())
    for point in POINTS - {"segment.append"}:
        fault_point(point)
    with pytest.raises(OSError):
        fault_point("segment.append")


def test_arming_again_replaces_the_effect() -> None:
    first, second = Counter(), Counter()
    arm("log.checkpoint", first)
    arm("log.checkpoint", second)
    fault_point("log.checkpoint")
    assert (first.calls, second.calls) == (0, 1)


def test_armed_context_disarms_on_exit_even_after_an_error() -> None:
    with armed("cleaner.swap", injected()):
        with pytest.raises(OSError):
            fault_point("cleaner.swap")
    fault_point("cleaner.swap")

    with pytest.raises(RuntimeError):
        with armed("cleaner.swap", injected()):
            raise RuntimeError("the body failed")
    fault_point("cleaner.swap")


def test_armed_context_with_times() -> None:
    counter = Counter()
    with armed("segment.roll", counter, times=1):
        fault_point("segment.roll")
        fault_point("segment.roll")
    assert counter.calls == 1


def test_disarm_all() -> None:
    for point in POINTS:
        arm(point, injected())
    disarm()
    for point in POINTS:
        fault_point(point)


def test_disarming_an_unarmed_point_is_harmless() -> None:
    disarm("segment.append")
    disarm("no.such.point")


@pytest.mark.parametrize("name", ["segment.apend", "", "SEGMENT.APPEND", "log"])
def test_unknown_point_is_rejected(name: str) -> None:
    with pytest.raises(ValueError, match=f"unknown fault point {re.escape(repr(name))}") as info:
        arm(name, injected())
    assert "segment.append" in str(info.value)  # lists the known points
    fault_point(name)  # nothing was registered under it
    body_ran = False
    with pytest.raises(ValueError, match="unknown fault point"):
        with armed(name, injected()):
            body_ran = True
    assert not body_ran
