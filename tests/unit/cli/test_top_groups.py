"""kbroker top's consumer-groups view, from hand-made GroupInfo objects and fake Admins."""

from __future__ import annotations

from rich.console import Console

from kbroker.cli.top_groups import NOT_AVAILABLE, GroupsState, LagHistory, collect_groups, render_groups, total_lag
from kbroker.errors import InvalidRequestError, RequestTimedOutError
from kbroker.transport.client.types import GroupInfo, GroupPartition


def group(gid: str, lags: list[int | None], topic: str = "orders") -> GroupInfo:
    parts = [
        GroupPartition(topic, p, f"member-{p % 2}", None if lag is None else 100 - lag, 100, lag)
        for p, lag in enumerate(lags)
    ]
    return GroupInfo(gid, "Stable", ["member-0", "member-1"], parts)


def text(renderable: object, width: int = 100) -> str:
    console = Console(record=True, width=width, color_system=None)
    console.print(renderable)
    return console.export_text()


class GroupAdmin:
    def __init__(self, groups: list[GroupInfo], ids_only: bool = True) -> None:
        self.groups = {g.group_id: g for g in groups}
        self.ids_only = ids_only

    def list_groups(self) -> list[object]:
        return list(self.groups) if self.ids_only else list(self.groups.values())

    def describe_group(self, group_id: str) -> GroupInfo:
        return self.groups[group_id]


class Failing:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def list_groups(self) -> list[str]:
        raise self.error

    def describe_group(self, group_id: str) -> GroupInfo:
        raise AssertionError("not reached")


def test_an_admin_without_groups_or_a_broker_without_them_is_not_available() -> None:
    assert collect_groups(object()) == GroupsState()
    unknown = Failing(InvalidRequestError("the controller does not serve ListGroups"))
    assert collect_groups(unknown) == GroupsState()
    assert NOT_AVAILABLE in text(render_groups(collect_groups(unknown)))


def test_other_errors_are_shown_not_hidden() -> None:
    state = collect_groups(Failing(RequestTimedOutError("no reply from tcp://x:1")))
    assert not state.available and "no reply from tcp://x:1" in (state.message or "")


def test_groups_listed_by_id_or_as_objects_are_described_and_rendered() -> None:
    admin = GroupAdmin([group("billing", [5, 0, None]), group("audit", [0, 0], topic="clicks")])
    for ids_only in (True, False):
        admin.ids_only = ids_only
        state = collect_groups(admin)
        assert state.available and [g.group_id for g in state.groups] == ["audit", "billing"]
    screen = text(render_groups(state))
    assert "billing" in screen and "Stable" in screen and "orders-0" in screen and "member-1" in screen
    billing_row = next(line for line in screen.splitlines() if "billing" in line and "Stable" in line)
    assert " 5 " in billing_row and " 2 " in billing_row  # total lag 5, two members
    only_clicks = text(render_groups(state, topic="clicks"))
    assert "audit" in only_clicks and "billing" not in only_clicks
    assert "Lag per partition" not in text(render_groups(state, summary_only=True))
    narrow = text(render_groups(state, narrow=True), 40)
    assert "billing" in narrow and all(len(line) <= 40 for line in narrow.splitlines())


def test_total_lag_ignores_partitions_without_commits() -> None:
    assert total_lag(group("g", [3, None, 4])) == 7
    assert total_lag(group("g", [None])) is None


def test_lag_trend_follows_the_total_over_frames() -> None:
    history = LagHistory(depth=3)
    assert history.trend("g") == ""
    for lags in ([10], [20], [30]):
        history.update([group("g", lags)])
    assert history.trend("g") == "↑ +20"
    for lags in ([25], [5]):
        history.update([group("g", lags)])
    assert history.trend("g") == "↓ -25"
    history.update([group("g", [5]), group("h", [1])])
    history.update([])
    assert history.trend("g") == "" and history.trend("h") == ""


def test_names_with_brackets_are_shown_as_they_are_not_read_as_markup() -> None:
    state = GroupsState(True, [group("team[bold]x[/bold]", [3])], None)
    screen = text(render_groups(state), width=160)
    assert "team[bold]x[/bold]" in screen
