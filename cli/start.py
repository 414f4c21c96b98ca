"""``kbroker start``: run the broker (supervisor, controller, workers) in the foreground.

Settings come from the flags, then ``--config FILE`` (TOML: ``[broker]`` settings and
``[topic_defaults]``, see ``config_file.py``), then the flags' defaults: a flag given on the
command line always wins. On a terminal a live panel (workers, leaders, rates) sits above the
log lines (``start_panel.py``); ``--no-ui``, or a stdout that is not a terminal, gives plain log
lines on stderr. ``kbroker stop --data-dir DIR`` stops a broker started in the background.

Exit codes: 0 after a clean stop (SIGINT / SIGTERM), 1 when the broker cannot start (data
directory in use, port taken, damaged cluster file), 2 for bad usage (typer; also a bad
``--config`` file).

Imports of the broker itself happen inside the command, so that ``kbroker --help`` and the
spawned workers (which import this module as part of ``kbroker.cli.main``) stay light.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import typer

__all__ = ["start"]

_LOG_LEVELS = ("debug", "info", "warning", "error")


def start(
    ctx: typer.Context,
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
    storage_retry_interval_ms: int = typer.Option(
        5000, "--storage-retry-interval-ms", min=1,
        help="A replica whose disk failed (I/O error, disk full) is taken offline; reopen it this often until it works.",
    ),
    max_request_bytes: int = typer.Option(
        100 << 20, "--max-request-bytes", min=1024, help="Largest request accepted (Kafka's socket.request.max.bytes); larger ones get an error."
    ),
    max_in_flight_requests: int = typer.Option(
        1000, "--max-in-flight-requests", min=1, help="Requests one connection may have unanswered at a worker; more get an error."
    ),
    max_connections: int = typer.Option(
        0, "--max-connections", min=0,
        help="TCP connections each broker process (bootstrap, every worker) keeps at most; more are refused with an error (0: unlimited).",
    ),
    producer_byte_rate: int = typer.Option(
        0, "--producer-byte-rate", min=0, help="Quota: produce bytes/s per client id on each worker, throttled not refused (0: none)."
    ),
    consumer_byte_rate: int = typer.Option(
        0, "--consumer-byte-rate", min=0, help="Quota: fetch bytes/s per client id on each worker, throttled not refused (0: none)."
    ),
    fault_injection: bool = typer.Option(
        False, "--fault-injection", hidden=True, help="Tests only: let InjectFault requests arm storage fault points."
    ),
    log_level: str = typer.Option("info", "--log-level", help=f"One of {', '.join(_LOG_LEVELS)}."),
    default_partitions: int = typer.Option(1, "--default-partitions", min=1, help="Partitions of topics created without a count (and auto-created ones)."),
    default_replication_factor: int = typer.Option(
        3, "--default-replication-factor", min=1, help="Replication factor of topics created without one (capped by the live workers)."
    ),
    config: Path | None = typer.Option(
        None, "--config", dir_okay=False, help="TOML file: \\[broker] settings (flag names with _) and \\[topic_defaults] (Kafka topic configs)."
    ),
    no_ui: bool = typer.Option(False, "--no-ui", help="Plain log lines, no live panel (also the case when stdout is not a terminal)."),
    curve_secret_key: Path | None = typer.Option(
        None, "--curve-secret-key", dir_okay=False, help="The broker's NAME.key_secret (kbroker keys generate): turns on CURVE encryption and authentication."
    ),
    curve_allow: Path | None = typer.Option(
        None, "--curve-allow", file_okay=False, help="Directory of the allowed clients' public .key files (re-read when it changes)."
    ),
    curve_super_user: list[Path] = typer.Option(
        [], "--curve-super-user", dir_okay=False, help="A public .key file whose client may do everything (ACLs aside); repeatable."
    ),
) -> None:
    """Run the broker in the foreground; Ctrl-C or SIGTERM stops it cleanly.

    On a terminal a live panel (workers, leaders, rates) sits above the log lines.

    Examples: kbroker start --workers 3 --data-dir ./kbroker-data --port 7092
              kbroker start --config broker.toml --no-ui > broker.log 2>&1 &   (then: kbroker stop --data-dir ...)
    """
    settings: dict[str, Any] = dict(
        workers=workers, data_dir=data_dir, host=host, port=port, advertised_host=advertised_host,
        auto_create_topics=auto_create_topics, session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=heartbeat_interval_ms, log_retention_check_interval_ms=log_retention_check_interval_ms,
        storage_retry_interval_ms=storage_retry_interval_ms, fault_injection=fault_injection,
        max_request_bytes=max_request_bytes, max_in_flight_requests=max_in_flight_requests, max_connections=max_connections,
        producer_byte_rate=producer_byte_rate, consumer_byte_rate=consumer_byte_rate,
        log_level=log_level, default_partitions=default_partitions,
        default_replication_factor=default_replication_factor, no_ui=no_ui,
    )  # fmt: skip
    topic_defaults = _apply_config_file(ctx, config, settings)
    workers, data_dir, log_level, no_ui = settings["workers"], Path(settings["data_dir"]), settings["log_level"], settings["no_ui"]
    if log_level.lower() not in _LOG_LEVELS:
        raise typer.BadParameter(f"expected one of {', '.join(_LOG_LEVELS)}", param_hint="--log-level")
    if workers < 1 or not 0 <= settings["port"] <= 65535:
        raise typer.BadParameter("workers must be at least 1 and port 0..65535", param_hint="--config")

    from kbroker.actors.datadir import ClusterFileError, DataDirInUseError
    from kbroker.actors.process_logging import configure_logging
    from kbroker.actors.supervisor import BrokerConfig, StartupError, Supervisor

    level = getattr(logging, log_level.upper())
    panel = None
    if not no_ui and sys.stdout.isatty() and sys.stderr.isatty():
        from kbroker.cli.start_panel import StartPanel

        panel = StartPanel()
        panel.start()
    configure_logging(level, "supervisor")
    try:
        broker = BrokerConfig(
            workers=workers,
            data_dir=data_dir,
            host=settings["host"],
            port=settings["port"],
            advertised_host=settings["advertised_host"],
            auto_create_topics=settings["auto_create_topics"],
            default_partitions=settings["default_partitions"],
            default_replication_factor=settings["default_replication_factor"],
            session_timeout_ms=settings["session_timeout_ms"],
            heartbeat_interval_ms=settings["heartbeat_interval_ms"],
            log_retention_check_interval_ms=settings["log_retention_check_interval_ms"],
            storage_retry_interval_ms=settings["storage_retry_interval_ms"],
            fault_injection=settings["fault_injection"],
            max_request_bytes=settings["max_request_bytes"],
            max_in_flight_requests=settings["max_in_flight_requests"],
            max_connections=settings["max_connections"],
            producer_byte_rate=settings["producer_byte_rate"],
            consumer_byte_rate=settings["consumer_byte_rate"],
            log_level=level,
            topic_defaults=tuple(sorted(topic_defaults.items())),
            curve=_curve_config(curve_secret_key, curve_allow, curve_super_user),
        )
        if broker.curve is not None:  # the live panel's Admin connects as the broker itself (a super user)
            os.environ["KBROKER_CURVE_SECRET_KEY"] = os.environ["KBROKER_CURVE_SERVER_KEY"] = broker.curve.secret_key_file
        os.umask(0o077)  # data, metadata and logs: owner-only (files 0600, directories 0700), workers too
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(data_dir, 0o700)
        code = Supervisor(broker).run()
    except (DataDirInUseError, ClusterFileError, StartupError) as exc:
        code = -1
        message = f"error: {exc}"
    finally:
        logging.shutdown()
        if panel is not None:
            panel.stop()
    if code == -1:
        typer.echo(message, err=True)
        raise typer.Exit(1)
    raise typer.Exit(code)


def _curve_config(secret_key: Path | None, allow: Path | None, super_users: list[Path]) -> Any:
    """CURVE needs --curve-secret-key and --curve-allow together; --curve-super-user only with them."""
    if secret_key is None and allow is None and not super_users:
        return None
    if secret_key is None or allow is None:
        raise typer.BadParameter(
            "CURVE needs both --curve-secret-key FILE and --curve-allow DIR (create keys with `kbroker keys generate`)",
            param_hint="--curve-secret-key/--curve-allow",
        )
    from kbroker.transport.curve import CurveServerConfig

    return CurveServerConfig(str(secret_key.resolve()), str(allow.resolve()), tuple(str(p.resolve()) for p in super_users))


def _apply_config_file(ctx: typer.Context, path: Path | None, settings: dict[str, Any]) -> dict[str, str]:
    """Settings from ``--config`` replace the defaults of flags not given on the command line; returns the topic defaults."""
    if path is None:
        return {}
    from kbroker.cli.config_file import ConfigFileError, load_start_config
    from kbroker.cli.output import fail

    try:
        loaded = load_start_config(path)
    except ConfigFileError as exc:
        raise fail(str(exc), 2) from None
    for key, value in loaded.broker.items():
        source = ctx.get_parameter_source(key)
        if source is None or source.name not in ("COMMANDLINE", "ENVIRONMENT"):
            settings[key] = value
    return loaded.topic_defaults
