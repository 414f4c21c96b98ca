"""The ``kbroker`` command line.

Exit codes: 0 success, 1 a broker-side error, 2 bad usage (typer's own convention for usage errors).
"""

from __future__ import annotations

import typer
from rich.console import Console

from kbroker import __version__
from kbroker.cli.consume import consume
from kbroker.cli.produce import produce
from kbroker.cli.start import start
from kbroker.cli.topics import topics_app

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


app.command()(start)
app.add_typer(topics_app, name="topics")
app.command()(produce)
app.command()(consume)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
