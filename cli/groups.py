"""``kbroker groups list|describe|reset-offsets|delete``: consumer-group administration through ``Admin``.

Exit codes: 0 success; 1 the broker refused or did not answer (e.g. ``reset-offsets`` or
``delete`` on a group that still has active members: stop them first); 2 bad usage.
``--bootstrap`` defaults to ``$KBROKER_BOOTSTRAP``, else 127.0.0.1:7092.
"""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from kbroker.cli.output import BOOTSTRAP, OUTPUT, TIMEOUT, OutputFormat, admin_session, emit

__all__ = ["groups_app"]

groups_app = typer.Typer(
    name="groups",
    help="List, describe, reset the offsets of, and delete consumer groups.",
    no_args_is_help=True,
    add_completion=False,
)


@groups_app.command("list")
def list_(bootstrap: str | None = BOOTSTRAP, timeout: float = TIMEOUT, output: OutputFormat = OUTPUT) -> None:
    """List the consumer groups (with active members or committed offsets).

    Example: kbroker groups list --output json
    """
    with admin_session(bootstrap, timeout) as admin:
        listings = admin.list_group_listings()
    rows = [{"group": g.group_id, "state": g.state, "members": g.member_count} for g in listings]

    def table() -> Table:
        out = Table("Group", "State", "Members", title=f"{len(rows)} group{'s' if len(rows) != 1 else ''}")
        for row in rows:
            out.add_row(Text(row["group"]), row["state"], str(row["members"]))  # a group id may hold "[...]"
        return out

    emit(output, rows, table)


@groups_app.command("describe")
def describe(
    group: str = typer.Argument(..., help="Group id."),
    bootstrap: str | None = BOOTSTRAP,
    timeout: float = TIMEOUT,
    output: OutputFormat = OUTPUT,
) -> None:
    """Show a group's state, members, and per partition: owner, committed offset, high watermark, lag.

    Example: kbroker groups describe billing
    """
    with admin_session(bootstrap, timeout) as admin:
        info = admin.describe_group(group)

    def table() -> Table:
        out = Table(
            "Topic", "Partition", "Member", "Committed", "High watermark", "Lag",
            title=f"Group {escape(info.group_id)}: {info.state}, {len(info.members)} member{'s' if len(info.members) != 1 else ''}",
        )  # fmt: skip
        for p in info.partitions:
            out.add_row(
                p.topic, str(p.partition), Text(p.member or "-"), "-" if p.committed_offset is None else str(p.committed_offset),
                "?" if p.high_watermark < 0 else str(p.high_watermark), "-" if p.lag is None else str(p.lag),
            )  # fmt: skip
        return out

    emit(output, info, table)


@groups_app.command("reset-offsets")
def reset_offsets(
    group: str = typer.Argument(..., help="Group id (it must have no active members)."),
    topic: str = typer.Option(..., "--topic", "-t", help="Topic whose offsets to reset."),
    to_earliest: bool = typer.Option(False, "--to-earliest", help="To the log start of each partition."),
    to_latest: bool = typer.Option(False, "--to-latest", help="To the high watermark of each partition (skip everything)."),
    to_offset: int | None = typer.Option(None, "--to-offset", min=0, help="To this offset (clamped to each log)."),
    to_timestamp: int | None = typer.Option(None, "--to-timestamp", min=0, help="To the first record at/after this time (ms since the epoch)."),
    partition: list[int] | None = typer.Option(None, "--partition", "-p", min=0, help="Only this partition (repeatable)."),
    bootstrap: str | None = BOOTSTRAP,
    timeout: float = TIMEOUT,
    output: OutputFormat = OUTPUT,
) -> None:
    """Set a group's committed offsets for a topic; exactly one of --to-earliest, --to-latest,
    --to-offset, --to-timestamp.

    Example: kbroker groups reset-offsets billing --topic orders --to-earliest
    """
    chosen = [flag for flag, on in (("--to-earliest", to_earliest), ("--to-latest", to_latest),
                                    ("--to-offset", to_offset is not None), ("--to-timestamp", to_timestamp is not None)) if on]  # fmt: skip
    if len(chosen) != 1:
        raise typer.BadParameter(
            f"give exactly one of --to-earliest, --to-latest, --to-offset, --to-timestamp (got {', '.join(chosen) or 'none'})"
        )
    to = "earliest" if to_earliest else "latest" if to_latest else None
    with admin_session(bootstrap, timeout) as admin:
        done = admin.reset_offsets(group, topic, to=to, offset=to_offset, timestamp_ms=to_timestamp, partitions=partition or None)
    rows = [{"topic": tp.topic, "partition": tp.partition, "offset": offset} for tp, offset in sorted(done.items())]

    def table() -> Table:
        out = Table("Topic", "Partition", "New committed offset", title=f"Group {group}: offsets reset")
        for row in rows:
            out.add_row(row["topic"], str(row["partition"]), str(row["offset"]))
        return out

    emit(output, rows, table)


@groups_app.command("delete")
def delete(
    group: str = typer.Argument(..., help="Group id (it must have no active members)."),
    bootstrap: str | None = BOOTSTRAP,
    timeout: float = TIMEOUT,
) -> None:
    """Delete a group and its committed offsets.

    Example: kbroker groups delete billing
    """
    with admin_session(bootstrap, timeout) as admin:
        admin.delete_group(group)
    typer.echo(f"Deleted group {group!r}.")
