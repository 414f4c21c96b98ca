"""``kbroker acls add|list|remove``: who may do what on a broker with CURVE (see actors/acls.py).

A principal is a client's public ``.key`` file, its 40-character public key, or ``*`` (every
authenticated client). One resource per command: ``--topic NAME``, ``--group NAME`` or
``--cluster`` (``*`` as a name means every topic or group). Operations: topic read, write, create,
delete, describe, alter, all; group read, describe, delete, all; cluster admin, all.
The caller needs cluster admin (a ``--curve-super-user`` key of the broker).

Exit codes: 0 success; 1 the broker refused or did not answer; 2 bad usage.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from kbroker.cli.output import BOOTSTRAP, EXIT_USAGE, OUTPUT, TIMEOUT, OutputFormat, admin_session, emit, fail

__all__ = ["acls_app"]

acls_app = typer.Typer(name="acls", help="Add, list and remove ACLs (brokers with CURVE only).", no_args_is_help=True, add_completion=False)

PRINCIPAL = typer.Option(None, "--principal", "-p", help="A client's public .key file, its public key, or '*'.")
TOPIC = typer.Option(None, "--topic", help="A topic name, or '*' for every topic.")
GROUP = typer.Option(None, "--group", help="A consumer group id, or '*' for every group.")
CLUSTER = typer.Option(False, "--cluster", help="The cluster itself (operation admin).")
OPERATION = typer.Option(None, "--operation", "--op", help="read, write, create, delete, describe, alter, admin or all.")


def _resource(topic: str | None, group: str | None, cluster: bool, required: bool) -> tuple[str | None, str | None]:
    chosen = [(t, n) for t, n in (("topic", topic), ("group", group)) if n is not None]
    if cluster:
        from kbroker.actors.acls import CLUSTER_NAME

        chosen.append(("cluster", CLUSTER_NAME))
    if len(chosen) > 1:
        raise fail("name one resource: --topic, --group or --cluster", EXIT_USAGE)
    if not chosen:
        if required:
            raise fail("name the resource: --topic NAME, --group NAME or --cluster", EXIT_USAGE)
        return None, None
    return chosen[0]


def _principal(value: str | None) -> str | None:
    from kbroker.errors import InvalidConfigError
    from kbroker.transport.client.admin_acls import public_key

    try:
        return None if value is None else public_key(value)
    except InvalidConfigError as exc:
        raise fail(exc.message, EXIT_USAGE) from None


def _rows(acls: list[Any]) -> list[dict[str, str]]:
    return [
        {"principal": a.principal, "resource_type": a.resource_type, "resource_name": a.resource_name, "operation": a.operation}
        for a in acls
    ]


def _table(rows: list[dict[str, str]], title: str) -> Table:
    out = Table("Principal", "Resource", "Name", "Operation", title=title)
    for r in rows:
        # Text: Z85 keys and group names may hold "[...]", which rich would read as markup
        out.add_row(Text(r["principal"]), r["resource_type"], Text(r["resource_name"]), r["operation"])
    return out


@acls_app.command("add")
def add(
    principal: str = typer.Option(..., "--principal", "-p", help="A client's public .key file, its public key, or '*'."),
    operation: list[str] = typer.Option(..., "--operation", "--op", help="Operation to allow; repeatable."),
    topic: str | None = TOPIC,
    group: str | None = GROUP,
    cluster: bool = CLUSTER,
    bootstrap: str | None = BOOTSTRAP,
    timeout: float = TIMEOUT,
) -> None:
    """Allow PRINCIPAL the operations on one resource.

    Example: kbroker acls add --principal keys/alice.key --topic orders --operation write --operation describe
    """
    from kbroker.actors.acls import AclBinding
    from kbroker.errors import KBrokerError

    resource_type, name = _resource(topic, group, cluster, required=True)
    who = _principal(principal)
    try:
        acls = [AclBinding(who, resource_type, name, op) for op in operation]  # type: ignore[arg-type]
    except KBrokerError as exc:
        raise fail(exc.message, EXIT_USAGE) from None
    with admin_session(bootstrap, timeout) as admin:
        created = admin.create_acls(acls)
    typer.echo(f"added {created} ACL{'s' if created != 1 else ''} ({len(acls) - created} already present)")


@acls_app.command("list")
def list_(
    principal: str | None = PRINCIPAL,
    topic: str | None = TOPIC,
    group: str | None = GROUP,
    cluster: bool = CLUSTER,
    operation: str | None = OPERATION,
    bootstrap: str | None = BOOTSTRAP,
    timeout: float = TIMEOUT,
    output: OutputFormat = OUTPUT,
) -> None:
    """List the ACLs (all of them, or those matching the filters).

    Example: kbroker acls list --topic orders --output json
    """
    resource_type, name = _resource(topic, group, cluster, required=False)
    with admin_session(bootstrap, timeout) as admin:
        acls = admin.list_acls(_principal(principal), resource_type, name, operation)
    rows = _rows(acls)
    emit(output, rows, lambda: _table(rows, f"{len(rows)} ACL{'s' if len(rows) != 1 else ''}"))


@acls_app.command("remove")
def remove(
    principal: str | None = PRINCIPAL,
    topic: str | None = TOPIC,
    group: str | None = GROUP,
    cluster: bool = CLUSTER,
    operation: str | None = OPERATION,
    bootstrap: str | None = BOOTSTRAP,
    timeout: float = TIMEOUT,
    output: OutputFormat = OUTPUT,
) -> None:
    """Remove every ACL matching the filters (at least one filter).

    Example: kbroker acls remove --principal keys/alice.key --topic orders
    """
    resource_type, name = _resource(topic, group, cluster, required=False)
    who = _principal(principal)
    if who is None and resource_type is None and operation is None:
        raise fail("give at least one filter: --principal, --topic/--group/--cluster or --operation", EXIT_USAGE)
    with admin_session(bootstrap, timeout) as admin:
        removed = admin.delete_acls(who, resource_type, name, operation)
    rows = _rows(removed)
    emit(output, rows, lambda: _table(rows, f"removed {len(rows)} ACL{'s' if len(rows) != 1 else ''}"))
