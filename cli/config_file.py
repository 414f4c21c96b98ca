"""``kbroker start --config FILE``: broker settings and topic defaults in TOML.

    [broker]                          # any `kbroker start` flag, with _ for -
    workers = 3
    data_dir = "./kbroker-data"
    port = 7092
    auto_create_topics = true
    default_partitions = 3            # topics created without --partitions, and auto-created ones
    default_replication_factor = 3
    log_level = "info"

    [topic_defaults]                  # Kafka topic config names: the broker-wide defaults
    "retention.ms" = 86400000
    "cleanup.policy" = "delete"

Flags given on the command line win over the file; the file wins over the flags' defaults.
Every key is checked: an unknown section or key, or a value of the wrong type, is an error
naming the file and the key (``ConfigFileError``, exit code 2); topic defaults are validated
as topic configs are (``TopicConfig``), so a bad value names its key too.

Pure but for reading the file.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BROKER_KEYS", "ConfigFileError", "StartConfig", "load_start_config"]

BROKER_KEYS: dict[str, type | tuple[type, ...]] = {
    "workers": int,
    "data_dir": str,
    "host": str,
    "port": int,
    "advertised_host": str,
    "auto_create_topics": bool,
    "default_partitions": int,
    "default_replication_factor": int,
    "session_timeout_ms": int,
    "heartbeat_interval_ms": int,
    "log_retention_check_interval_ms": int,
    "storage_retry_interval_ms": int,
    "max_request_bytes": int,
    "max_in_flight_requests": int,
    "max_connections": int,
    "producer_byte_rate": int,
    "consumer_byte_rate": int,
    "log_level": str,
    "no_ui": bool,
}
_SECTIONS = ("broker", "topic_defaults")
_MINIMUM = {"workers": 1, "default_partitions": 1, "default_replication_factor": 1, "session_timeout_ms": 100,
            "heartbeat_interval_ms": 10, "log_retention_check_interval_ms": 1, "max_in_flight_requests": 1}  # fmt: skip
_MAXIMUM = {"port": 65535}
_CHOICES = {"log_level": ("debug", "info", "warning", "error")}


class ConfigFileError(ValueError):
    """The file cannot be used; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class StartConfig:
    broker: dict[str, Any] = field(default_factory=dict)  # BROKER_KEYS -> value, only those given
    topic_defaults: dict[str, str] = field(default_factory=dict)  # Kafka name -> text value


def _suggest(key: str, known: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f"; known keys: {', '.join(known)}"


def _type_name(kind: type | tuple[type, ...]) -> str:
    return {int: "an integer", str: "a string", bool: "true or false"}.get(kind, str(kind))  # type: ignore[call-overload]


def load_start_config(path: Path) -> StartConfig:
    try:
        raw = tomllib.loads(Path(path).read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigFileError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigFileError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigFileError(f"config file {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"config file {path} is not valid TOML: {exc}") from None
    for section, value in raw.items():
        if section not in _SECTIONS:
            raise ConfigFileError(f"config file {path}: unknown section or key {section!r}{_suggest(section, _SECTIONS)}")
        if not isinstance(value, dict):
            raise ConfigFileError(f"config file {path}: {section!r} must be a table ([{section}])")
    broker: dict[str, Any] = {}
    for key, value in raw.get("broker", {}).items():
        kind = BROKER_KEYS.get(key)
        if kind is None:
            raise ConfigFileError(f"config file {path}: unknown key 'broker.{key}'{_suggest(key, list(BROKER_KEYS))}")
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigFileError(f"config file {path}: 'broker.{key}' must be {_type_name(kind)}, not {value!r}")
        _check_range(path, key, value)
        broker[key] = value
    return StartConfig(broker, _topic_defaults(path, raw.get("topic_defaults", {})))


def _check_range(path: Path, key: str, value: Any) -> None:
    """The limits the same command-line flags have (typer checks those)."""
    if isinstance(value, int) and not isinstance(value, bool):
        low, high = _MINIMUM.get(key, 0), _MAXIMUM.get(key)
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ConfigFileError(f"config file {path}: 'broker.{key}' must be {bound}, not {value}")
    choices = _CHOICES.get(key)
    if choices is not None and str(value).lower() not in choices:
        raise ConfigFileError(f"config file {path}: 'broker.{key}' must be one of {', '.join(choices)}, not {value!r}")


def _topic_defaults(path: Path, table: dict[str, Any]) -> dict[str, str]:
    from kbroker.errors import InvalidConfigError
    from kbroker.storage.config import TopicConfig
    from kbroker.transport.client.admin import config_text

    try:
        texts = {str(k): config_text(str(k), v) for k, v in table.items()}
        TopicConfig.from_dict(texts)  # every key known, every value valid
    except InvalidConfigError as exc:
        raise ConfigFileError(f"config file {path}: [topic_defaults] {exc.message}") from None
    return {k: v for k, v in texts.items() if v is not None}
