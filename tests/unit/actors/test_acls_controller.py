"""ACLs in the controller: persisted in the metadata log, replayed at start, installed, pushed to workers."""

from __future__ import annotations

from pathlib import Path

import pytest

from _controller_shell_helpers import Shell
from kbroker.actors.acls import AclBinding, AclGuard
from kbroker.actors.controller_acls import AclStore
from kbroker.actors.controller_model import MetadataImage, Removal
from kbroker.actors.metadata_log import MetadataLog, decode_record, encode_record
from kbroker.errors import AuthorizationError, InvalidRequestError
from kbroker.storage.memory_log import MemoryLog
from kbroker.actors.metadata_log import METADATA_LOG_CONFIG
from kbroker.transport.messages_acls import (
    ACLS_ACTOR,
    AclEntry,
    AclFilter,
    CreateAcls,
    CreateAclsResponse,
    DeleteAcls,
    DeleteAclsResponse,
    DescribeAcls,
    DescribeAclsResponse,
    UpdateAcls,
)
from kbroker.transport.messages_client import Fetch, FetchPartition, FetchTopic

ALICE = "A" * 40
BROKER = "Z" * 40
READ = AclEntry(ALICE, "topic", "orders", "read")
WRITE = AclEntry(ALICE, "topic", "orders", "write")
ANY = AclFilter(None, None, None, None)


def fetch(topic: str) -> Fetch:
    return Fetch("c", 0, 1, 1000, 0, (FetchTopic(topic, (FetchPartition(0, 0, 1000, -1),)),))


def test_store_creates_lists_deletes_and_versions_grow() -> None:
    store = AclStore()
    created = store.create(CreateAcls((READ, WRITE, READ)), now_ms=10)
    assert created.response == CreateAclsResponse(0, None, 2) and len(created.records) == 2
    assert store.version == 10
    again = store.create(CreateAcls((READ,)), now_ms=5)
    assert again.response == CreateAclsResponse(0, None, 0) and again.records == () and store.version == 10
    assert store.describe(DescribeAcls(AclFilter(None, None, None, "write"))).response == DescribeAclsResponse(0, None, (WRITE,))
    deleted = store.delete(DeleteAcls(AclFilter(ALICE, "topic", None, "read")), now_ms=5)
    assert deleted.response == DeleteAclsResponse(0, None, (READ,))
    assert deleted.records == (Removal(AclBinding.from_entry(READ).key),) and store.version == 11
    bad = store.create(CreateAcls((WRITE, AclEntry(ALICE, "group", "g", "write"))), now_ms=20)
    assert bad.response.error_code == InvalidRequestError.code and bad.records == ()  # type: ignore[attr-defined]


def test_acl_records_round_trip_through_the_metadata_log() -> None:
    binding = AclBinding(ALICE, "topic", "orders", "read")
    assert decode_record(*encode_record(binding)) == binding
    removal = Removal(binding.key)
    assert decode_record(*encode_record(removal)) == removal
    log = MetadataLog(MemoryLog(METADATA_LOG_CONFIG))
    log.append([binding, AclBinding("*", "group", "*", "read")], 1)
    log.append([removal], 2)
    image = log.replay()
    assert list(image.acls.values()) == [AclBinding("*", "group", "*", "read")]
    again = MetadataImage()
    for record in image.records():
        again.apply(record)
    assert again.acls == image.acls


def test_controller_persists_installs_and_pushes_acls(tmp_path: Path) -> None:
    guard = AclGuard({BROKER})
    shell = Shell(data_dir=tmp_path, acl_guard=guard)
    try:
        shell.register(0)
        sent = [item for kind, item in shell.journal.take() if kind == "send"]
        assert any(address.actor == ACLS_ACTOR and message == UpdateAcls(message.version, ()) for address, message in sent)
        assert shell.request(CreateAcls((READ,))) == CreateAclsResponse(0, None, 1)
        assert guard.authorize(ALICE, fetch("orders"))  # installed in the controller's own guard
        pushed = [m for kind, (a, m) in shell.journal.take() if kind == "send" and a.actor == ACLS_ACTOR]
        assert [m.acls for m in pushed] == [(READ,)]  # and told to the live worker
        assert shell.request(DescribeAcls(ANY)) == DescribeAclsResponse(0, None, (READ,))
    finally:
        shell.stop()
    guard = AclGuard({BROKER})
    shell = Shell(data_dir=tmp_path, acl_guard=guard)  # a restart replays the metadata log
    try:
        assert shell.request(DescribeAcls(ANY)) == DescribeAclsResponse(0, None, (READ,))
        assert guard.authorize(ALICE, fetch("orders"))
        assert shell.request(DeleteAcls(ANY)) == DeleteAclsResponse(0, None, (READ,))
        with pytest.raises(AuthorizationError):
            guard.authorize(ALICE, fetch("orders"))  # a deleted ACL stops allowing at once
    finally:
        shell.stop()
