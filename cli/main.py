"""The ``kbroker`` command line.

Exit codes: 0 success, 1 a broker-side error, 2 bad usage (typer's own convention for usage errors).
"""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console

from kbroker import __version__

app = typer.Typer(
    name="kbroker",
    help="kbroker: a distributed event log and pub/sub broker (Kafka-style) on ZeroMQ and actors.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kbroker {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """kbroker command line."""


@app.command()
def start(
    workers: int = typer.Option(os.cpu_count() or 1, "--workers", "-w", min=1, help="Number of worker processes (brokers)."),
    data_dir: Path = typer.Option(Path("kbroker-data"), "--data-dir", help="Directory for logs and metadata."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(7092, "--port", min=1, max=65535, help="Bootstrap port."),
) -> None:
    """Run the broker in the foreground.

    Example: kbroker start --workers 3 --data-dir ./kbroker-data
    """
    console.print(
        f"[bold]kbroker {__version__}[/bold]: the storage engine is in place; the networked broker "
        f"(supervisor, {workers} workers on tcp://{host}:{port}, data in {data_dir}) arrives with the next step."
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
