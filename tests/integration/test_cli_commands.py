"""Every read command and its error paths through typer's CliRunner, against a real broker.

Exit codes: 0 success, 1 broker-side (refused, not running), 2 bad usage; errors are one line.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Callable

import pytest
from typer.testing import CliRunner

from _cluster import Cluster, wait_until
from kbroker import Admin
from kbroker.cli.main import app

runner = CliRunner()


def cli(*args: str, input: bytes | str | None = None) -> object:
    return runner.invoke(app, list(args), input=input)


def one_error_line(result: object, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.output)  # type: ignore[attr-defined]
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in result.output  # type: ignore[attr-defined]
    return lines[0]


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def test_topics_read_commands_print_json_for_scripts(cluster: Cluster) -> None:
    boot = ["--bootstrap", cluster.bootstrap]
    assert cli("topics", "create", "jsonic", "-p", "3", "-r", "3", *boot).exit_code == 0
    produced = cli("produce", "jsonic", "--key-separator", ":", "--headers", "source=test,v=2", *boot,
                   input="a:1\nb:2\nc:3\n")  # fmt: skip
    assert produced.exit_code == 0 and "3 record(s) produced" in produced.stdout, produced.output

    listed = json.loads(cli("topics", "list", "--output", "json", *boot).stdout)
    assert {"name": "jsonic", "partitions": 3, "replication_factor": 3} in listed

    def described() -> dict | None:
        doc = json.loads(cli("topics", "describe", "jsonic", "-o", "json", *boot).stdout)
        written = [p for p in doc["partitions"] if p["high_watermark"] > 0]
        return doc if sum(p["high_watermark"] for p in written) == 3 and all(p["size_bytes"] for p in written) else None

    doc = wait_until(described, 20, "describe to show 3 records with sizes", interval=0.1)
    for p in doc["partitions"]:
        assert p["leader"] in p["replicas"] and sorted(p["isr"]) == [0, 1, 2] and p["out_of_sync"] == []
        assert p["log_start_offset"] == 0 and p["log_end_offset"] >= p["high_watermark"]
    assert doc["config"]["cleanup.policy"] == "delete"
    table = cli("topics", "describe", "jsonic", *boot)
    assert table.exit_code == 0 and "Size" in table.stdout and "High watermark" in table.stdout

    consumed = cli("consume", "jsonic", "--from-beginning", "--format", "json", *boot)
    assert consumed.exit_code == 0, consumed.output
    records = [json.loads(line) for line in consumed.stdout.splitlines()]
    assert sorted((r["key"], r["value"]) for r in records) == [("a", "1"), ("b", "2"), ("c", "3")]
    assert all(r["headers"] == [["source", "test"], ["v", "2"]] and r["timestamp_ms"] > 0 and r["offset"] >= 0 for r in records)


def test_status_and_top_once_summarize_the_cluster(cluster: Cluster) -> None:
    with Admin(cluster.bootstrap, timeout=10) as admin:
        admin.create_topic("watched", partitions=2, replication_factor=3)
    status = json.loads(cli("status", "-b", cluster.bootstrap, "-o", "json").stdout)
    assert status["workers_alive"] == 3 and status["topics"] >= 1 and status["offline"] == 0
    assert cli("status", "-b", cluster.bootstrap).stdout.startswith(f"kbroker at {cluster.bootstrap}")
    frame = json.loads(cli("top", "--once", "--interval", "0.1", "-b", cluster.bootstrap, "-o", "json").stdout)
    assert [w["state"] for w in frame["workers"]] == ["up", "up", "up"]
    assert {(p["topic"], p["partition"]) for p in frame["partitions"]} >= {("watched", 0), ("watched", 1)}
    shown = cli("top", "--once", "--interval", "0.1", "-b", cluster.bootstrap, "--view", "partitions", "--topic", "watched")
    assert shown.exit_code == 0 and "watched-0" in shown.stdout and "watched-1" in shown.stdout


def test_errors_are_one_line_with_the_right_exit_code(cluster: Cluster) -> None:
    down = closed_port()
    for args in (["topics", "list"], ["topics", "describe", "x"], ["status"], ["top", "--once"]):
        line = one_error_line(cli(*args, "--bootstrap", down, "--timeout", "1"), 1)
        assert down.split(":")[1] in line, line  # names the address it could not reach
    produced = cli("produce", "t", "--bootstrap", down, "--timeout", "1", input="x\n")
    assert produced.exit_code == 1 and "1 error(s)" in produced.stdout and "is the broker running" in produced.stderr
    assert down.split(":")[1] in one_error_line(cli("consume", "t", "--bootstrap", down, "--timeout-ms", "500"), 1)
    boot = ["--bootstrap", cluster.bootstrap]
    assert "does not exist" in one_error_line(cli("topics", "describe", "ghost", *boot), 1)
    assert "does not exist" in one_error_line(cli("topics", "delete", "ghost", *boot), 1)
    debugged = cli("--debug", "topics", "describe", "ghost", *boot)  # --debug: the exception itself, for its traceback
    assert debugged.exit_code == 1 and type(debugged.exception).__name__ == "UnknownTopicOrPartitionError"
    assert "does not exist" in one_error_line(cli("topics", "describe", "ghost", *boot), 1)  # and off again
    assert "not valid" in one_error_line(cli("topics", "list", "--bootstrap", "nohost:notaport"), 2)
    for bad in (["topics", "list", "--output", "yaml", *boot], ["topics", "create", "t", "--partitions", "0", *boot],
                ["top", "--view", "nonsense", *boot], ["consume", "t", "--format", "xml", *boot],
                ["produce", "t", "--headers", "novalue", *boot], ["status", "--timeout", "-1"], ["nosuchcommand"]):  # fmt: skip
        result = cli(*bad)
        assert result.exit_code == 2, (bad, result.output)
        assert "Traceback" not in result.output


def test_help_has_examples_and_bootstrap_everywhere() -> None:
    for command in (["topics", "create"], ["topics", "list"], ["topics", "describe"], ["produce"], ["consume"],
                    ["top"], ["status"], ["stop"], ["start"]):  # fmt: skip
        shown = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
        assert shown.exit_code == 0, shown.output
        if command != ["stop"] and command != ["start"]:
            assert "--bootstrap" in shown.stdout and "KBROKER_BOOTSTRAP" in shown.stdout, command
    for command in (["topics", "create"], ["topics", "list"], ["produce"], ["consume"], ["top"], ["status"], ["stop"], ["start"]):
        assert "Example" in runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"}).stdout, command
    root = runner.invoke(app, ["--help"], env={"COLUMNS": "200"}).stdout
    assert "--curve-secret-key" in root and "--curve-server-key" in root  # taken by every client command


def test_stop_stops_a_broker_by_its_data_dir(start_cluster: Callable[..., Cluster], tmp_path: Path) -> None:
    cluster = start_cluster(workers=1)
    cluster.close_connections()
    stopped = cli("stop", "--data-dir", str(cluster.data_dir), "--timeout", "20")
    assert stopped.exit_code == 0, stopped.output
    assert f"pid {cluster.pid}" in stopped.stdout
    assert cluster.process.wait(10) == 0  # a clean stop
    cluster.assert_no_orphans()
    assert "no broker is running" in one_error_line(cli("stop", "--data-dir", str(cluster.data_dir)), 1)
    assert one_error_line(cli("stop", "--data-dir", str(tmp_path / "nowhere")), 2)


def test_start_reads_broker_settings_and_topic_defaults_from_a_toml_file(start_cluster: Callable[..., Cluster], tmp_path: Path) -> None:
    config = tmp_path / "broker.toml"
    config.write_text('[broker]\nworkers = 5\ndefault_partitions = 4\n\n[topic_defaults]\n"retention.ms" = 3600000\n')
    cluster = start_cluster(workers=2, args=["--config", str(config)])  # --workers 2 on the command line wins
    with Admin(cluster.bootstrap, timeout=10) as admin:
        assert len(admin.describe_cluster()) == 2
        assert cli("produce", "defaults", "-b", cluster.bootstrap, input="x\n").exit_code == 0  # auto-created
        info = admin.describe_topic("defaults")
        assert len(info.partitions) == 4 and info.config["retention.ms"] == "3600000"
        admin.create_topic("overridden", config={"retention.ms": 1000})
        assert admin.describe_topic("overridden").config["retention.ms"] == "1000"


@pytest.mark.parametrize(
    ("text", "named"),
    [("[broker]\nwokers = 2\n", "broker.wokers"), ("[brokers]\n", "brokers"), ("[broker]\nport = 'x'\n", "broker.port"),
     ('[topic_defaults]\n"retention.mss" = 1\n', "retention.mss"), ("[broker\n", "not valid TOML")],
)  # fmt: skip
def test_a_bad_config_file_is_refused_naming_the_key(tmp_path: Path, text: str, named: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    result = cli("start", "--config", str(config), "--data-dir", str(tmp_path / "data"), "--no-ui")
    assert named in one_error_line(result, 2)
    assert not (tmp_path / "data").exists()
