"""Tests for kbroker.actors.topic_names: Kafka's topic name rules."""

from __future__ import annotations

import pytest

from kbroker.actors.topic_names import (
    MAX_TOPIC_NAME_LENGTH,
    collision_key,
    find_collision,
    is_internal,
    validate_topic_name,
)
from kbroker.errors import InvalidTopicError


@pytest.mark.parametrize("name", ["orders", "a", "A-b_c.9", "x" * MAX_TOPIC_NAME_LENGTH, "...", "-", "_x"])
def test_legal_names_are_returned_unchanged(name: str) -> None:
    assert validate_topic_name(name) == name


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("", "empty"),
        (".", "directory reference"),
        ("..", "directory reference"),
        ("x" * (MAX_TOPIC_NAME_LENGTH + 1), "250 characters"),
        ("a/b", "'/'"),
        ("../etc", "'/'"),
        ("a\\b", "'\\\\'"),
        ("white space", "' '"),
        ("caf\u00e9", "'\u00e9'"),
        ("nul\x00", "'\\x00'"),
        ("a:b", "':'"),
    ],
)
def test_illegal_names_say_why(name: str, words: str) -> None:
    with pytest.raises(InvalidTopicError) as info:
        validate_topic_name(name)
    assert words in info.value.message


@pytest.mark.parametrize("name", [None, 3, b"orders"])
def test_non_strings_are_refused(name: object) -> None:
    with pytest.raises(InvalidTopicError, match="must be a string"):
        validate_topic_name(name)


def test_internal_names_are_reserved_unless_allowed() -> None:
    assert is_internal("__consumer_offsets") and not is_internal("_one_underscore")
    with pytest.raises(InvalidTopicError, match="reserved"):
        validate_topic_name("__consumer_offsets")
    assert validate_topic_name("__consumer_offsets", allow_internal=True) == "__consumer_offsets"


def test_dot_and_underscore_collide() -> None:
    assert collision_key("a.b") == collision_key("a_b") == "a_b"
    assert find_collision("a.b", ["a_b", "c"]) == "a_b"
    assert find_collision("a_b", ["a.b"]) == "a.b"
    assert find_collision("a.b", ["a.b", "ab"]) is None  # the same name is not a collision
