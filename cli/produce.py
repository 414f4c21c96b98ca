"""``kbroker produce TOPIC``: one record per input line (stdin or ``--file``), through ``Producer``.

With ``--key-separator SEP`` each line is ``KEY<SEP>VALUE`` (split at the first SEP; a line
without SEP is reported and skipped). ``--headers k1=v1,k2=v2`` adds those headers to every
record. Large inputs on a terminal get a progress bar with records/s (``produce_progress.py``).
Prints one summary line (records sent, errors) and exits 1 if any record was not delivered
(2: bad usage, as typer's convention).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Iterator

import typer

from kbroker.cli.produce_progress import ProduceProgress

__all__ = ["produce"]


def _parse_headers(text: str | None) -> list[tuple[str, bytes]] | None:
    if text is None:
        return None
    out = []
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE[,KEY=VALUE...], got {item!r}", param_hint="--headers")
        out.append((key.strip(), value.encode()))
    return out


def _lines(stream: IO[bytes]) -> Iterator[bytes]:
    for line in stream:
        if line.endswith(b"\n"):
            line = line[:-1]
            if line.endswith(b"\r"):
                line = line[:-1]
        yield line


def produce(
    topic: str = typer.Argument(..., help="Topic to write to (created on first use if the broker allows)."),
    bootstrap: str | None = typer.Option(
        None, "--bootstrap", "-b", envvar="KBROKER_BOOTSTRAP", show_envvar=True,
        help="Bootstrap address, host:port or tcp://host:port (default 127.0.0.1:7092).",
    ),
    key_separator: str | None = typer.Option(None, "--key-separator", help="Split each line into KEY<SEP>VALUE at the first SEP."),
    acks: str = typer.Option("all", "--acks", help="0, 1 or all."),
    file: Path | None = typer.Option(None, "--file", "-f", exists=True, dir_okay=False, help="Read lines from this file instead of stdin."),
    timeout: float = typer.Option(120.0, "--timeout", min=0.001, help="Seconds to wait for every record to be acknowledged."),
    headers: str | None = typer.Option(None, "--headers", "-H", help="Headers for every record: KEY=VALUE[,KEY=VALUE...]."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar for large inputs (on a terminal)."),
) -> None:
    """Send each line of stdin (or --file) as a record.

    Examples: printf 'k1:hello\\nk2:world\\n' | kbroker produce orders --key-separator :
              kbroker produce orders --file events.txt --acks 1 --headers source=import,v=2
    """
    from kbroker.errors import InvalidConfigError, InvalidRequiredAcksError, KBrokerError
    from kbroker.transport.client.producer import Producer

    if key_separator == "":
        raise typer.BadParameter("must not be empty", param_hint="--key-separator")
    sep = key_separator.encode() if key_separator is not None else None
    record_headers = _parse_headers(headers)
    try:
        producer = Producer(bootstrap, acks=acks, request_timeout_ms=min(timeout * 1000, 30_000), max_block_ms=timeout * 1000)
    except (InvalidConfigError, InvalidRequiredAcksError) as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    sent = skipped = failed = 0
    first_error: list[str] = []

    def done(future: object) -> None:
        nonlocal failed
        error = future.exception()  # type: ignore[attr-defined]
        if error is not None:
            failed += 1
            if not first_error:
                first_error.append(getattr(error, "message", str(error)))

    stream = file.open("rb") if file is not None else sys.stdin.buffer
    bar = ProduceProgress(file.stat().st_size if file is not None else None, enabled=None if progress else False)
    try:
        for number, line in enumerate(_lines(stream), 1):
            bar.advance(len(line))
            key = None
            if sep is not None:
                key, found, value = line.partition(sep)
                if not found:
                    skipped += 1
                    typer.echo(f"error: line {number} has no key separator {key_separator!r}; skipped", err=True)
                    continue
            else:
                value = line
            try:
                future = producer.send(topic, value, key=key, headers=record_headers)
            except KBrokerError:
                skipped += 1  # this record was not sent: it counts as an error
                raise
            future.add_done_callback(done)
            sent += 1
        producer.flush(timeout)
    except KBrokerError as exc:  # no metadata in time, buffer full, flush timed out
        first_error.insert(0, exc.message)
    finally:
        bar.close()
        if file is not None:
            stream.close()
        producer.close(timeout=5)  # what is still unsent fails (and is counted) here
    if first_error:
        typer.echo(f"error: {first_error[0]}", err=True)
    errors = skipped + failed
    typer.echo(f"{sent - failed} record(s) produced to {topic!r}, {errors} error(s)")
    if errors or first_error:
        raise typer.Exit(1)
