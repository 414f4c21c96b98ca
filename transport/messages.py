"""Every wire message, in one namespace: ``from kbroker.transport.messages import Produce``.

The definitions live in three modules by audience:

- ``messages_client``: Metadata, Produce, Fetch, ListOffsets, InitProducerId, ErrorResponse
- ``messages_admin``: CreateTopics, DeleteTopics, DescribeTopics, AlterConfigs, DescribeCluster, DescribeWorkerStats
- ``messages_groups``: consumer groups (ConsumerGroupHeartbeat, OffsetCommit, OffsetFetch, ...)
- ``messages_acls``: ACLs (CreateAcls, DescribeAcls, DeleteAcls; internal UpdateAcls)
- ``messages_internal``: controller, worker and replication messages (not a client contract)

``MESSAGE_TYPES`` maps each wire type name to its class; ``CLIENT_MESSAGE_TYPES`` is the subset a
client may send or receive (the rest are internal).
"""

from __future__ import annotations

from kbroker.transport import messages_acls, messages_admin, messages_client, messages_groups, messages_internal
from kbroker.transport.messages_acls import *  # noqa: F403
from kbroker.transport.messages_acls import UpdateAcls
from kbroker.transport.messages_admin import *  # noqa: F403
from kbroker.transport.messages_client import *  # noqa: F403
from kbroker.transport.messages_groups import *  # noqa: F403
from kbroker.transport.messages_internal import *  # noqa: F403
from kbroker.transport.schema import MESSAGE_TYPES, Message

CLIENT_MESSAGE_TYPES: frozenset[str] = frozenset(
    name
    for module in (messages_client, messages_admin, messages_groups, messages_acls)
    for name in module.__all__
    if name in MESSAGE_TYPES
)
INTERNAL_MESSAGE_TYPES: frozenset[str] = frozenset(
    name for name in [*messages_internal.__all__, *messages_acls.INTERNAL] if name in MESSAGE_TYPES
)

__all__ = [
    "Message",
    "MESSAGE_TYPES",
    "CLIENT_MESSAGE_TYPES",
    "INTERNAL_MESSAGE_TYPES",
    *messages_client.__all__,
    *messages_admin.__all__,
    *messages_groups.__all__,
    *messages_acls.__all__,
    *messages_internal.__all__,
    *messages_acls.INTERNAL,
]
