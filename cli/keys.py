"""``kbroker keys generate NAME --dir DIR``: a CURVE key pair in ZeroMQ's certificate format.

Writes ``DIR/NAME.key`` (the public key: give it to the broker's ``--curve-allow`` directory, or
to clients as ``--curve-server-key``) and ``DIR/NAME.key_secret`` (both keys: keep it private).
``DIR`` is created 0700, the files 0600. Existing keys are never overwritten.

Exit codes: 0 written; 1 the files exist or cannot be written; 2 bad usage.
"""

from __future__ import annotations

from pathlib import Path

import typer

from kbroker.cli.output import fail

__all__ = ["keys_app"]

keys_app = typer.Typer(name="keys", help="Create CURVE key pairs for the broker and its clients.", no_args_is_help=True, add_completion=False)


@keys_app.command("generate")
def generate(
    name: str = typer.Argument(..., help="Base name of the files: NAME.key and NAME.key_secret."),
    directory: Path = typer.Option(Path("."), "--dir", "-d", file_okay=False, help="Where to write them (created 0700)."),
) -> None:
    """Write NAME.key (public) and NAME.key_secret (secret) in DIR.

    Example: kbroker keys generate broker --dir ./keys && kbroker keys generate alice --dir ./keys
    """
    from kbroker.transport.curve import CurveKeyError, generate_keys

    try:
        public, secret = generate_keys(name, directory)
    except CurveKeyError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"cannot write keys in {directory}: {exc.strerror}") from None
    typer.echo(f"public key: {public}\nsecret key: {secret} (keep it private)")
