"""Tests for the message catalogue (kbroker.transport.messages and schema): registry and shape."""

from __future__ import annotations

import dataclasses

import pytest

from kbroker.transport import messages
from kbroker.transport.specs import OptionalSpec, PayloadSpec, StructSpec, TupleSpec, spec_for
from kbroker.transport.schema import MESSAGE_TYPES, Message, message

EXPECTED_CLIENT = {
    "ErrorResponse",
    "Metadata", "MetadataResponse",
    "Produce", "ProduceResponse",
    "Fetch", "FetchResponse",
    "ListOffsets", "ListOffsetsResponse",
    "InitProducerId", "InitProducerIdResponse",
    "CreateTopics", "CreateTopicsResponse",
    "DeleteTopics", "DeleteTopicsResponse",
    "DescribeTopics", "DescribeTopicsResponse",
    "AlterConfigs", "AlterConfigsResponse",
    "DescribeCluster", "DescribeClusterResponse",
    "DescribeWorkerStats", "DescribeWorkerStatsResponse",
    "ConsumerGroupHeartbeat", "ConsumerGroupHeartbeatResponse",
    "OffsetCommit", "OffsetCommitResponse",
    "OffsetFetch", "OffsetFetchResponse",
    "ListGroups", "ListGroupsResponse",
    "DescribeGroup", "DescribeGroupResponse",
    "DeleteGroup", "DeleteGroupResponse",
    "CreateAcls", "CreateAclsResponse",
    "DescribeAcls", "DescribeAclsResponse",
    "DeleteAcls", "DeleteAclsResponse",
}  # fmt: skip
EXPECTED_INTERNAL = {
    "RegisterWorker", "RegisterWorkerResponse",
    "WorkerHeartbeat", "WorkerHeartbeatResponse",
    "LeaderAndIsr", "LeaderAndIsrResponse",
    "UpdateMetadata", "UpdateMetadataResponse",
    "AlterIsr", "AlterIsrResponse",
    "AlterReplicaStatus", "AlterReplicaStatusResponse",
    "InjectFault", "InjectFaultResponse",
    "ReplicaAppend", "ReplicaAppendAck",
    "ReplicaFetch", "ReplicaFetchResponse",
    "OffsetForLeaderEpoch", "OffsetForLeaderEpochResponse",
    "DescribeReplicas", "DescribeReplicasResponse",
    "UpdateAcls",
}  # fmt: skip


def test_catalogue_is_complete_and_split_by_audience() -> None:
    assert messages.CLIENT_MESSAGE_TYPES == EXPECTED_CLIENT
    assert messages.INTERNAL_MESSAGE_TYPES == EXPECTED_INTERNAL
    assert set(MESSAGE_TYPES) == EXPECTED_CLIENT | EXPECTED_INTERNAL


@pytest.mark.parametrize("name", sorted(MESSAGE_TYPES))
def test_every_message_is_a_frozen_slotted_dataclass(name: str) -> None:
    cls = MESSAGE_TYPES[name]
    assert issubclass(cls, Message) and cls.__name__ == name
    params = cls.__dataclass_params__  # type: ignore[attr-defined]
    assert params.frozen
    assert "__slots__" in cls.__dict__


def _payload_paths(spec: StructSpec, prefix: str = "") -> list[str]:
    paths = []
    for field_name, field in spec.fields:
        inner = field
        while isinstance(inner, (OptionalSpec, TupleSpec)):
            inner = inner.inner if isinstance(inner, OptionalSpec) else inner.item
        if isinstance(inner, PayloadSpec):
            paths.append(prefix + field_name)
        elif isinstance(inner, StructSpec):
            paths += _payload_paths(inner, f"{prefix}{field_name}.")
    return paths


def test_record_batches_travel_as_payload_frames() -> None:
    payloads = {name: _payload_paths(spec_for(cls)) for name, cls in MESSAGE_TYPES.items()}
    assert {name: paths for name, paths in payloads.items() if paths} == {
        "Produce": ["topics.partitions.records"],
        "FetchResponse": ["topics.partitions.records"],
        "ReplicaAppend": ["batches"],
        "ReplicaFetchResponse": ["records"],
    }


def test_registering_a_name_twice_fails() -> None:
    with pytest.raises(RuntimeError, match="registered twice"):

        @message
        class Produce(Message):  # noqa: F811
            pass


def test_message_must_subclass_message() -> None:
    with pytest.raises(TypeError, match="must subclass Message"):

        @message
        class Loose:
            pass


def test_kafka_field_names() -> None:
    fields = {f.name for f in dataclasses.fields(messages.FetchPartitionResponse)}
    assert {"high_watermark", "last_stable_offset", "log_start_offset", "records", "error_code"} <= fields
    assert [f.name for f in dataclasses.fields(messages.ErrorResponse)] == ["code", "message"]
