"""The ACL model and the per-request check (actors/acls.py): every operation allowed and denied."""

from __future__ import annotations

import pytest

from kbroker.actors.acls import CLUSTER_NAME, AclBinding, AclGuard, Permissions
from kbroker.errors import AuthorizationError, InvalidRequestError
from kbroker.transport.envelope import Envelope
from kbroker.transport.messages_acls import AclEntry, AclFilter, CreateAcls, DeleteAcls, DescribeAcls, UpdateAcls
from kbroker.transport.messages_admin import (
    AlterConfigs,
    AlterConfigsResource,
    CreatableTopic,
    CreateTopics,
    DeleteTopics,
    DescribeCluster,
    DescribeTopics,
    DescribeWorkerStats,
)
from kbroker.transport.messages_client import (
    Fetch,
    FetchPartition,
    FetchTopic,
    InitProducerId,
    ListOffsets,
    ListOffsetsPartition,
    ListOffsetsTopic,
    Metadata,
    MetadataResponse,
    Produce,
    ProducePartition,
    ProduceTopic,
    TopicMetadata,
)
from kbroker.transport.messages_groups import (
    ConsumerGroupHeartbeat,
    DeleteGroup,
    DescribeGroup,
    ListedGroup,
    ListGroups,
    ListGroupsResponse,
    OffsetCommit,
    OffsetCommitTopic,
    OffsetFetch,
)
from kbroker.transport.messages_internal import DescribeReplicas
from kbroker.transport.schema import Message

ALICE = "A" * 40
BOB = "B" * 40
BROKER = "Z" * 40
ADMIN = "Y" * 40


def produce(topic: str) -> Produce:
    return Produce("c", -1, 1000, (ProduceTopic(topic, (ProducePartition(0, 1),)),))


def fetch(topic: str) -> Fetch:
    return Fetch("c", 0, 1, 1000, 0, (FetchTopic(topic, (FetchPartition(0, 0, 1000, -1),)),))


def _build(cls: type, values: dict[str, object]) -> Message:
    """A message with only the fields the check reads set (the rest None): no need to fill every group field."""
    obj = object.__new__(cls)
    for name, value in values.items():
        object.__setattr__(obj, name, value)
    return obj  # type: ignore[return-value]


def group_message(cls: type, group: str) -> Message:
    values: dict[str, object] = {name: None for name in cls.__dataclass_fields__} | {"group_id": group}
    if "topics" in values:
        values["topics"] = ()
    return _build(cls, values)


# (message, resource type, operation, resource name) for every rule
CASES: list[tuple[Message, str, str, str]] = [
    (produce("orders"), "topic", "write", "orders"),
    (fetch("orders"), "topic", "read", "orders"),
    (ListOffsets(0, (ListOffsetsTopic("orders", (ListOffsetsPartition(0, -1, -1),)),)), "topic", "describe", "orders"),
    (Metadata(("orders",), False), "topic", "describe", "orders"),
    (CreateTopics((CreatableTopic("orders", 1, 1, ()),), 1000, False), "topic", "create", "orders"),
    (DeleteTopics(("orders",), 1000), "topic", "delete", "orders"),
    (AlterConfigs((AlterConfigsResource("orders", ()),), False), "topic", "alter", "orders"),
    (DescribeTopics(("orders",), False), "topic", "describe", "orders"),
    (DescribeTopics(None, False), "cluster", "admin", CLUSTER_NAME),
    (group_message(ConsumerGroupHeartbeat, "billing"), "group", "read", "billing"),
    (group_message(OffsetFetch, "billing"), "group", "read", "billing"),
    (group_message(OffsetCommit, "billing"), "group", "read", "billing"),
    (group_message(DescribeGroup, "billing"), "group", "describe", "billing"),
    (group_message(DeleteGroup, "billing"), "group", "delete", "billing"),
    (DescribeWorkerStats(), "cluster", "admin", CLUSTER_NAME),
    (CreateAcls(()), "cluster", "admin", CLUSTER_NAME),
    (DescribeAcls(AclFilter(None, None, None, None)), "cluster", "admin", CLUSTER_NAME),
    (DeleteAcls(AclFilter(None, None, None, None)), "cluster", "admin", CLUSTER_NAME),
]


@pytest.mark.parametrize(("message", "rtype", "op", "name"), CASES, ids=lambda v: type(v).__name__ if isinstance(v, Message) else None)
def test_each_operation_is_denied_without_an_acl_and_allowed_with_it(message: Message, rtype: str, op: str, name: str) -> None:
    guard = AclGuard({BROKER})
    with pytest.raises(AuthorizationError, match=f"may not {op} {rtype} '{name}'") as info:
        guard.authorize(ALICE, message)
    assert f"kbroker acls add --principal {ALICE}" in info.value.message
    guard.update(1, [AclBinding(ALICE, rtype, name, op)])
    assert guard.authorize(ALICE, message) is message
    with pytest.raises(AuthorizationError):
        guard.authorize(BOB, message)  # another principal is still denied
    guard.update(2, [AclBinding(ALICE, rtype, "*" if rtype != "cluster" else CLUSTER_NAME, "all")])
    assert guard.authorize(ALICE, message) is message  # "all" and the wildcard name cover it


def test_super_users_and_open_requests_need_no_acl() -> None:
    guard = AclGuard({BROKER, ADMIN})
    for message in (produce("x"), DescribeReplicas(()), CreateAcls(())):
        assert guard.authorize(BROKER, message) is message
        assert guard.authorize(ADMIN, message) is message
    for message in (DescribeCluster(), InitProducerId(None, -1, -1, -1), ListGroups(), Metadata(None, True)):
        assert guard.authorize(ALICE, message) is message
    with pytest.raises(AuthorizationError, match="super users only"):
        guard.authorize(ALICE, DescribeReplicas(()))  # broker-internal traffic
    with pytest.raises(AuthorizationError, match="no authenticated identity"):
        guard.authorize(None, DescribeCluster())


def test_offset_commit_also_needs_read_on_its_topics() -> None:
    guard = AclGuard({BROKER}, [AclBinding(ALICE, "group", "billing", "read")])
    commit = _build(OffsetCommit, {n: None for n in OffsetCommit.__dataclass_fields__} | {"group_id": "billing", "topics": (OffsetCommitTopic("orders", ()),)})
    with pytest.raises(AuthorizationError, match="read topic 'orders'"):
        guard.authorize(ALICE, commit)
    guard.update(1, [AclBinding(ALICE, "group", "billing", "read"), AclBinding(ALICE, "topic", "orders", "read")])
    assert guard.authorize(ALICE, commit) is commit


def test_read_write_delete_alter_create_imply_describe_and_star_principal_is_everyone() -> None:
    for op in ("read", "write", "delete", "alter", "create", "all"):
        assert Permissions([AclBinding(ALICE, "topic", "t", op)]).allows("topic", "describe", "t")
    assert not Permissions([AclBinding(ALICE, "topic", "t", "read")]).allows("topic", "write", "t")
    guard = AclGuard({BROKER}, [AclBinding("*", "topic", "public", "read")])
    assert guard.authorize(BOB, fetch("public"))
    with pytest.raises(AuthorizationError):
        guard.authorize(BOB, fetch("private"))


def test_auto_creation_is_dropped_without_create_permission() -> None:
    guard = AclGuard({BROKER}, [AclBinding(ALICE, "topic", "orders", "write")])
    asked = Metadata(("orders",), True)
    assert guard.authorize(ALICE, asked) == Metadata(("orders",), False)
    guard.update(1, [AclBinding(ALICE, "topic", "orders", "write"), AclBinding(ALICE, "topic", "orders", "create")])
    assert guard.authorize(ALICE, asked) is asked


def test_replies_list_only_what_the_client_may_describe() -> None:
    guard = AclGuard({BROKER}, [AclBinding(ALICE, "topic", "mine", "read"), AclBinding(ALICE, "group", "g1", "describe")])
    meta = MetadataResponse((), -1, (TopicMetadata("mine", 0, None, ()), TopicMetadata("theirs", 0, None, ())))
    assert [t.name for t in guard.filter_reply(ALICE, meta).topics] == ["mine"]  # type: ignore[attr-defined]
    assert guard.filter_reply(BROKER, meta) is meta
    groups = ListGroupsResponse(0, None, (ListedGroup("g1", "Stable", 1), ListedGroup("g2", "Stable", 1)))
    assert [g.group_id for g in guard.filter_reply(ALICE, groups).groups] == ["g1"]  # type: ignore[attr-defined]


def test_bindings_are_validated_with_clear_errors() -> None:
    with pytest.raises(InvalidRequestError, match="CURVE public key"):
        AclBinding("short", "topic", "t", "read")
    with pytest.raises(InvalidRequestError, match="resource_type"):
        AclBinding(ALICE, "table", "t", "read")
    with pytest.raises(InvalidRequestError, match="does not apply to a group"):
        AclBinding(ALICE, "group", "g", "write")
    with pytest.raises(InvalidRequestError, match="kafka-cluster"):
        AclBinding(ALICE, "cluster", "mine", "admin")


def test_updates_arrive_as_messages_and_older_versions_are_ignored() -> None:
    guard = AclGuard({BROKER})
    envelope = Envelope.detached(UpdateAcls(5, (AclEntry(ALICE, "topic", "t", "read"),)))
    guard.on_update(envelope)
    assert envelope.released and guard.authorize(ALICE, fetch("t"))
    guard.on_update(Envelope.detached(UpdateAcls(4, ())))
    assert guard.snapshot.version == 5 and guard.authorize(ALICE, fetch("t"))
    guard.on_update(Envelope.detached(UpdateAcls(6, ())))
    with pytest.raises(AuthorizationError):
        guard.authorize(ALICE, fetch("t"))


def test_permissions_are_computed_once_per_identity_and_version() -> None:
    guard = AclGuard({BROKER}, [AclBinding(ALICE, "topic", "t", "read")])
    first = guard.snapshot.permissions(ALICE)
    guard.authorize(ALICE, fetch("t"))
    assert guard.snapshot.permissions(ALICE) is first
    guard.update(1, [AclBinding(ALICE, "topic", "t", "read")])
    assert guard.snapshot.permissions(ALICE) is not first


def test_group_members_may_find_their_coordinator_without_a_topic_acl() -> None:
    guard = AclGuard({BROKER})
    asked = Metadata(("__consumer_offsets",), True)
    assert guard.authorize(ALICE, asked) is asked  # and it may be created on first use
    meta = MetadataResponse((), -1, (TopicMetadata("__consumer_offsets", 0, None, ()),))
    assert guard.filter_reply(ALICE, meta) is meta
    with pytest.raises(AuthorizationError):
        guard.authorize(ALICE, Metadata(("__consumer_offsets", "orders"), True))
