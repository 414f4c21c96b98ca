"""Small checkpoint files, written atomically: temp file, fsync, rename, fsync of the directory.

Format (text, like Kafka's checkpoint files):

    line 1: version (0)
    line 2: number of entries N
    N lines: entry fields separated by single spaces

A reader sees either the old file or the new one, never a mix. A missing file reads as ``None``; a
malformed one raises ``ValueError`` (callers decide whether to fall back).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["write_checkpoint", "read_checkpoint", "fsync_dir"]

_VERSION = "0"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_checkpoint(path: Path, entries: list[tuple[object, ...]], *, sync: bool = True) -> None:
    lines = [_VERSION, str(len(entries))] + [" ".join(str(field) for field in entry) for entry in entries]
    data = ("\n".join(lines) + "\n").encode("ascii")
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if sync:
        fsync_dir(path.parent)


def read_checkpoint(path: Path) -> list[list[str]] | None:
    try:
        text = path.read_text("ascii")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise ValueError(f"checkpoint {path} is not text") from exc
    lines = text.splitlines()
    if len(lines) < 2 or lines[0] != _VERSION:
        raise ValueError(f"checkpoint {path} has an unknown version or is truncated")
    count = int(lines[1])
    if count != len(lines) - 2:
        raise ValueError(f"checkpoint {path} declares {count} entries, holds {len(lines) - 2}")
    return [line.split(" ") for line in lines[2:]]
