"""``kbroker consume TOPIC``: print records' values (``KEY<TAB>VALUE`` with ``--print-key``), one per line.

Starts at the end of each partition (only new records) unless ``--from-beginning`` or
``--offset N`` (with ``--partition P``). With ``--group G`` the consumer joins group G: it reads
only the partitions the group gives it, starts at the group's committed offsets (the start rules
above apply where none is committed), and commits what it printed. Stops after
``--max-messages`` records, or once every partition is read up to its high watermark, unless
``--follow``; ``--timeout-ms`` stops after that long without a new record. Values are written as raw bytes; a null is printed as ``null``;
``--format json`` prints one JSON object per record instead (``record_format.py``).
Exit codes: 0 done, 1 the broker refused or did not answer, 2 bad usage.
"""

from __future__ import annotations

import sys
import time

import typer

from kbroker.cli.record_format import RecordFormat, format_record

__all__ = ["consume"]

_POLL_MS = 200


def consume(
    topic: str = typer.Argument(..., help="Topic to read."),
    bootstrap: str | None = typer.Option(
        None, "--bootstrap", "-b", envvar="KBROKER_BOOTSTRAP", show_envvar=True,
        help="Bootstrap address, host:port or tcp://host:port (default 127.0.0.1:7092).",
    ),
    from_beginning: bool = typer.Option(False, "--from-beginning", help="Start at the oldest record, not the end."),
    partition: int | None = typer.Option(None, "--partition", "-p", min=0, help="Read only this partition."),
    offset: int | None = typer.Option(None, "--offset", min=0, help="Start at this offset (needs --partition)."),
    max_messages: int | None = typer.Option(None, "--max-messages", "-n", min=1, help="Stop after this many records."),
    follow: bool = typer.Option(False, "--follow", "-F", help="Keep waiting for new records (stop with Ctrl-C)."),
    timeout_ms: int | None = typer.Option(None, "--timeout-ms", min=1, help="Stop after this long without a new record."),
    print_key: bool = typer.Option(False, "--print-key", help="Print KEY<TAB>VALUE."),
    group: str | None = typer.Option(None, "--group", "-g", help="Consume as a member of this consumer group (commits offsets)."),
    fmt: RecordFormat = typer.Option(
        RecordFormat.text, "--format", case_sensitive=False,
        help="text (values, or KEY<TAB>VALUE with --print-key) or json (one object per record: key, value, headers, offset, partition, timestamp).",
    ),  # fmt: skip
) -> None:
    """Print the records of a topic.

    Examples: kbroker consume orders --from-beginning --print-key
              kbroker consume orders --partition 0 --offset 42 --max-messages 10 --format json
    """
    from kbroker.errors import InvalidConfigError, KBrokerError
    from kbroker.transport.client.consumer import Consumer
    from kbroker.transport.client.types import TopicPartition

    if offset is not None and partition is None:
        raise typer.BadParameter("--offset needs --partition", param_hint="--offset")
    if group is not None and partition is not None:
        raise typer.BadParameter("--group and --partition exclude each other (the group assigns partitions)", param_hint="--group")
    try:
        consumer = Consumer(
            bootstrap,
            group_id=group,
            auto_offset_reset="earliest" if from_beginning else "latest",
            fetch_max_wait_ms=_POLL_MS,
            request_timeout_ms=30_000 if timeout_ms is None else min(30_000, max(timeout_ms, 100)),
        )
    except InvalidConfigError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    out = sys.stdout.buffer
    count = 0
    try:
        if partition is None:
            consumer.subscribe([topic])
        else:
            consumer.assign([TopicPartition(topic, partition)])
            if offset is not None:
                consumer.seek(TopicPartition(topic, partition), offset)
        last_record = time.monotonic()
        while max_messages is None or count < max_messages:
            records = consumer.poll(_POLL_MS)
            for record in records[: None if max_messages is None else max_messages - count]:
                out.write(format_record(record, fmt, print_key=print_key))
                count += 1
            if records:
                out.flush()
                last_record = time.monotonic()
            elif timeout_ms is not None and (time.monotonic() - last_record) * 1000 >= timeout_ms:
                break
            if not follow and not records and consumer.caught_up() and (group is None or consumer.assignment()):
                break
    except KBrokerError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        pass
    finally:
        out.flush()
        consumer.close()
    typer.echo(f"{count} record(s) consumed", err=True)
