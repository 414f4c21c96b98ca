"""``kbroker top``: a ``Frame`` -> rich renderables (header, workers, partitions, groups, key help).

Views: ``overview`` (everything, partitions with a problem first, cut to the screen height),
``workers``, ``partitions``, ``groups``. A topic filter keeps only that topic's partitions and
the groups reading it. Narrow screens (< 80 columns) drop the less important columns; cells
never wrap (ellipsis instead), so a row stays one line. Problems are highlighted: dead workers
and offline partitions in red, recovering workers and under-replicated partitions in yellow,
out-of-sync replicas marked ``*``.

Pure: renderables only; printing is the caller's (a rich Console or Live).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from kbroker.cli.top_groups import LagHistory, render_groups
from kbroker.cli.top_model import DEAD, NO_ANSWER, OFFLINE, OK, RECOVERING, UNDER_REPLICATED, Frame, PartitionRow

__all__ = ["VIEWS", "ViewState", "render"]

VIEWS = ("overview", "workers", "partitions", "groups")
NARROW = 80  # below: fewer columns, light borders
TINY = 60  # below: no records/s column either
_STATE_STYLE = {DEAD: "bold red", OFFLINE: "bold red", NO_ANSWER: "bold red", RECOVERING: "yellow", UNDER_REPLICATED: "yellow"}
KEYS_HELP = "keys: [a]ll  [w]orkers  [p]artitions  [g]roups  [/] filter topic  [esc] clear  [q]uit"


@dataclass(slots=True)
class ViewState:
    """What the person looking chose: the view, a topic filter, and the text being typed for it."""

    view: str = "overview"
    topic: str | None = None
    typing: str | None = None  # None: not typing a filter

    def key(self, ch: str) -> bool:
        """Apply one key press; returns False for quit."""
        if self.typing is not None:
            if ch in ("\r", "\n"):
                self.topic, self.typing = (self.typing.strip() or None), None
            elif ch == "\x1b":
                self.typing = None
            elif ch in ("\x7f", "\b"):
                self.typing = self.typing[:-1]
            elif ch.isprintable():
                self.typing += ch
            return True
        if ch in ("q", "Q", "\x03"):
            return False
        if ch == "/":
            self.typing = ""
        elif ch == "\x1b":
            self.topic = None
        else:
            view = {"a": "overview", "1": "overview", "w": "workers", "2": "workers", "p": "partitions", "3": "partitions",
                    "g": "groups", "4": "groups"}.get(ch.lower())  # fmt: skip
            if view:
                self.view = view
        return True


def _rate(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    for suffix in ("", "K", "M", "G"):
        if abs(value) < 1000 or suffix == "G":
            return f"{value:.0f}{suffix}{unit}" if suffix == "" else f"{value:.1f}{suffix}{unit}"
        value /= 1000
    return "-"


def _size(value: int | None) -> str:
    from kbroker.cli.topics import format_bytes

    return "-" if value is None else format_bytes(value)


def _box(narrow: bool) -> box.Box:
    """Narrow screens get lighter borders: more room for the cells."""
    return box.SIMPLE_HEAD if narrow else box.HEAVY_HEAD


def _styled(state: str, *, short: bool = False) -> Text:
    label = "under-repl" if short and state == UNDER_REPLICATED else state
    return Text(label, style=_STATE_STYLE.get(state, "green"))


def header(frame: Frame, bootstrap: str, view: ViewState, error: str | None = None, *, narrow: bool = False) -> Text:
    """Two lines (three with an error), cut at the screen's edge rather than wrapped; narrow: shorter words."""
    alive = sum(w.state != DEAD for w in frame.workers)
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append("kbroker top ", style="bold")
    text.append(f"{time.strftime('%H:%M:%S')}  " if narrow else f"{bootstrap}  {time.strftime('%H:%M:%S')}  ", style="dim")
    text.append(f"view: {view.view}")
    if view.topic:
        text.append(f"  topic: {view.topic}", style="bold cyan")
    if view.typing is not None:
        text.append(f"  filter topic: {view.typing}▌", style="bold cyan")
    text.append("\n")
    text.append(f"workers {alive}/{len(frame.workers)}" + ("" if narrow else " alive"),
                style="bold red" if alive < len(frame.workers) else "green")  # fmt: skip
    text.append(f"  topics {len(frame.topics)}  " + (f"parts {len(frame.partitions)}  " if narrow else f"partitions {len(frame.partitions)}  "))
    text.append(f"{'under-repl' if narrow else 'under-replicated'} {frame.under_replicated}", style="yellow" if frame.under_replicated else "")
    text.append("  ")
    text.append(f"offline {frame.offline}", style="bold red" if frame.offline else "")
    if error:
        text.append(f"\n{error}", style="bold red")
    return text


def workers_table(frame: Frame, width: int, *, compact: bool = False) -> Table:
    """One row per worker; ``compact`` (the start panel): no title, light borders."""
    narrow = width < NARROW
    light = narrow or compact
    table = Table(title=None if compact else "Workers", title_justify="left", expand=False, pad_edge=False,
                  box=_box(light), show_edge=not light)  # fmt: skip
    table.add_column("Id", justify="right", no_wrap=True)
    table.add_column("State", no_wrap=True)
    if not narrow:
        table.add_column("Pid", justify="right", no_wrap=True)
    table.add_column("Led", justify="right", no_wrap=True)
    if not narrow:
        table.add_column("Replicas", justify="right", no_wrap=True)
    table.add_column("In/s", justify="right", no_wrap=True)
    table.add_column("Out/s", justify="right", no_wrap=True)
    if not narrow:
        table.add_column("Uptime", justify="right", no_wrap=True)
    for w in frame.workers:
        cells: list[str | Text] = [str(w.id), _styled(w.state)]
        if not narrow:
            cells.append("-" if w.pid is None else str(w.pid))
        cells.append(str(w.partitions_led))
        if not narrow:
            cells.append(str(w.replicas))
        cells += [_rate(w.bytes_in_per_s, "B"), _rate(w.bytes_out_per_s, "B")]
        if not narrow:
            cells.append("-" if w.uptime_s is None else f"{w.uptime_s:.0f}s")
        table.add_row(*cells)
    return table


def _isr(row: PartitionRow) -> Text:
    text = Text()
    for i, replica in enumerate(row.replicas):
        if i:
            text.append(",")
        text.append(str(replica) if replica in row.isr else f"{replica}*", style="" if replica in row.isr else "bold red")
    return text


def partitions_table(rows: list[PartitionRow], width: int, hidden: int = 0) -> Table:
    narrow = width < NARROW
    table = Table(title="Partitions" + ("  (* = out of sync)" if any(r.state != OK for r in rows) else ""),
                  title_justify="left", expand=False, pad_edge=False, box=_box(narrow), show_edge=not narrow,
                  caption=f"… {hidden} more partitions: press p" if hidden else None, caption_justify="left")  # fmt: skip
    table.add_column("Partition", no_wrap=True, overflow="ellipsis", max_width=28 if not narrow else 16)
    table.add_column("Leader" if not narrow else "Ldr", justify="right", no_wrap=True, min_width=3)
    table.add_column("Replicas" if not narrow else "ISR", no_wrap=True, min_width=3)
    table.add_column("State", no_wrap=True, overflow="ellipsis", max_width=None if not narrow else 9, min_width=4)
    table.add_column("HW", justify="right", no_wrap=True, min_width=2)
    tiny = width < TINY
    if not tiny:
        table.add_column("Rec/s", justify="right", no_wrap=True, min_width=3)
    if not narrow:
        table.add_column("Log end", justify="right", no_wrap=True)
        table.add_column("Size", justify="right", no_wrap=True)
    for r in rows:
        cells: list[str | Text] = [
            f"{r.topic}-{r.partition}", Text("none", style="bold red") if r.leader < 0 else str(r.leader), _isr(r),
            _styled(r.state, short=narrow), "?" if r.high_watermark is None else str(r.high_watermark),
        ]
        if not tiny:
            cells.append(_rate(r.records_per_s))
        if not narrow:
            cells += ["?" if r.log_end_offset is None else str(r.log_end_offset), _size(r.size_bytes)]
        table.add_row(*cells)
    return table


def _filtered(frame: Frame, topic: str | None) -> list[PartitionRow]:
    return [p for p in frame.partitions if topic is None or p.topic == topic]


def _overview_overhead(frame: Frame, narrow: bool, error: str | None) -> int:
    """Lines the overview needs besides the partition rows (tables: title, header, rules, edges)."""
    table = 3 if narrow else 5
    groups = frame.groups
    group_lines = table + len(groups.groups) if groups.available and groups.groups else 1
    return 2 + (1 if error else 0) + table + len(frame.workers) + table + group_lines + 1


def render(
    frame: Frame,
    *,
    bootstrap: str,
    view: ViewState | None = None,
    width: int = 100,
    height: int | None = None,
    history: LagHistory | None = None,
    error: str | None = None,
    keys_help: bool = True,
) -> RenderableType:
    """The whole screen for ``frame``; ``height`` (live mode) cuts the overview's partition list to fit."""
    view = view or ViewState()
    narrow = width < NARROW
    parts: list[RenderableType] = [header(frame, bootstrap, view, error, narrow=narrow)]
    rows = _filtered(frame, view.topic)
    if view.view in ("overview", "workers"):
        parts.append(workers_table(frame, width))
    if view.view in ("overview", "partitions"):
        hidden = 0
        if view.view == "overview":
            rows = sorted(rows, key=lambda r: (r.state == OK, r.topic, r.partition))
            if height is not None:
                room = max(3, height - _overview_overhead(frame, narrow, error))
                if len(rows) > room:
                    hidden, rows = len(rows) - room + 1, rows[: room - 1]  # one line for the "more" caption
        if rows or view.topic:
            parts.append(partitions_table(rows, width, hidden))
        else:
            parts.append(Text("no topics yet", style="dim"))
    if view.view in ("overview", "groups"):
        parts.append(render_groups(frame.groups, history, view.topic, narrow=narrow, summary_only=view.view == "overview"))
    if keys_help:
        parts.append(Text(KEYS_HELP if not narrow else "a w p g: views  /: topic  q: quit", style="dim"))
    return Group(*parts)
