"""``kbroker topics create|list|describe|delete|alter``: topic administration through ``Admin``.

Exit codes: 0 success; 1 the broker refused or did not answer (the broker's message is printed
as one ``error: ...`` line on stderr); 2 bad usage (typer's convention; also a malformed
``--config`` or ``--bootstrap``). ``--bootstrap`` defaults to ``$KBROKER_BOOTSTRAP``, else
127.0.0.1:7092.

The client is imported inside the commands so that ``kbroker --help`` stays light.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from kbroker.transport.client.admin import Admin

__all__ = ["topics_app"]

topics_app = typer.Typer(
    name="topics",
    help="Create, list, describe, alter and delete topics.",
    no_args_is_help=True,
    add_completion=False,
)

_BOOTSTRAP = typer.Option(
    None, "--bootstrap", "-b", envvar="KBROKER_BOOTSTRAP", show_envvar=True,
    help="Bootstrap address, host:port or tcp://host:port (default 127.0.0.1:7092).",
)  # fmt: skip
_TIMEOUT = typer.Option(30.0, "--timeout", min=0.001, help="Seconds to wait for the broker's answer.")


def _out() -> Console:
    """Stdout; when it is not a terminal (a pipe, a file) tables are not squeezed into 80 columns."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def _admin(bootstrap: str | None, timeout: float) -> Iterator["Admin"]:
    """An ``Admin``; broker errors become one line on stderr and exit code 1."""
    from kbroker.errors import InvalidConfigError, KBrokerError
    from kbroker.transport.client.admin import Admin

    try:
        admin = Admin(bootstrap, timeout=timeout)
    except InvalidConfigError as exc:  # a malformed --bootstrap: usage
        raise _fail(exc.message, 2) from None
    try:
        yield admin
    except KBrokerError as exc:
        raise _fail(exc.message or type(exc).__name__, 1) from None
    finally:
        admin.close()


def _parse_configs(pairs: list[str] | None) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--config")
        if key in out:
            raise typer.BadParameter(f"{key!r} is given twice", param_hint="--config")
        out[key] = value
    return out


@topics_app.command("create")
def create(
    name: str = typer.Argument(..., help="Topic name: 1-249 of [A-Za-z0-9._-]."),
    partitions: int = typer.Option(1, "--partitions", "-p", min=1, help="Number of partitions."),
    replication_factor: int | None = typer.Option(
        None, "--replication-factor", "-r", min=1, help="Replicas per partition (default: the broker's, capped by the workers)."
    ),
    config: list[str] | None = typer.Option(None, "--config", "-c", help="A topic config KEY=VALUE (repeatable), e.g. retention.ms=60000."),
    bootstrap: str | None = _BOOTSTRAP,
    timeout: float = _TIMEOUT,
) -> None:
    """Create a topic.

    Example: kbroker topics create orders --partitions 6 --replication-factor 3 --config cleanup.policy=compact
    """
    configs = _parse_configs(config)
    with _admin(bootstrap, timeout) as admin:
        admin.create_topic(name, partitions, replication_factor, configs or None)
    typer.echo(f"Created topic {name!r} with {partitions} partition{'s' if partitions != 1 else ''}.")


@topics_app.command("list")
def list_(bootstrap: str | None = _BOOTSTRAP, timeout: float = _TIMEOUT) -> None:
    """List the topics with their partition counts and replication factors."""
    with _admin(bootstrap, timeout) as admin:
        topics = admin._topic_metadata()
    table = Table("Topic", "Partitions", "Replication factor", title=f"{len(topics)} topic{'s' if len(topics) != 1 else ''}")
    for topic in topics:
        factor = max((len(p.replicas) for p in topic.partitions), default=0)
        table.add_row(topic.name, str(len(topic.partitions)), str(factor))
    _out().print(table)


@topics_app.command("describe")
def describe(
    name: str = typer.Argument(..., help="Topic name."),
    bootstrap: str | None = _BOOTSTRAP,
    timeout: float = _TIMEOUT,
) -> None:
    """Show a topic's partitions (leader, replicas, ISR, offsets) and its effective config."""
    with _admin(bootstrap, timeout) as admin:
        info = admin.describe_topic(name)
    factor = max((len(p.replicas) for p in info.partitions), default=0)
    table = Table(
        "Partition", "Leader", "Epoch", "Replicas", "ISR", "Log start", "High watermark", "Log end",
        title=f"Topic {info.name}: {len(info.partitions)} partitions, replication factor {factor}",
    )  # fmt: skip
    for p in info.partitions:
        table.add_row(
            str(p.partition), "none" if p.leader < 0 else str(p.leader), str(p.leader_epoch),
            ",".join(map(str, p.replicas)), ",".join(map(str, p.isr)),
            _offset(p.log_start_offset), _offset(p.high_watermark), _offset(p.log_end_offset),
        )  # fmt: skip
    console = _out()
    console.print(table)
    configs = Table("Config", "Value", title="Effective config")
    for key, value in info.config.items():
        configs.add_row(key, value)
    console.print(configs)


def _offset(value: int) -> str:
    return "?" if value < 0 else str(value)


@topics_app.command("delete")
def delete(
    name: str = typer.Argument(..., help="Topic name."),
    bootstrap: str | None = _BOOTSTRAP,
    timeout: float = _TIMEOUT,
) -> None:
    """Delete a topic and its data."""
    with _admin(bootstrap, timeout) as admin:
        admin.delete_topic(name)
    typer.echo(f"Deleted topic {name!r}.")


@topics_app.command("alter")
def alter(
    name: str = typer.Argument(..., help="Topic name."),
    config: list[str] | None = typer.Option(None, "--config", "-c", help="Set a topic config KEY=VALUE (repeatable)."),
    delete_config: list[str] | None = typer.Option(
        None, "--delete-config", help="Remove an override KEY, back to the broker default (repeatable)."
    ),
    bootstrap: str | None = _BOOTSTRAP,
    timeout: float = _TIMEOUT,
) -> None:
    """Change a topic's config; keys not named keep their values.

    Example: kbroker topics alter orders --config retention.ms=3600000 --delete-config segment.bytes
    """
    changes: dict[str, str | None] = dict(_parse_configs(config))
    for key in delete_config or []:
        if key in changes:
            raise typer.BadParameter(f"{key!r} is both set and deleted", param_hint="--delete-config")
        changes[key] = None
    if not changes:
        raise typer.BadParameter("name at least one --config KEY=VALUE or --delete-config KEY", param_hint="--config")
    with _admin(bootstrap, timeout) as admin:
        admin.alter_topic_config(name, changes)
    typer.echo(f"Altered topic {name!r}: " + ", ".join(f"{k}={'(default)' if v is None else v}" for k, v in changes.items()))
