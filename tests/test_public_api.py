"""Every name a package exports lazily must resolve: a stale entry fails only when a user touches it."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = ["kbroker", "kbroker.actors", "kbroker.transport", "kbroker.transport.client", "kbroker.storage"]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_resolves(package: str) -> None:
    module = importlib.import_module(package)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == [], f"{package} exports names that do not resolve: {missing}"


def test_unknown_attribute_is_an_attribute_error() -> None:
    import kbroker

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        kbroker.Nope  # noqa: B018


def test_design_contract_names_are_public() -> None:
    import kbroker

    for name in ["Admin", "Producer", "Consumer", "TopicPartition", "RecordMetadata", "Record", "WorkerInfo",
                 "TopicInfo", "PartitionInfo", "GroupInfo", "GroupPartition", "KBrokerError"]:
        assert name in kbroker.__all__ and hasattr(kbroker, name), name
