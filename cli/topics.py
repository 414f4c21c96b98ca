"""``kbroker topics create|list|describe|delete|alter``: topic administration through ``Admin``.

Exit codes: 0 success; 1 the broker refused or did not answer (the broker's message is printed
as one ``error: ...`` line on stderr); 2 bad usage (typer's convention; also a malformed
``--config`` or ``--bootstrap``). ``--bootstrap`` defaults to ``$KBROKER_BOOTSTRAP``, else
127.0.0.1:7092. ``list`` and ``describe`` take ``--output json`` (``output.py``); ``describe``
marks out-of-sync replicas with ``*`` and shows each leader replica's size on disk (from
``Admin.describe_worker_stats``).

The client is imported inside the commands so that ``kbroker --help`` stays light.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from kbroker.cli.output import BOOTSTRAP, OUTPUT, TIMEOUT, OutputFormat, admin_session, emit

__all__ = ["topics_app", "format_bytes"]

topics_app = typer.Typer(
    name="topics",
    help="Create, list, describe, alter and delete topics.",
    no_args_is_help=True,
    add_completion=False,
)

_BOOTSTRAP = BOOTSTRAP
_TIMEOUT = TIMEOUT
_admin = admin_session


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
def list_(bootstrap: str | None = _BOOTSTRAP, timeout: float = _TIMEOUT, output: OutputFormat = OUTPUT) -> None:
    """List the topics with their partition counts and replication factors.

    Example: kbroker topics list --output json
    """
    with _admin(bootstrap, timeout) as admin:
        topics = admin._topic_metadata()
    rows = [
        {"name": t.name, "partitions": len(t.partitions), "replication_factor": max((len(p.replicas) for p in t.partitions), default=0)}
        for t in topics
    ]

    def table() -> Table:
        out = Table("Topic", "Partitions", "Replication factor", title=f"{len(rows)} topic{'s' if len(rows) != 1 else ''}")
        for row in rows:
            out.add_row(row["name"], str(row["partitions"]), str(row["replication_factor"]))
        return out

    emit(output, rows, table)


@topics_app.command("describe")
def describe(
    name: str = typer.Argument(..., help="Topic name."),
    bootstrap: str | None = _BOOTSTRAP,
    timeout: float = _TIMEOUT,
    output: OutputFormat = OUTPUT,
) -> None:
    """Show a topic's partitions and its effective config.

    Per partition: leader, replicas, ISR (replicas out of sync are marked with *), log start,
    high watermark, log end and the leader's size on disk ("?" where the leader did not answer).

    Example: kbroker topics describe orders --output json
    """
    with _admin(bootstrap, timeout) as admin:
        info = admin.describe_topic(name)
        sizes = _leader_sizes(admin, name)
    factor = max((len(p.replicas) for p in info.partitions), default=0)
    partitions = [
        {
            "partition": p.partition, "leader": p.leader, "leader_epoch": p.leader_epoch,
            "replicas": list(p.replicas), "isr": list(p.isr),
            "out_of_sync": [r for r in p.replicas if r not in p.isr],
            "log_start_offset": p.log_start_offset, "high_watermark": p.high_watermark,
            "log_end_offset": p.log_end_offset, "size_bytes": sizes.get((p.partition, p.leader)),
        }  # fmt: skip
        for p in info.partitions
    ]
    data = {"name": info.name, "replication_factor": factor, "partitions": partitions, "config": info.config}

    def tables() -> list[Any]:
        table = Table(
            "Partition", "Leader", "Epoch", "Replicas", "ISR", "Log start", "High watermark", "Log end", "Size",
            title=f"Topic {info.name}: {len(partitions)} partitions, replication factor {factor}",
            caption="* = replica out of sync (not in the ISR)" if any(p["out_of_sync"] for p in partitions) else None,
        )  # fmt: skip
        for p in partitions:
            table.add_row(
                str(p["partition"]), Text("none", style="bold red") if p["leader"] < 0 else str(p["leader"]),
                str(p["leader_epoch"]), ",".join(map(str, p["replicas"])), isr_text(p["replicas"], p["isr"]),
                _offset(p["log_start_offset"]), _offset(p["high_watermark"]), _offset(p["log_end_offset"]),
                "?" if p["size_bytes"] is None else format_bytes(p["size_bytes"]),
            )  # fmt: skip
        configs = Table("Config", "Value", title="Effective config")
        for key, value in info.config.items():
            configs.add_row(key, value)
        return [table, configs]

    emit(output, data, tables)


def _leader_sizes(admin: Any, topic: str) -> dict[tuple[int, int], int]:
    """(partition, worker) -> size on disk of that worker's replica, from every worker that answers."""
    sizes: dict[tuple[int, int], int] = {}
    for worker in admin.describe_worker_stats():
        for r in worker.replicas:
            if r.topic == topic and r.log_end_offset >= 0:
                sizes[(r.partition, worker.id)] = r.size_bytes
    return sizes


def _offset(value: int) -> str:
    return "?" if value < 0 else str(value)


def isr_text(replicas: list[int], isr: list[int]) -> Text:
    """The replicas, in-sync ones plain and out-of-sync ones as ``3*`` in red."""
    text = Text()
    for i, replica in enumerate(replicas):
        if i:
            text.append(",")
        if replica in isr:
            text.append(str(replica))
        else:
            text.append(f"{replica}*", style="bold red")
    return text


def format_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


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
