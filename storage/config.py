"""Per-topic configuration: Kafka's keys, meanings and defaults as one typed, immutable value.

``CONFIG_KEYS`` is the single table of topic configs (Kafka name, Python attribute, type,
default, documentation, allowed values). Everything else is derived from it: parsing,
validation, rendering, and later the printed configuration reference. ``TopicConfig`` has one
snake_case field per key, in the table's order (``retention.ms`` -> ``retention_ms``).

Values arrive in two shapes and both are accepted by ``TopicConfig.from_dict``:

- text, as typed on a command line: ``"86400000"``, ``"true"``/``"FALSE"`` (any case),
  ``"0.5"``, ``"compact,delete"`` (either order, spaces around commas allowed);
- typed Python values: ``int`` (never ``bool``) for int/long keys, ``int``/``float`` (never
  ``bool``) for double keys, ``bool`` for boolean keys, ``str`` for string keys, and for
  ``cleanup.policy`` also a set/frozenset/list/tuple of policy names.

Invariants:

- A ``TopicConfig`` only ever holds valid, normalised values: every field is checked on
  construction (also by ``dataclasses.replace``), so there is no invalid instance.
  ``cleanup_policy`` is a non-empty ``frozenset`` drawn from {"delete", "compact"};
  ``min_cleanable_dirty_ratio`` is a finite ``float`` in [0, 1]; int keys fit Java's int
  (32-bit) and long keys Java's long (64-bit), like Kafka's.
- Instances are immutable and hashable; ``with_overrides`` returns a new instance.
- Round trips: ``TopicConfig.from_dict(c.to_dict()) == c == TopicConfig.from_dict(c.to_strings())``
  and ``base.with_overrides(overrides_of(c, base)) == c``.
- Every rejection is an ``InvalidConfigError`` whose message names the key; bad values also
  name the value given and the allowed values; unknown keys suggest the closest known key.

Pure: no I/O, no sockets, no threads, no clock.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, TypeAlias

from kbroker.errors import InvalidConfigError

__all__ = [
    "CONFIG_KEYS",
    "ConfigKey",
    "ConfigType",
    "ConfigValue",
    "INT_MAX",
    "LONG_MAX",
    "OneOf",
    "Range",
    "TopicConfig",
    "lookup_key",
    "overrides_of",
]

ConfigValue: TypeAlias = str | int | float | bool
"""A config value as ``to_dict`` gives it: plain, JSON- and msgpack-friendly."""

INT_MAX: Final = 2**31 - 1
LONG_MAX: Final = 2**63 - 1
_TYPE_LIMITS: Final = {"int": (-(2**31), INT_MAX), "long": (-(2**63), LONG_MAX)}

_INTEGER_TEXT: Final = re.compile(r"[+-]?[0-9]+", re.ASCII)
_DECIMAL_TEXT: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)


class ConfigType(Enum):
    """Kafka's ``ConfigDef.Type`` names for the kinds of value a topic config holds."""

    BOOLEAN = "boolean"
    INT = "int"
    LONG = "long"
    DOUBLE = "double"
    STRING = "string"
    LIST = "list"


@dataclass(frozen=True, slots=True)
class Range:
    """A closed numeric interval; ``max=None`` means "up to the type's own limit"."""

    min: int | float
    max: int | float | None = None
    note: str = ""

    def __str__(self) -> str:
        bounds = f"[{self.min},...]" if self.max is None else f"[{self.min},...,{self.max}]"
        return f"{bounds} ({self.note})" if self.note else bounds


@dataclass(frozen=True, slots=True)
class OneOf:
    """A fixed set of allowed strings (case-sensitive, as in Kafka)."""

    choices: tuple[str, ...]

    def __str__(self) -> str:
        return "[" + ", ".join(self.choices) + "]"


@dataclass(frozen=True, slots=True)
class ConfigKey:
    """One topic config: its Kafka name, its ``TopicConfig`` attribute, type, default and rules."""

    name: str
    python_attr: str
    type: ConfigType
    default: Any
    doc: str
    validator: Range | OneOf | None = None

    @property
    def valid_values(self) -> str:
        """The allowed values, in words, for error messages and the configuration reference."""
        if self.type is ConfigType.BOOLEAN:
            return "[true, false] (any case)"
        if self.type is ConfigType.LIST:
            return f"a non-empty comma-separated list of {self.validator}"
        if isinstance(self.validator, Range) and self.type.value in _TYPE_LIMITS:
            top = self.validator.max if self.validator.max is not None else _TYPE_LIMITS[self.type.value][1]
            note = f"; {self.validator.note}" if self.validator.note else ""
            return f"{Range(self.validator.min, top)} ({self.type.value}{note})"
        return str(self.validator) if self.validator is not None else f"any {self.type.value}"

    @property
    def default_text(self) -> str:
        """The default as Kafka prints it (``"delete"``, ``"false"``, ``"0.5"``)."""
        return self.render(self.default)

    def parse(self, raw: object) -> Any:
        """Turn command-line text or a typed Python value into this key's typed, valid value."""
        if not isinstance(raw, str) or self.type is ConfigType.STRING:
            return self._check(raw.strip() if isinstance(raw, str) else raw, raw)
        text = raw.strip()
        if self.type is ConfigType.BOOLEAN:
            if text.lower() not in ("true", "false"):
                raise self._invalid(raw, "expected true or false")
            return text.lower() == "true"
        if self.type in (ConfigType.INT, ConfigType.LONG):
            if not _INTEGER_TEXT.fullmatch(text):
                raise self._invalid(raw, "expected a whole number")
            try:
                return self._check(int(text), raw)
            except ValueError:  # more digits than int() accepts: far out of range anyway
                raise self._invalid(raw, "out of range") from None
        if self.type is ConfigType.DOUBLE:
            if not _DECIMAL_TEXT.fullmatch(text):
                raise self._invalid(raw, "expected a decimal number")
            return self._check(float(text), raw)
        parts = [part.strip() for part in text.split(",")]
        if any(not part for part in parts):
            raise self._invalid(raw, "empty list item")
        return self._check(parts, raw)

    def check(self, value: object) -> Any:
        """Validate an already-typed value (no text parsing) and return it normalised."""
        return self._check(value, value)

    def to_plain(self, value: Any) -> ConfigValue:
        """The value as ``to_dict`` gives it: lists become Kafka's comma-separated text."""
        return self.render(value) if self.type is ConfigType.LIST else value

    def render(self, value: Any) -> str:
        """The value as Kafka prints it: ``"true"``, ``"0.5"``, ``"compact,delete"``."""
        if self.type is ConfigType.BOOLEAN:
            return "true" if value else "false"
        if self.type is ConfigType.LIST:
            return ",".join(sorted(value))
        if self.type is ConfigType.DOUBLE:
            return repr(float(value))
        return str(value)

    def _check(self, value: object, shown: object) -> Any:
        kind = self.type
        if kind is ConfigType.BOOLEAN:
            if not isinstance(value, bool):
                raise self._invalid(shown, "expected a boolean")
            return value
        if kind in (ConfigType.INT, ConfigType.LONG):
            if isinstance(value, bool) or not isinstance(value, int):
                raise self._invalid(shown, f"expected a whole number, not {type(value).__name__}")
            low, high = _TYPE_LIMITS[kind.value]
            self._check_range(value, low, high, shown)
            return value
        if kind is ConfigType.DOUBLE:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self._invalid(shown, f"expected a number, not {type(value).__name__}")
            number = float(value)
            if not math.isfinite(number):
                raise self._invalid(shown, "expected a finite number")
            self._check_range(number, -math.inf, math.inf, shown)
            return number
        if kind is ConfigType.STRING:
            if not isinstance(value, str):
                raise self._invalid(shown, f"expected a string, not {type(value).__name__}")
            if isinstance(self.validator, OneOf) and value not in self.validator.choices:
                raise self._invalid(shown, "not an allowed value")
            return value
        if not isinstance(value, (set, frozenset, list, tuple)) or not all(isinstance(v, str) for v in value):
            raise self._invalid(shown, "expected comma-separated text or a collection of strings")
        items = frozenset(value)
        if not items:
            raise self._invalid(shown, "must not be empty")
        if isinstance(self.validator, OneOf) and not items <= set(self.validator.choices):
            raise self._invalid(shown, "not an allowed value")
        return items

    def _check_range(self, value: float, low: float, high: float, shown: object) -> None:
        if isinstance(self.validator, Range):
            low = max(low, self.validator.min)
            high = high if self.validator.max is None else min(high, self.validator.max)
        if not low <= value <= high:
            raise self._invalid(shown, "out of range")

    def _invalid(self, shown: object, reason: str) -> InvalidConfigError:
        return InvalidConfigError(
            f"invalid value {shown!r} for topic config {self.name!r}: {reason}; allowed: {self.valid_values}"
        )


def _key(name: str, kind: ConfigType, default: Any, doc: str, validator: Range | OneOf | None = None) -> ConfigKey:
    return ConfigKey(name, name.replace(".", "_"), kind, default, doc, validator)


_UNLIMITED: Final = "-1 = unlimited"

CONFIG_KEYS: Final[dict[str, ConfigKey]] = {
    key.name: key
    for key in (
        _key("cleanup.policy", ConfigType.LIST, frozenset({"delete"}),
             "What happens to old segments: 'delete' removes them by retention time or size, "
             "'compact' keeps the latest record per key; both may be given.",
             OneOf(("delete", "compact"))),
        _key("retention.ms", ConfigType.LONG, 604_800_000,
             "How long a closed segment is kept before deletion (delete policy), in ms.",
             Range(-1, note=_UNLIMITED)),
        _key("retention.bytes", ConfigType.LONG, -1,
             "Largest size a partition may grow to before its oldest segments are deleted (delete policy).",
             Range(-1, note=_UNLIMITED)),
        _key("segment.bytes", ConfigType.INT, 1_073_741_824,
             "Size at which the active segment is closed and a new one started.", Range(64)),
        _key("segment.ms", ConfigType.LONG, 604_800_000,
             "Age after which the active segment is rolled even if not full, in ms.", Range(1)),
        _key("delete.retention.ms", ConfigType.LONG, 86_400_000,
             "How long tombstones are kept in a compacted topic, in ms.", Range(0)),
        _key("min.cleanable.dirty.ratio", ConfigType.DOUBLE, 0.5,
             "Share of the log that must be uncompacted before the cleaner compacts it.", Range(0.0, 1.0)),
        _key("min.insync.replicas", ConfigType.INT, 1,
             "Fewest in-sync replicas that must acknowledge a write with acks=all.", Range(1)),
        _key("max.message.bytes", ConfigType.INT, 1_048_588,
             "Largest record batch the topic accepts, in bytes.", Range(0)),
        _key("message.timestamp.type", ConfigType.STRING, "CreateTime",
             "Whether record timestamps are the producer's (CreateTime) or the broker's on append "
             "(LogAppendTime).", OneOf(("CreateTime", "LogAppendTime"))),
        _key("flush.messages", ConfigType.LONG, LONG_MAX,
             "Number of records appended between forced fsyncs.", Range(1)),
        _key("flush.ms", ConfigType.LONG, LONG_MAX,
             "Longest time a record may stay unflushed before an fsync, in ms.", Range(0)),
        _key("unclean.leader.election.enable", ConfigType.BOOLEAN, False,
             "Whether a replica outside the ISR may become leader (availability over durability)."),
        _key("index.interval.bytes", ConfigType.INT, 4096,
             "Bytes of records between two entries of the offset index.", Range(0)),
        _key("min.compaction.lag.ms", ConfigType.LONG, 0,
             "Least time a record stays uncompacted after being written, in ms.", Range(0)),
    )
}
"""Every topic config, by Kafka name, in the order of ``TopicConfig``'s fields."""


def lookup_key(name: object) -> ConfigKey:
    """The ``ConfigKey`` for a Kafka config name; unknown names suggest the closest known one."""
    if not isinstance(name, str):
        raise InvalidConfigError(f"topic config names are strings, got {name!r}; known keys: {', '.join(CONFIG_KEYS)}")
    key = CONFIG_KEYS.get(name)
    if key is not None:
        return key
    close = difflib.get_close_matches(name, CONFIG_KEYS, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "."
    raise InvalidConfigError(f"unknown topic config {name!r}{hint} Known keys: {', '.join(CONFIG_KEYS)}")


def _default(name: str) -> Any:
    return CONFIG_KEYS[name].default


@dataclass(frozen=True, slots=True)
class TopicConfig:
    """The effective configuration of one topic; Kafka's defaults unless overridden."""

    cleanup_policy: frozenset[str] = _default("cleanup.policy")
    retention_ms: int = _default("retention.ms")
    retention_bytes: int = _default("retention.bytes")
    segment_bytes: int = _default("segment.bytes")
    segment_ms: int = _default("segment.ms")
    delete_retention_ms: int = _default("delete.retention.ms")
    min_cleanable_dirty_ratio: float = _default("min.cleanable.dirty.ratio")
    min_insync_replicas: int = _default("min.insync.replicas")
    max_message_bytes: int = _default("max.message.bytes")
    message_timestamp_type: str = _default("message.timestamp.type")
    flush_messages: int = _default("flush.messages")
    flush_ms: int = _default("flush.ms")
    unclean_leader_election_enable: bool = _default("unclean.leader.election.enable")
    index_interval_bytes: int = _default("index.interval.bytes")
    min_compaction_lag_ms: int = _default("min.compaction.lag.ms")

    def __post_init__(self) -> None:
        for key in CONFIG_KEYS.values():
            object.__setattr__(self, key.python_attr, key.check(getattr(self, key.python_attr)))

    @classmethod
    def from_dict(cls, mapping: Mapping[str, object], base: TopicConfig | None = None) -> TopicConfig:
        """Build a config from Kafka-named values (text or typed) over ``base`` (else Kafka's defaults)."""
        changes = {}
        for name, raw in mapping.items():
            key = lookup_key(name)
            changes[key.python_attr] = key.parse(raw)
        return dataclasses.replace(base if base is not None else cls(), **changes)

    def with_overrides(self, mapping: Mapping[str, object]) -> TopicConfig:
        """A new config with ``mapping`` applied over this one (this one is unchanged)."""
        return TopicConfig.from_dict(mapping, base=self)

    def to_dict(self) -> dict[str, ConfigValue]:
        """Kafka name -> plain value; ``cleanup.policy`` as "delete", "compact" or "compact,delete"."""
        return {key.name: key.to_plain(getattr(self, key.python_attr)) for key in CONFIG_KEYS.values()}

    def to_strings(self) -> dict[str, str]:
        """Kafka name -> value as Kafka prints it (``"true"``, ``"0.5"``, ``"604800000"``)."""
        return {key.name: key.render(getattr(self, key.python_attr)) for key in CONFIG_KEYS.values()}

    @property
    def compact(self) -> bool:
        """Whether the log cleaner compacts this topic (keeps the latest record per key)."""
        return "compact" in self.cleanup_policy

    @property
    def delete(self) -> bool:
        """Whether old segments are deleted by ``retention.ms`` / ``retention.bytes``."""
        return "delete" in self.cleanup_policy

    @property
    def log_append_time(self) -> bool:
        """Whether the broker stamps records with its own time on append."""
        return self.message_timestamp_type == "LogAppendTime"


def overrides_of(config: TopicConfig, base: TopicConfig | None = None) -> dict[str, ConfigValue]:
    """Only the keys where ``config`` differs from ``base`` (else Kafka's defaults), as ``to_dict`` values.

    ``base.with_overrides(overrides_of(config, base)) == config``: what to persist for a topic.
    """
    reference = base if base is not None else TopicConfig()
    return {
        key.name: key.to_plain(getattr(config, key.python_attr))
        for key in CONFIG_KEYS.values()
        if getattr(config, key.python_attr) != getattr(reference, key.python_attr)
    }
