"""``kbroker top``'s consumer-groups view: collected through ``Admin.list_groups`` / ``describe_group``.

Works with whatever the Admin offers: a broker (or client) without consumer groups, an Admin
without those methods, or a broker answering with an unknown-request error all give
``GroupsState(available=False)``, shown as "consumer groups: not available from this broker".
``list_groups()`` may return group ids or objects with a ``group_id``; ``describe_group(id)``
returns a ``GroupInfo`` (group_id, state, members, partitions: [GroupPartition(topic,
partition, member, committed_offset, high_watermark, lag)]), or anything shaped like one.

``LagHistory`` remembers each group's total lag over the last frames and gives its trend.
Pure but for ``collect_groups`` (which only calls the Admin it is given).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Iterable

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

__all__ = ["GroupsState", "LagHistory", "NOT_AVAILABLE", "collect_groups", "render_groups", "total_lag"]

NOT_AVAILABLE = "consumer groups: not available from this broker"


@dataclass(frozen=True, slots=True)
class GroupsState:
    available: bool = False
    groups: tuple[Any, ...] = ()  # GroupInfo-shaped
    message: str | None = NOT_AVAILABLE  # why there is nothing to show (None: available)


def _unknown_request(exc: Exception) -> bool:
    from kbroker.errors import InvalidRequestError

    return isinstance(exc, InvalidRequestError) and ("does not serve" in exc.message or "unknown" in exc.message.lower())


def collect_groups(admin: Any) -> GroupsState:
    from kbroker.errors import KBrokerError

    list_groups = getattr(admin, "list_groups", None)
    describe_group = getattr(admin, "describe_group", None)
    if not callable(list_groups) or not callable(describe_group):
        return GroupsState()
    try:
        listed = list(list_groups())
        described = []
        for item in listed:
            if hasattr(item, "partitions") and hasattr(item, "members"):
                described.append(item)
                continue
            group_id = item if isinstance(item, str) else getattr(item, "group_id", None)
            if group_id is not None:
                try:
                    described.append(describe_group(group_id))
                except KBrokerError as exc:
                    if type(exc).__name__ != "GroupIdNotFoundError":
                        raise  # one that vanished since the listing is skipped
    except KBrokerError as exc:
        if _unknown_request(exc):
            return GroupsState()
        return GroupsState(False, (), f"consumer groups: {exc.message}")
    return GroupsState(True, tuple(sorted(described, key=lambda g: g.group_id)), None)


def total_lag(group: Any) -> int | None:
    lags = [p.lag for p in group.partitions if p.lag is not None]
    return sum(lags) if lags else None


class LagHistory:
    """Total lag per group over the last ``depth`` frames; ``trend`` compares now to the oldest kept."""

    def __init__(self, depth: int = 5) -> None:
        self._depth = depth
        self._totals: dict[str, deque[int]] = {}

    def update(self, groups: Iterable[Any]) -> None:
        seen = set()
        for group in groups:
            seen.add(group.group_id)
            lag = total_lag(group)
            if lag is not None:
                self._totals.setdefault(group.group_id, deque(maxlen=self._depth)).append(lag)
        for gone in set(self._totals) - seen:
            del self._totals[gone]

    def trend(self, group_id: str) -> str:
        totals = self._totals.get(group_id)
        if not totals or len(totals) < 2:
            return ""
        delta = totals[-1] - totals[0]
        if delta > 0:
            return f"↑ +{delta}"
        if delta < 0:
            return f"↓ {delta}"
        return "→ 0"


def render_groups(
    state: GroupsState, history: LagHistory | None = None, topic: str | None = None, *, narrow: bool = False, summary_only: bool = False
) -> RenderableType:
    """A summary table (one row per group) and, unless ``summary_only``, lag per partition; ``narrow``: light borders."""
    if not state.available:
        return Text(state.message or NOT_AVAILABLE, style="dim")
    groups = [g for g in state.groups if topic is None or any(p.topic == topic for p in g.partitions)]
    if not groups:
        return Text("consumer groups: none" + (f" reading {topic!r}" if topic else ""), style="dim")
    light = {"box": box.SIMPLE_HEAD, "show_edge": False, "pad_edge": False} if narrow else {}
    summary = Table(title="Consumer groups", expand=False, title_justify="left", **light)  # type: ignore[arg-type]
    summary.add_column("Group", no_wrap=True, overflow="ellipsis", max_width=30)
    summary.add_column("State", no_wrap=True)
    summary.add_column("Mbrs" if narrow else "Members", justify="right")
    summary.add_column("Lag" if narrow else "Total lag", justify="right")
    summary.add_column("Trend", no_wrap=True)
    for g in groups:
        lag = total_lag(g)
        summary.add_row(Text(g.group_id), g.state, str(len(g.members)), "-" if lag is None else str(lag),
                        history.trend(g.group_id) if history is not None else "")  # fmt: skip
    if summary_only:
        return summary
    detail = Table(title="Lag per partition", expand=False, title_justify="left", **light)  # type: ignore[arg-type]
    detail.add_column("Group", no_wrap=True, overflow="ellipsis", max_width=24)
    detail.add_column("Partition", no_wrap=True, overflow="ellipsis", max_width=30)
    detail.add_column("Member", no_wrap=True, overflow="ellipsis", max_width=24)
    detail.add_column("Committed", justify="right")
    detail.add_column("HW", justify="right")
    detail.add_column("Lag", justify="right")
    for g in groups:
        for p in sorted(g.partitions, key=lambda p: (p.topic, p.partition)):
            if topic is not None and p.topic != topic:
                continue
            lag = Text("-" if p.lag is None else str(p.lag), style="bold yellow" if p.lag else "")
            detail.add_row(Text(g.group_id), f"{p.topic}-{p.partition}", Text(p.member or "-"),
                           "-" if p.committed_offset is None else str(p.committed_offset), str(p.high_watermark), lag)  # fmt: skip
    return Group(summary, detail)
