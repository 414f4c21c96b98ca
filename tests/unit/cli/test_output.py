"""cli/output.py: JSON rendering, one-line errors and exit codes, --debug."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import typer

from kbroker.cli import output
from kbroker.cli.output import OutputFormat, broker_errors, emit, jsonable
from kbroker.cli.record_format import RecordFormat, format_record
from kbroker.errors import InvalidConfigError, NotLeaderError
from kbroker.transport.client.types import Record, TimestampType


@dataclass(frozen=True)
class Row:
    name: str
    data: bytes
    tags: frozenset[str]
    fmt: OutputFormat


def test_jsonable_makes_plain_values() -> None:
    assert jsonable(Row("a", b"\xffok", frozenset({"y", "x"}), OutputFormat.json)) == {
        "name": "a", "data": "\ufffdok", "tags": ["x", "y"], "fmt": "json",
    }  # fmt: skip
    assert jsonable({1: (1, 2)}) == {"1": [1, 2]}


def test_emit_json_or_table(capsys: pytest.CaptureFixture[str]) -> None:
    emit(OutputFormat.json, [Row("a", b"", frozenset(), OutputFormat.table)], lambda: "unused")
    assert json.loads(capsys.readouterr().out)[0]["name"] == "a"
    emit(OutputFormat.table, None, lambda: ["first", "second"])
    assert capsys.readouterr().out.splitlines() == ["first", "second"]


def test_broker_errors_are_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    for error in (NotLeaderError("not the leader; refresh"), InvalidConfigError("retention.ms: bad")):
        with pytest.raises(typer.Exit) as caught, broker_errors():
            raise error
        assert caught.value.exit_code == 1
        assert capsys.readouterr().err == f"error: {error.message}\n"
    with pytest.raises(typer.Exit) as caught, broker_errors():
        raise ValueError("boom")
    assert caught.value.exit_code == 1 and "ValueError: boom" in capsys.readouterr().err


def test_debug_lets_the_traceback_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output, "_debug", True)
    with pytest.raises(NotLeaderError), broker_errors():
        raise NotLeaderError("x")


def test_a_malformed_bootstrap_is_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as caught, output.admin_session("host:notaport", 1.0):
        pass
    assert caught.value.exit_code == 2 and "not valid" in capsys.readouterr().err


def record(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> Record:
    return Record("t", 2, 41, key, value, headers, 1_700_000_000_000, TimestampType.LOG_APPEND_TIME)


def test_record_formats() -> None:
    r = record(b"k", b"v", [("h", b"\x00\xff")])
    assert format_record(r) == b"v\n" and format_record(r, print_key=True) == b"k\tv\n"
    assert format_record(record(None, None, []), print_key=True) == b"null\tnull\n"
    doc = json.loads(format_record(r, RecordFormat.json))
    assert doc == {
        "topic": "t", "partition": 2, "offset": 41, "timestamp_ms": 1_700_000_000_000, "timestamp_type": "LogAppendTime",
        "key": "k", "value": "v", "headers": [["h", {"base64": "AP8="}]],
    }  # fmt: skip
    assert json.loads(format_record(record(None, None, []), RecordFormat.json))["value"] is None
