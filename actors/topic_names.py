"""Topic names: Kafka's rules, checked by the controller before a topic exists.

A legal name is 1-249 characters of ``[A-Za-z0-9._-]`` and neither ``"."`` nor ``".."``, so it
is always a safe directory name (``<topic>-<partition>/``) on every file system and can never
climb out of the data directory. Names starting with ``"__"`` are internal
(``__consumer_offsets``, ``__cluster_metadata``): only the broker itself creates them.

Two names that differ only in ``'.'`` versus ``'_'`` collide (as in Kafka, whose metric names
cannot tell them apart); the controller refuses to create the second one.

Pure: no I/O, no state.
"""

from __future__ import annotations

import re
from typing import Final, Iterable

from kbroker.errors import InvalidTopicError

__all__ = [
    "INTERNAL_PREFIX",
    "MAX_TOPIC_NAME_LENGTH",
    "collision_key",
    "find_collision",
    "is_internal",
    "validate_topic_name",
]

MAX_TOPIC_NAME_LENGTH: Final = 249
INTERNAL_PREFIX: Final = "__"
_LEGAL: Final = re.compile(r"[A-Za-z0-9._-]+", re.ASCII)
_ILLEGAL_CHAR: Final = re.compile(r"[^A-Za-z0-9._-]", re.ASCII)


def is_internal(name: str) -> bool:
    """Whether ``name`` is reserved for the broker's own topics."""
    return name.startswith(INTERNAL_PREFIX)


def validate_topic_name(name: object, *, allow_internal: bool = False) -> str:
    """Return ``name`` if it is a legal topic name, else raise ``InvalidTopicError`` saying why.

    ``allow_internal``: the broker creating one of its own ``__``-prefixed topics.
    """
    if not isinstance(name, str):
        raise InvalidTopicError(f"a topic name must be a string, not {type(name).__name__}")
    if not name:
        raise InvalidTopicError("a topic name must not be empty")
    if name in (".", ".."):
        raise InvalidTopicError(f"{name!r} is not a legal topic name (it is a directory reference)")
    if len(name) > MAX_TOPIC_NAME_LENGTH:
        raise InvalidTopicError(
            f"topic name is {len(name)} characters long; the limit is {MAX_TOPIC_NAME_LENGTH}"
        )
    if not _LEGAL.fullmatch(name):
        bad = _ILLEGAL_CHAR.search(name)
        shown = bad.group() if bad else "?"
        raise InvalidTopicError(
            f"topic name {name!r} contains {shown!r}; use only ASCII letters, digits, '.', '_' and '-'"
        )
    if is_internal(name) and not allow_internal:
        raise InvalidTopicError(
            f"topic name {name!r} starts with {INTERNAL_PREFIX!r}, which is reserved for the broker's internal topics"
        )
    return name


def collision_key(name: str) -> str:
    """The form two colliding names share: ``'.'`` replaced by ``'_'``."""
    return name.replace(".", "_")


def find_collision(name: str, existing: Iterable[str]) -> str | None:
    """An existing topic (other than ``name`` itself) whose name collides with ``name``, or None."""
    key = collision_key(name)
    for other in existing:
        if other != name and collision_key(other) == key:
            return other
    return None
