"""The ``kbroker`` command line.

Exit codes: 0 success, 1 a broker-side error, 2 bad usage (typer's own convention for usage errors).
Errors are one line on stderr; ``kbroker --debug COMMAND`` (or ``KBROKER_DEBUG=1``) shows the
traceback instead (``cli/output.py``).
"""

from __future__ import annotations

import typer
from rich.console import Console

from kbroker import __version__
from kbroker.cli.acls import acls_app
from kbroker.cli.bench_command import bench_app
from kbroker.cli.consume import consume
from kbroker.cli.groups import groups_app
from kbroker.cli.keys import keys_app
from kbroker.cli.output import set_debug
from kbroker.cli.produce import produce
from kbroker.cli.start import start
from kbroker.cli.status import status
from kbroker.cli.stop import stop
from kbroker.cli.top import top
from kbroker.cli.topics import topics_app

app = typer.Typer(
    name="kbroker",
    help="kbroker: a distributed event log and pub/sub broker (Kafka-style) on ZeroMQ and actors.",
    epilog=(
        "Every command that talks to a broker also takes --curve-secret-key FILE and --curve-server-key FILE "
        "(CURVE; default $KBROKER_CURVE_SECRET_KEY / $KBROKER_CURVE_SERVER_KEY), anywhere on its command line."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kbroker {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", envvar="KBROKER_DEBUG", help="Show tracebacks instead of one-line errors."),
) -> None:
    """kbroker command line.

    Every client command also takes --curve-secret-key FILE --curve-server-key FILE (CURVE; or
    $KBROKER_CURVE_SECRET_KEY / $KBROKER_CURVE_SERVER_KEY).
    """
    set_debug(debug)


app.command()(start)
app.command()(stop)
app.command()(status)
app.add_typer(topics_app, name="topics")
app.add_typer(groups_app, name="groups")
app.add_typer(bench_app, name="bench")
app.command()(produce)
app.command()(consume)
app.command()(top)
app.add_typer(keys_app, name="keys")
app.add_typer(acls_app, name="acls")


def main() -> None:
    """The console script: a bug (an exception no command handled) is one line too, unless --debug."""
    from kbroker.cli.output import debug

    import sys

    from kbroker.cli.curve_options import CurveOptionError, extract_curve_options

    try:
        args = extract_curve_options(sys.argv[1:])  # --curve-secret-key/--curve-server-key of client commands
    except CurveOptionError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    try:
        app(args=args, prog_name="kbroker")
    except Exception as exc:  # typer.Exit and usage errors are handled inside app()
        if debug():
            raise
        typer.echo(f"error: {type(exc).__name__}: {exc} (run `kbroker --debug ...` for the traceback)", err=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
