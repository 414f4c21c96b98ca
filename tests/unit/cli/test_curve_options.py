"""``--curve-secret-key/--curve-server-key`` on client commands, and ``kbroker keys generate``."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kbroker.cli.curve_options import CurveOptionError, extract_curve_options
from kbroker.cli.main import app

SECRET, SERVER = "KBROKER_CURVE_SECRET_KEY", "KBROKER_CURVE_SERVER_KEY"


def test_client_commands_hand_their_keys_to_the_clients() -> None:
    env: dict[str, str] = {}
    args = ["topics", "list", "--curve-secret-key", "a.key_secret", "-b", "h:1", "--curve-server-key=b.key"]
    assert extract_curve_options(args, env) == ["topics", "list", "-b", "h:1"]
    assert env == {SECRET: "a.key_secret", SERVER: "b.key"}
    env.clear()
    assert extract_curve_options(["--curve-secret-key", "x", "produce", "t"], env) == ["produce", "t"]
    assert env == {SECRET: "x"}


def test_start_keeps_its_own_curve_flags_and_missing_values_are_usage_errors() -> None:
    env: dict[str, str] = {}
    args = ["start", "--curve-secret-key", "broker.key_secret", "--curve-allow", "allow"]
    assert extract_curve_options(args, env) == args and env == {}
    with pytest.raises(CurveOptionError, match="--curve-server-key needs a file path"):
        extract_curve_options(["topics", "list", "--curve-server-key"], env)


def test_keys_generate_writes_private_files_and_refuses_to_overwrite(tmp_path: Path) -> None:
    runner = CliRunner()
    directory = tmp_path / "keys"
    done = runner.invoke(app, ["keys", "generate", "alice", "--dir", str(directory)])
    assert done.exit_code == 0, done.output
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for name in ("alice.key", "alice.key_secret"):
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600
    again = runner.invoke(app, ["keys", "generate", "alice", "--dir", str(directory)])
    assert again.exit_code == 1 and "already exist" in again.output


def test_acls_commands_check_their_flags_before_connecting(tmp_path: Path) -> None:
    runner = CliRunner()
    both = runner.invoke(app, ["acls", "add", "-p", "*", "--topic", "t", "--group", "g", "--op", "read"])
    assert both.exit_code == 2 and "one resource" in both.output
    bad = runner.invoke(app, ["acls", "add", "-p", "*", "--group", "g", "--op", "write"])
    assert bad.exit_code == 2 and "does not apply to a group" in bad.output
    nothing = runner.invoke(app, ["acls", "remove"])
    assert nothing.exit_code == 2 and "at least one filter" in nothing.output
    missing = runner.invoke(app, ["acls", "list", "-p", str(tmp_path / "nope.key")])
    assert missing.exit_code == 2 and "nope.key" in missing.output
