"""`kbroker acls list`'s table shows principals as they are (Z85 keys may hold "[...]")."""

from __future__ import annotations

from rich.console import Console

from kbroker.cli.acls import _table


def test_a_z85_key_with_brackets_is_printed_whole() -> None:
    key = "2N[lbgO=7Ht]Cw>bQx{a1b2c3d4e5f6g7h8i9j0"
    console = Console(record=True, width=200, color_system=None)
    console.print(_table([{"principal": key, "resource_type": "topic", "resource_name": "o[rd]ers", "operation": "read"}], "acls"))
    screen = console.export_text()
    assert key in screen and "o[rd]ers" in screen
