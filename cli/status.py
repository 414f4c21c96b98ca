"""``kbroker status``: a one-shot summary of a running broker (workers, topics, partitions, groups).

Asks the bootstrap endpoint (DescribeCluster, Metadata) and each live worker (DescribeWorkerStats),
the same snapshot ``kbroker top`` draws. With ``--data-dir`` it also says which process holds that
data directory. Exit codes: 0, 1 the broker did not answer, 2 bad usage.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from kbroker.cli.output import BOOTSTRAP, OUTPUT, OutputFormat, admin_session, emit, fail
from kbroker.cli.top_model import DEAD, OK, build_frame, collect

__all__ = ["status"]


def status(
    bootstrap: str | None = BOOTSTRAP,
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Also report the broker process holding this data directory."),
    timeout: float = typer.Option(5.0, "--timeout", min=0.1, help="Seconds to wait for the broker's answer."),
    output: OutputFormat = OUTPUT,
) -> None:
    """Print a one-shot summary: workers alive, topics, partitions under-replicated or offline, groups.

    Example: kbroker status --bootstrap 127.0.0.1:7092 --output json
    """
    pid = None
    if data_dir is not None:
        from kbroker.cli.stop import broker_pid

        pid = broker_pid(data_dir)
        if pid is None:
            raise fail(f"no broker is running on {data_dir}")
    with admin_session(bootstrap, timeout) as admin:
        frame = build_frame(None, collect(admin, time.monotonic()))
        endpoint = admin.bootstrap
    data = {
        "bootstrap": endpoint,
        "supervisor_pid": pid,
        "workers": [{"id": w.id, "pid": w.pid, "state": w.state, "partitions_led": w.partitions_led} for w in frame.workers],
        "workers_alive": sum(w.state != DEAD for w in frame.workers),
        "topics": len(frame.topics),
        "partitions": len(frame.partitions),
        "under_replicated": frame.under_replicated,
        "offline": frame.offline,
        "groups": [g.group_id for g in frame.groups.groups] if frame.groups.available else None,
    }

    def table() -> list[object]:
        healthy = data["workers_alive"] == len(frame.workers) and not frame.offline and not frame.under_replicated
        line = Text(f"kbroker at {endpoint}: ", style="bold")
        line.append("healthy" if healthy else "degraded", style="green" if healthy else "bold yellow")
        if pid is not None:
            line.append(f"  (supervisor pid {pid}, data {data_dir})", style="dim")
        summary = Table(show_header=False, box=None, pad_edge=False)
        summary.add_row("workers", f"{data['workers_alive']}/{len(frame.workers)} alive: "
                        + ", ".join(f"{w.id}={w.state}" for w in frame.workers))  # fmt: skip
        summary.add_row("topics", f"{data['topics']} ({data['partitions']} partitions)")
        summary.add_row("under-replicated", Text(str(frame.under_replicated), style="yellow" if frame.under_replicated else ""))
        summary.add_row("offline", Text(str(frame.offline), style="bold red" if frame.offline else ""))
        summary.add_row("consumer groups", frame.groups.message or str(len(frame.groups.groups)))
        bad = [p for p in frame.partitions if p.state != OK]
        out: list[object] = [line, summary]
        if bad:
            out.append(Text("not ok: " + ", ".join(f"{p.topic}-{p.partition} {p.state}" for p in bad[:20]), style="yellow"))
        return out

    emit(output, data, table)
