"""What every ``kbroker`` command shares: options, ``--output table|json``, errors, exit codes.

Exit codes (DESIGN.md section 5):

    0  success
    1  a broker-side error: the broker refused, or did not answer (not running, unreachable)
    2  bad usage: unknown flag, bad flag value, malformed --bootstrap or --config (typer's convention)

Errors are one line on stderr, ``error: <what happened and what to do>``, never a traceback,
unless ``kbroker --debug ...`` (or ``KBROKER_DEBUG=1``), which re-raises so the traceback shows.

``--output json`` prints one JSON document on stdout (dataclasses become objects, bytes become
UTF-8 text with invalid bytes replaced), for scripts; ``table`` (the default) prints rich tables.
When stdout is not a terminal, tables get a wide console instead of being squeezed into 80
columns.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator

import typer
from rich.console import Console, RenderableType

if TYPE_CHECKING:
    from kbroker.transport.client.admin import Admin

__all__ = [
    "BOOTSTRAP",
    "OUTPUT",
    "TIMEOUT",
    "OutputFormat",
    "EXIT_OK",
    "EXIT_BROKER",
    "EXIT_USAGE",
    "admin_session",
    "broker_errors",
    "emit",
    "fail",
    "jsonable",
    "set_debug",
    "stdout_console",
]

EXIT_OK, EXIT_BROKER, EXIT_USAGE = 0, 1, 2

BOOTSTRAP = typer.Option(
    None, "--bootstrap", "-b", envvar="KBROKER_BOOTSTRAP", show_envvar=True,
    help="Bootstrap address, host:port or tcp://host:port (default 127.0.0.1:7092).",
)  # fmt: skip
TIMEOUT = typer.Option(30.0, "--timeout", min=0.001, help="Seconds to wait for the broker's answer.")


class OutputFormat(str, enum.Enum):
    table = "table"
    json = "json"


OUTPUT = typer.Option(OutputFormat.table, "--output", "-o", case_sensitive=False, help="table (for people) or json (for scripts).")

_debug = False


def set_debug(on: bool) -> None:
    """``--debug``: let errors propagate with their traceback."""
    global _debug
    _debug = on


def debug() -> bool:
    return _debug


def stdout_console() -> Console:
    """Stdout; when it is not a terminal (a pipe, a file) tables are not squeezed into 80 columns."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


def fail(message: str, code: int = EXIT_BROKER) -> typer.Exit:
    """Print ``error: message`` on stderr; returns the ``typer.Exit`` to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def broker_errors() -> Iterator[None]:
    """Broker errors -> one line and exit 1; anything else unexpected -> one line, exit 1."""
    from kbroker.errors import KBrokerError

    try:
        yield
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except KBrokerError as exc:
        if _debug:
            raise
        raise fail(exc.message or type(exc).__name__) from None
    except Exception as exc:
        if _debug or _is_usage_error(exc):
            raise
        raise fail(f"{type(exc).__name__}: {exc} (run `kbroker --debug ...` for the traceback)") from None


def _is_usage_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith(("typer", "click"))


@contextmanager
def admin_session(bootstrap: str | None, timeout: float) -> Iterator["Admin"]:
    """An ``Admin`` inside ``broker_errors()``; closed on the way out. A malformed --bootstrap is usage (2)."""
    from kbroker.errors import InvalidConfigError
    from kbroker.transport.client.admin import Admin

    try:
        admin = Admin(bootstrap, timeout=timeout)
    except InvalidConfigError as exc:
        if _debug:
            raise
        raise fail(exc.message, EXIT_USAGE) from None
    with broker_errors():
        try:
            yield admin
        finally:
            admin.close()


def jsonable(value: Any) -> Any:
    """Dataclasses, enums, tuples, sets, bytes -> plain JSON values (recursively)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return jsonable(value.value) if not isinstance(value, int) else int(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(jsonable(v) for v in value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return value


def emit(fmt: OutputFormat, data: Any, table: Callable[[], RenderableType | list[RenderableType]]) -> None:
    """Print ``data`` as JSON, or what ``table()`` builds, on stdout."""
    if fmt == OutputFormat.json:
        sys.stdout.write(json.dumps(jsonable(data), indent=2, sort_keys=False) + "\n")
        sys.stdout.flush()
        return
    console = stdout_console()
    rendered = table()
    for item in rendered if isinstance(rendered, list) else [rendered]:
        console.print(item)
