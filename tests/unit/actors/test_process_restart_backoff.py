"""RestartBackoff, exit descriptions and start-up configuration checks of the supervisor."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from kbroker.actors.supervisor import BrokerConfig, RestartBackoff, StartupError, describe_exit


def test_backoff_doubles_up_to_the_maximum() -> None:
    backoff = RestartBackoff(initial=0.1, maximum=1.0, stable_after=10.0)
    delays = [backoff.delay_after_exit(uptime=0.5) for _ in range(6)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_backoff_resets_after_a_stable_run() -> None:
    backoff = RestartBackoff(initial=0.1, maximum=5.0, stable_after=10.0)
    for _ in range(4):
        backoff.delay_after_exit(uptime=1.0)
    assert backoff.delay_after_exit(uptime=10.0) == pytest.approx(0.1)
    assert backoff.delay_after_exit(uptime=1.0) == pytest.approx(0.2)


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RestartBackoff(initial=0, maximum=1)
    with pytest.raises(ValueError):
        RestartBackoff(initial=2, maximum=1)


def test_exit_descriptions_name_the_signal() -> None:
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"
    assert describe_exit(0) == "exit code 0"
    assert describe_exit(3) == "exit code 3"
    assert describe_exit(None) == "still running"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"workers": 0}, "--workers"),
        ({"port": 70000}, "--port"),
        ({"heartbeat_interval_ms": 0}, "positive"),
        ({"heartbeat_interval_ms": 4000, "session_timeout_ms": 6000}, "twice"),
    ],
)
def test_bad_configurations_are_refused_with_the_flag_named(kwargs: dict[str, int], message: str) -> None:
    base: dict[str, object] = {"workers": 1, "data_dir": Path("x")}
    with pytest.raises(StartupError, match=message):
        BrokerConfig(**{**base, **kwargs})  # type: ignore[arg-type]
