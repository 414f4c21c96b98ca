"""Tests for kbroker.storage.config: Kafka's topic configs as a typed, immutable value."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import kbroker.storage.config as config_module
from kbroker.errors import InvalidConfigError
from kbroker.storage.config import (
    CONFIG_KEYS,
    INT_MAX,
    LONG_MAX,
    ConfigKey,
    ConfigType,
    OneOf,
    Range,
    TopicConfig,
    lookup_key,
    overrides_of,
)

KAFKA_DEFAULTS: dict[str, Any] = {
    "cleanup.policy": "delete",
    "retention.ms": 604800000,
    "retention.bytes": -1,
    "segment.bytes": 1073741824,
    "segment.ms": 604800000,
    "delete.retention.ms": 86400000,
    "min.cleanable.dirty.ratio": 0.5,
    "min.insync.replicas": 1,
    "max.message.bytes": 1048588,
    "message.timestamp.type": "CreateTime",
    "flush.messages": 9223372036854775807,
    "flush.ms": 9223372036854775807,
    "unclean.leader.election.enable": False,
    "index.interval.bytes": 4096,
    "min.compaction.lag.ms": 0,
}


# --- the table and the defaults ---------------------------------------------------------------


def test_defaults_equal_kafkas() -> None:
    assert TopicConfig().to_dict() == KAFKA_DEFAULTS
    assert {name: key.to_plain(key.default) for name, key in CONFIG_KEYS.items()} == KAFKA_DEFAULTS


def test_default_properties() -> None:
    config = TopicConfig()
    assert config.delete is True
    assert config.compact is False
    assert config.log_append_time is False
    assert config.cleanup_policy == frozenset({"delete"})


def test_table_and_fields_mirror_each_other_in_order() -> None:
    field_names = [field.name for field in dataclasses.fields(TopicConfig)]
    assert field_names == [key.python_attr for key in CONFIG_KEYS.values()]
    for name, key in CONFIG_KEYS.items():
        assert key.name == name
        assert key.python_attr == name.replace(".", "_")
        assert key.doc.strip(), f"{name} has no documentation"


@pytest.mark.parametrize("key", list(CONFIG_KEYS.values()), ids=list(CONFIG_KEYS))
def test_default_text_parses_back_to_default(key: ConfigKey) -> None:
    assert key.parse(key.default_text) == key.default


def test_valid_values_describe_the_rules() -> None:
    assert CONFIG_KEYS["segment.bytes"].valid_values == f"[64,...,{INT_MAX}] (int)"
    assert CONFIG_KEYS["retention.ms"].valid_values == f"[-1,...,{LONG_MAX}] (long; -1 = unlimited)"
    assert CONFIG_KEYS["min.cleanable.dirty.ratio"].valid_values == "[0.0,...,1.0]"
    assert CONFIG_KEYS["message.timestamp.type"].valid_values == "[CreateTime, LogAppendTime]"
    assert "delete" in CONFIG_KEYS["cleanup.policy"].valid_values
    assert "compact" in CONFIG_KEYS["cleanup.policy"].valid_values


def test_module_is_pure() -> None:
    tree = ast.parse(Path(config_module.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"socket", "threading", "zmq", "pykka", "os", "io", "time", "asyncio"}


# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("retention.ms", "86400000", 86400000),
        ("retention.ms", "-1", -1),
        ("retention.ms", "0", 0),
        ("retention.bytes", " 1024 ", 1024),
        ("retention.bytes", "+5", 5),
        ("segment.bytes", "64", 64),
        ("segment.bytes", str(INT_MAX), INT_MAX),
        ("flush.ms", str(LONG_MAX), LONG_MAX),
        ("min.insync.replicas", "2", 2),
        ("min.cleanable.dirty.ratio", "0.5", 0.5),
        ("min.cleanable.dirty.ratio", "1", 1.0),
        ("min.cleanable.dirty.ratio", "0", 0.0),
        ("min.cleanable.dirty.ratio", ".25", 0.25),
        ("min.cleanable.dirty.ratio", "1e-1", 0.1),
        ("unclean.leader.election.enable", "true", True),
        ("unclean.leader.election.enable", "TRUE", True),
        ("unclean.leader.election.enable", "False", False),
        ("unclean.leader.election.enable", "false", False),
        ("message.timestamp.type", "LogAppendTime", "LogAppendTime"),
        ("message.timestamp.type", "CreateTime", "CreateTime"),
        ("message.timestamp.type", " LogAppendTime ", "LogAppendTime"),
        ("cleanup.policy", "compact", frozenset({"compact"})),
        ("cleanup.policy", "delete", frozenset({"delete"})),
        ("cleanup.policy", "compact,delete", frozenset({"compact", "delete"})),
        ("cleanup.policy", "delete,compact", frozenset({"compact", "delete"})),
        ("cleanup.policy", " compact , delete ", frozenset({"compact", "delete"})),
    ],
)
def test_parses_text(name: str, raw: str, expected: object) -> None:
    config = TopicConfig.from_dict({name: raw})
    value = getattr(config, CONFIG_KEYS[name].python_attr)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("retention.ms", 1000, 1000),
        ("segment.ms", 1, 1),
        ("min.cleanable.dirty.ratio", 0.75, 0.75),
        ("min.cleanable.dirty.ratio", 1, 1.0),
        ("unclean.leader.election.enable", True, True),
        ("message.timestamp.type", "LogAppendTime", "LogAppendTime"),
        ("cleanup.policy", frozenset({"compact"}), frozenset({"compact"})),
        ("cleanup.policy", {"compact", "delete"}, frozenset({"compact", "delete"})),
        ("cleanup.policy", ["delete"], frozenset({"delete"})),
        ("cleanup.policy", ("delete", "compact"), frozenset({"compact", "delete"})),
    ],
)
def test_accepts_typed_values(name: str, raw: object, expected: object) -> None:
    value = getattr(TopicConfig.from_dict({name: raw}), CONFIG_KEYS[name].python_attr)
    assert value == expected
    assert type(value) is type(expected)


def test_properties_follow_the_values() -> None:
    config = TopicConfig.from_dict({"cleanup.policy": "compact", "message.timestamp.type": "LogAppendTime"})
    assert (config.compact, config.delete, config.log_append_time) == (True, False, True)
    both = TopicConfig.from_dict({"cleanup.policy": "delete,compact"})
    assert (both.compact, both.delete) == (True, True)


def test_base_supplies_the_defaults() -> None:
    broker_defaults = TopicConfig.from_dict({"retention.ms": "1000", "min.insync.replicas": 2})
    config = TopicConfig.from_dict({"segment.ms": "5"}, base=broker_defaults)
    assert config.retention_ms == 1000
    assert config.min_insync_replicas == 2
    assert config.segment_ms == 5
    assert TopicConfig.from_dict({"segment.ms": "5"}).retention_ms == 604800000


def test_later_mapping_value_wins_over_base() -> None:
    base = TopicConfig.from_dict({"retention.ms": 1000})
    assert TopicConfig.from_dict({"retention.ms": "-1"}, base=base).retention_ms == -1


# --- rejections ------------------------------------------------------------------------------

BAD_VALUES: list[tuple[str, object]] = [
    ("retention.ms", "-2"),
    ("retention.ms", "abc"),
    ("retention.ms", "1.5"),
    ("retention.ms", "1_000"),
    ("retention.ms", ""),
    ("retention.ms", True),
    ("retention.ms", 5.0),
    ("retention.ms", None),
    ("retention.ms", str(LONG_MAX + 1)),
    ("retention.ms", "9" * 5000),
    ("retention.bytes", -2),
    ("segment.bytes", "63"),
    ("segment.bytes", 0),
    ("segment.bytes", INT_MAX + 1),
    ("segment.ms", "0"),
    ("delete.retention.ms", "-1"),
    ("min.cleanable.dirty.ratio", "1.5"),
    ("min.cleanable.dirty.ratio", "-0.1"),
    ("min.cleanable.dirty.ratio", "nan"),
    ("min.cleanable.dirty.ratio", "1e999"),
    ("min.cleanable.dirty.ratio", float("nan")),
    ("min.cleanable.dirty.ratio", float("inf")),
    ("min.cleanable.dirty.ratio", "half"),
    ("min.cleanable.dirty.ratio", True),
    ("min.insync.replicas", "0"),
    ("min.insync.replicas", False),
    ("max.message.bytes", "-1"),
    ("message.timestamp.type", "createtime"),
    ("message.timestamp.type", "NoTimestamp"),
    ("message.timestamp.type", 1),
    ("flush.messages", "0"),
    ("flush.ms", "-1"),
    ("unclean.leader.election.enable", "yes"),
    ("unclean.leader.election.enable", "1"),
    ("unclean.leader.election.enable", 1),
    ("unclean.leader.election.enable", None),
    ("index.interval.bytes", "-1"),
    ("min.compaction.lag.ms", -1),
    ("cleanup.policy", "remove"),
    ("cleanup.policy", "compact,remove"),
    ("cleanup.policy", ""),
    ("cleanup.policy", "compact,,delete"),
    ("cleanup.policy", "compact,"),
    ("cleanup.policy", "Compact"),
    ("cleanup.policy", frozenset()),
    ("cleanup.policy", frozenset({"delete", "shrink"})),
    ("cleanup.policy", [1]),
    ("cleanup.policy", 1),
]


@pytest.mark.parametrize(("name", "raw"), BAD_VALUES, ids=[f"{n}={r!r}"[:60] for n, r in BAD_VALUES])
def test_bad_value_is_rejected_naming_key_value_and_allowed(name: str, raw: object) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        TopicConfig.from_dict({name: raw})
    message = str(caught.value)
    assert repr(name) in message
    assert repr(raw)[:50] in message
    assert CONFIG_KEYS[name].valid_values in message
    assert caught.value.code == 40


@pytest.mark.parametrize(("name", "raw"), [("retention.ms", "-2"), ("cleanup.policy", "remove")])
def test_bad_value_is_rejected_by_with_overrides_too(name: str, raw: object) -> None:
    with pytest.raises(InvalidConfigError, match=name.replace(".", r"\.")):
        TopicConfig().with_overrides({name: raw})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("retention_ms", -2),
        ("retention_ms", "1000"),
        ("segment_bytes", True),
        ("cleanup_policy", frozenset()),
        ("cleanup_policy", "delete"),
        ("min_cleanable_dirty_ratio", 2.0),
        ("message_timestamp_type", "Now"),
        ("unclean_leader_election_enable", "true"),
    ],
)
def test_constructor_rejects_invalid_typed_values(field: str, value: object) -> None:
    kafka_name = next(key.name for key in CONFIG_KEYS.values() if key.python_attr == field)
    with pytest.raises(InvalidConfigError, match=kafka_name.replace(".", r"\.")):
        TopicConfig(**{field: value})  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError):
        dataclasses.replace(TopicConfig(), **{field: value})


def test_unknown_key_suggests_the_close_match() -> None:
    with pytest.raises(InvalidConfigError) as caught:
        TopicConfig.from_dict({"retention.msx": "1"})
    message = str(caught.value)
    assert message.startswith("unknown topic config 'retention.msx'; did you mean 'retention.ms'? Known keys: ")
    for name in CONFIG_KEYS:
        assert name in message


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [("retention_ms", "retention.ms"), ("cleanup.polcy", "cleanup.policy"), ("min.isr.replicas", "min.insync.replicas")],
)
def test_unknown_key_suggestions(typo: str, suggestion: str) -> None:
    with pytest.raises(InvalidConfigError, match=f"did you mean '{suggestion}'"):
        TopicConfig().with_overrides({typo: "1"})


def test_unknown_key_without_close_match_has_no_suggestion() -> None:
    with pytest.raises(InvalidConfigError) as caught:
        TopicConfig.from_dict({"zzz": "1"})
    message = str(caught.value)
    assert "'zzz'" in message
    assert "did you mean" not in message
    assert "Known keys: cleanup.policy, retention.ms" in message


def test_non_string_key_is_rejected() -> None:
    with pytest.raises(InvalidConfigError, match="42"):
        TopicConfig.from_dict({42: "1"})  # type: ignore[dict-item]


def test_lookup_key() -> None:
    assert lookup_key("segment.ms") is CONFIG_KEYS["segment.ms"]
    with pytest.raises(InvalidConfigError, match="segment.msx"):
        lookup_key("segment.msx")


# --- immutability, rendering, overrides ------------------------------------------------------


def test_with_overrides_does_not_mutate() -> None:
    original = TopicConfig.from_dict({"retention.ms": 1000})
    snapshot = original.to_dict()
    changes = {"retention.ms": "2000", "cleanup.policy": "compact"}
    changes_copy = dict(changes)
    updated = original.with_overrides(changes)
    assert updated.retention_ms == 2000
    assert updated.compact
    assert original.to_dict() == snapshot
    assert original.retention_ms == 1000
    assert changes == changes_copy
    assert updated is not original


def test_config_is_frozen_and_hashable() -> None:
    config = TopicConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.retention_ms = 5  # type: ignore[misc]
    assert hash(config) == hash(TopicConfig())
    assert len({config, TopicConfig(), config.with_overrides({"retention.ms": 5})}) == 2


@pytest.mark.parametrize(
    ("policy", "rendered"),
    [("delete", "delete"), ("compact", "compact"), ("compact,delete", "compact,delete"), ("delete,compact", "compact,delete")],
)
def test_cleanup_policy_rendering(policy: str, rendered: str) -> None:
    config = TopicConfig.from_dict({"cleanup.policy": policy})
    assert config.to_dict()["cleanup.policy"] == rendered
    assert config.to_strings()["cleanup.policy"] == rendered


def test_cleanup_policy_renders_in_a_fixed_order_whatever_the_input_order() -> None:
    key = CONFIG_KEYS["cleanup.policy"]
    assert key.render(["delete", "compact"]) == "compact,delete"
    assert key.render(("compact", "delete")) == "compact,delete"


@pytest.mark.parametrize("raw", ["compact,,delete", "compact,", ",delete"])
def test_empty_cleanup_policy_item_is_named_as_such(raw: str) -> None:
    with pytest.raises(InvalidConfigError, match=r"cleanup\.policy.*empty list item"):
        TopicConfig.from_dict({"cleanup.policy": raw})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_ratio_is_rejected_as_not_finite(value: float) -> None:
    with pytest.raises(InvalidConfigError, match=r"min\.cleanable\.dirty\.ratio.*finite"):
        TopicConfig.from_dict({"min.cleanable.dirty.ratio": value})


def test_to_strings_prints_like_kafka() -> None:
    config = TopicConfig.from_dict({"unclean.leader.election.enable": True, "min.cleanable.dirty.ratio": 1})
    strings = config.to_strings()
    assert strings["unclean.leader.election.enable"] == "true"
    assert strings["min.cleanable.dirty.ratio"] == "1.0"
    assert strings["retention.ms"] == "604800000"
    assert strings["message.timestamp.type"] == "CreateTime"
    assert all(isinstance(value, str) for value in strings.values())
    assert list(strings) == list(CONFIG_KEYS)


def test_to_dict_gives_plain_values() -> None:
    values = TopicConfig.from_dict({"cleanup.policy": "compact,delete"}).to_dict()
    assert list(values) == list(CONFIG_KEYS)
    assert values["unclean.leader.election.enable"] is False
    assert values["cleanup.policy"] == "compact,delete"
    assert all(type(value) in (str, int, float, bool) for value in values.values())


def test_overrides_of_keeps_only_differences() -> None:
    assert overrides_of(TopicConfig()) == {}
    config = TopicConfig.from_dict({"retention.ms": "1000", "cleanup.policy": "compact,delete"})
    assert overrides_of(config) == {"retention.ms": 1000, "cleanup.policy": "compact,delete"}
    base = TopicConfig.from_dict({"retention.ms": 1000})
    assert overrides_of(config, base) == {"cleanup.policy": "compact,delete"}
    assert overrides_of(base, config) == {"cleanup.policy": "delete"}


# --- round trips (hypothesis) ----------------------------------------------------------------


def _values_for(key: ConfigKey) -> st.SearchStrategy[Any]:
    if key.type is ConfigType.BOOLEAN:
        return st.booleans()
    if key.type is ConfigType.LIST:
        assert isinstance(key.validator, OneOf)
        return st.frozensets(st.sampled_from(key.validator.choices), min_size=1)
    if key.type is ConfigType.STRING:
        assert isinstance(key.validator, OneOf)
        return st.sampled_from(key.validator.choices)
    assert isinstance(key.validator, Range)
    if key.type is ConfigType.DOUBLE:
        return st.floats(key.validator.min, key.validator.max, allow_nan=False)
    top = INT_MAX if key.type is ConfigType.INT else LONG_MAX
    return st.integers(int(key.validator.min), top)


configs = st.fixed_dictionaries({key.python_attr: _values_for(key) for key in CONFIG_KEYS.values()}).map(
    lambda fields: TopicConfig(**fields)
)


@given(configs)
def test_round_trip_through_to_dict(config: TopicConfig) -> None:
    assert TopicConfig.from_dict(config.to_dict()) == config


@given(configs)
def test_round_trip_through_to_strings(config: TopicConfig) -> None:
    assert TopicConfig.from_dict(config.to_strings()) == config


@given(configs, configs)
def test_round_trip_through_overrides(config: TopicConfig, base: TopicConfig) -> None:
    overrides = overrides_of(config, base)
    assert base.with_overrides(overrides) == config
    assert TopicConfig.from_dict(overrides, base=base) == config
    assert set(overrides) == {n for n, k in CONFIG_KEYS.items() if getattr(config, k.python_attr) != getattr(base, k.python_attr)}


@given(st.sampled_from([k for k in CONFIG_KEYS.values() if k.type in (ConfigType.INT, ConfigType.LONG)]), st.data())
def test_integers_outside_the_range_are_rejected(key: ConfigKey, data: st.DataObject) -> None:
    assert isinstance(key.validator, Range)
    top = INT_MAX if key.type is ConfigType.INT else LONG_MAX
    value = data.draw(st.one_of(st.integers(max_value=int(key.validator.min) - 1), st.integers(min_value=top + 1)))
    with pytest.raises(InvalidConfigError, match=key.name.replace(".", r"\.")):
        TopicConfig.from_dict({key.name: str(value)})
    with pytest.raises(InvalidConfigError, match=key.name.replace(".", r"\.")):
        TopicConfig.from_dict({key.name: value})


@given(st.text().filter(lambda s: not s.strip().lstrip("+-").isdigit()))
def test_non_numeric_text_is_rejected_for_long_keys(text: str) -> None:
    with pytest.raises(InvalidConfigError, match=r"retention\.ms"):
        TopicConfig.from_dict({"retention.ms": text})
