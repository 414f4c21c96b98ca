"""cli/config_file.py: `kbroker start --config` TOML, every key checked and named; and `stop`'s pid lookup."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbroker.actors.datadir import DirLock
from kbroker.cli.config_file import ConfigFileError, load_start_config
from kbroker.cli.stop import broker_pid


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "broker.toml"
    path.write_text(text)
    return path


def test_broker_settings_and_topic_defaults_are_read(tmp_path: Path) -> None:
    loaded = load_start_config(write(tmp_path, """
[broker]
workers = 3
data_dir = "d"
auto_create_topics = false

[topic_defaults]
"retention.ms" = 60000
"cleanup.policy" = ["compact", "delete"]
"unclean.leader.election.enable" = true
"""))
    assert loaded.broker == {"workers": 3, "data_dir": "d", "auto_create_topics": False}
    assert loaded.topic_defaults == {"retention.ms": "60000", "cleanup.policy": "compact,delete", "unclean.leader.election.enable": "true"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[broker]\nwokers = 1\n", "unknown key 'broker.wokers' (did you mean 'workers'?)"),
        ("[brokr]\n", "unknown section or key 'brokr' (did you mean 'broker'?)"),
        ("broker = 1\n", "'broker' must be a table"),
        ("[broker]\nworkers = true\n", "'broker.workers' must be an integer, not True"),
        ("[broker]\nport = '7092'\n", "'broker.port' must be an integer"),
        ("[broker]\nworkers = 0\n", "'broker.workers' must be at least 1, not 0"),
        ("[broker]\nport = 70000\n", "'broker.port' must be between 0 and 65535"),
        ("[broker]\nproducer_byte_rate = -5\n", "'broker.producer_byte_rate' must be at least 0"),
        ("[broker]\nlog_level = 'loud'\n", "'broker.log_level' must be one of debug, info, warning, error"),
        ('[topic_defaults]\n"retention.mss" = 1\n', "retention.mss"),
        ('[topic_defaults]\n"cleanup.policy" = "sometimes"\n', "cleanup.policy"),
        ("[broker\n", "not valid TOML"),
    ],
)
def test_mistakes_name_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigFileError) as caught:
        load_start_config(path)
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="does not exist"):
        load_start_config(tmp_path / "nope.toml")


def test_broker_pid_is_the_lock_holder_or_none(tmp_path: Path) -> None:
    assert broker_pid(tmp_path) is None  # no lock file
    lock = DirLock(tmp_path)
    lock.acquire()
    try:
        import os

        assert broker_pid(tmp_path) == os.getpid()
    finally:
        lock.release()
    assert broker_pid(tmp_path) is None  # the file stays, unlocked and empty
