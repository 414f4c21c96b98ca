"""``--curve-secret-key FILE`` / ``--curve-server-key FILE`` on every client command of ``kbroker``.

Every client (``Admin``, ``Producer``, ``Consumer``) reads ``$KBROKER_CURVE_SECRET_KEY`` /
``$KBROKER_CURVE_SERVER_KEY`` when its ``curve_secret_key`` / ``curve_server_key`` arguments are
not given (transport/client/common.py ``curve_setup``). The console script takes the two options
anywhere on the command line of a client command (``kbroker topics list --curve-secret-key
keys/alice.key_secret --curve-server-key keys/broker.key``), or before the command (``kbroker
--curve-secret-key ... topics list``), and sets those variables for the command: one place
instead of a flag in each command's signature. ``kbroker start`` has its own ``--curve-secret-key``
(the broker's key) and is left alone, as are ``stop`` and ``keys``.
"""

from __future__ import annotations

import os
from typing import MutableMapping

__all__ = ["extract_curve_options", "CURVE_OPTIONS", "NOT_CLIENT_COMMANDS"]

CURVE_OPTIONS = {"--curve-secret-key": "KBROKER_CURVE_SECRET_KEY", "--curve-server-key": "KBROKER_CURVE_SERVER_KEY"}
NOT_CLIENT_COMMANDS = frozenset({"start", "stop", "keys"})


class CurveOptionError(ValueError):
    """An option without its value (the message says which)."""


def _command(argv: list[str]) -> str | None:
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in CURVE_OPTIONS:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def extract_curve_options(argv: list[str], environ: MutableMapping[str, str] = os.environ) -> list[str]:
    """``argv`` without the two options (their values go to ``environ``); unchanged for non-client commands."""
    if _command(argv) in NOT_CLIENT_COMMANDS:
        return argv
    out: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--":
            out.append(arg)
            out.extend(args)
            break
        name, eq, value = arg.partition("=")
        if name in CURVE_OPTIONS:
            if not eq:
                value = next(args, "")
            if not value or value.startswith("--"):
                raise CurveOptionError(f"{name} needs a file path")
            environ[CURVE_OPTIONS[name]] = value
            continue
        out.append(arg)
    return out
