"""Flag validation of ``kbroker bench``: BenchOptions.validate (pure) and the command's exit code 2.

The command validates before it starts anything, so these run in-process and fast.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from kbroker.cli.bench import plot, redis_peer
from kbroker.cli.bench.options import BenchOptions, parse_acks
from kbroker.cli.main import app


def test_defaults_are_valid() -> None:
    assert BenchOptions().validate() == []
    assert BenchOptions(acks="all", replication_factor=3, compression="zstd", bootstrap="x:1").validate() == []


@pytest.mark.parametrize(
    ("text", "value"), [("0", 0), ("1", 1), ("all", "all"), ("ALL", "all"), ("-1", "all")]
)
def test_parse_acks(text: str, value: int | str) -> None:
    assert parse_acks(text) == value


@pytest.mark.parametrize(
    ("changes", "flag"),
    [
        ({"records": -5}, "--records"),
        ({"records": 0}, "--records"),
        ({"record_size": 0}, "--record-size"),
        ({"partitions": -1}, "--partitions"),
        ({"producers": 0}, "--producers"),
        ({"consumers": -2}, "--consumers"),
        ({"repeat": 0}, "--repeat"),
        ({"workers": 0}, "--workers"),
        ({"key_count": -1}, "--keys"),
        ({"rate": -10.0}, "--rate"),
        ({"linger_ms": -1.0}, "--linger-ms"),
        ({"max_in_flight": 0}, "--max-in-flight"),
        ({"pace_ms": -1.0}, "--pace-ms"),
        ({"duration_s": -1.0}, "--duration"),
        ({"acks": "7"}, "--acks"),
        ({"compression": "snappy"}, "--compression"),
        ({"send_many": -1}, "--send-many"),
        ({"send_many": 100, "key_count": 10}, "--send-many"),
        ({"replication_factor": 3, "workers": 2}, "--replication-factor"),
    ],
)
def test_each_bad_value_names_its_flag(changes: dict, flag: str) -> None:
    problems = BenchOptions(**changes).validate()
    assert len(problems) == 1 and flag in problems[0], problems


def test_replication_beyond_the_workers_is_fine_against_a_running_broker() -> None:
    assert BenchOptions(replication_factor=3, workers=1, bootstrap="127.0.0.1:7092").validate() == []


runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["produce", "--records", "-5"], "--records must be a positive whole number"),
        (["consume", "--consumers", "0"], "--consumers must be a positive whole number"),
        (["produce", "--acks", "7"], "--acks must be one of 0, 1, all"),
        (["produce", "--compression", "snappy"], "--compression must be one of none, gzip, zstd, lz4"),
        (["latency", "--rate", "0"], "--rate must be positive for a latency run"),
        (["latency", "--max-in-flight", "0"], "--max-in-flight must be a positive whole number"),
        (["latency", "--pace-ms", "-1"], "--pace-ms must not be negative"),
        (["latency", "--record-size", "4"], "at least 8"),
        (["all", "--workers", "2", "--replication-factor", "3"], "needs at least as many workers"),
        (["produce", "--records", "many"], "Invalid value for '--records'"),
    ],
)
def test_bad_flags_exit_2_with_a_clear_message(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["bench", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_compare_without_redis_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no redis-server
    result = runner.invoke(app, ["bench", "compare"])
    assert result.exit_code == 2, result.output
    assert "redis-server is not on PATH" in result.output and "apt-get install redis-server" in result.output
    assert "kbroker[bench]" in result.output


def test_compare_without_redis_py_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_redis(name: str, *args, **kwargs):
        if name == "redis":
            raise ImportError("No module named 'redis'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_redis)
    why = redis_peer.missing()
    assert why is not None and "redis-py" in why and "kbroker[bench]" in why


def test_plot_without_matplotlib_exits_2(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(plot, "available", lambda: False)
    result = runner.invoke(app, ["bench", "produce", "--plot", str(tmp_path / "x.png")])
    assert result.exit_code == 2, result.output
    assert "--plot needs matplotlib" in result.output
