"""``kbroker start``: run the broker (supervisor, controller, workers) in the foreground.

Exit codes: 0 after a clean stop (SIGINT / SIGTERM), 1 when the broker cannot start (data
directory in use, port taken, damaged cluster file), 2 for bad usage (typer).

Imports of the broker itself happen inside the command, so that ``kbroker --help`` and the
spawned workers (which import this module as part of ``kbroker.cli.main``) stay light.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import typer

__all__ = ["start"]

_LOG_LEVELS = ("debug", "info", "warning", "error")


def start(
    workers: int = typer.Option(os.cpu_count() or 1, "--workers", "-w", min=1, help="Number of worker processes (brokers)."),
    data_dir: Path = typer.Option(Path("kbroker-data"), "--data-dir", help="Directory for logs and metadata (locked while running)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(7092, "--port", min=0, max=65535, help="Bootstrap port; 0 picks a free one (it is logged)."),
    advertised_host: str | None = typer.Option(
        None, "--advertised-host", help="Host name clients should connect to (default: --host, or this machine's name)."
    ),
    auto_create_topics: bool = typer.Option(
        True, "--auto-create-topics/--no-auto-create-topics", help="Create unknown topics on first produce or subscribe."
    ),
    session_timeout_ms: int = typer.Option(
        6000, "--session-timeout-ms", min=100, help="A worker silent this long is fenced (considered failed)."
    ),
    heartbeat_interval_ms: int = typer.Option(500, "--heartbeat-interval-ms", min=10, help="How often workers heartbeat."),
    log_retention_check_interval_ms: int = typer.Option(
        300_000,
        "--log-retention-check-interval-ms",
        min=1,
        help="How often every worker runs log maintenance (retention, compaction), as Kafka's log.retention.check.interval.ms.",
    ),
    log_level: str = typer.Option("info", "--log-level", help=f"One of {', '.join(_LOG_LEVELS)}."),
) -> None:
    """Run the broker in the foreground; Ctrl-C or SIGTERM stops it cleanly.

    Example: kbroker start --workers 3 --data-dir ./kbroker-data --port 7092
    """
    if log_level.lower() not in _LOG_LEVELS:
        raise typer.BadParameter(f"expected one of {', '.join(_LOG_LEVELS)}", param_hint="--log-level")

    from kbroker.actors.datadir import ClusterFileError, DataDirInUseError
    from kbroker.actors.process_logging import configure_logging
    from kbroker.actors.supervisor import BrokerConfig, StartupError, Supervisor

    level = getattr(logging, log_level.upper())
    configure_logging(level, "supervisor")
    try:
        config = BrokerConfig(
            workers=workers,
            data_dir=data_dir,
            host=host,
            port=port,
            advertised_host=advertised_host,
            auto_create_topics=auto_create_topics,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms,
            log_retention_check_interval_ms=log_retention_check_interval_ms,
            log_level=level,
        )
        code = Supervisor(config).run()
    except (DataDirInUseError, ClusterFileError, StartupError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        logging.shutdown()
    raise typer.Exit(code)
