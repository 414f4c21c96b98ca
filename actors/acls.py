"""ACLs: who may do what, and the check every request passes when CURVE is on. Pure (no sockets).

    principal (a client's CURVE public key, Z85; or "*")  x  resource (topic | group | cluster, by
    literal name or "*")  x  operation  ->  allowed.   Only ALLOW entries exist: what no entry
    allows is denied (Kafka's allow.everyone.if.no.acl.found=false). Super users (the broker's own
    key and every ``--curve-super-user``) are allowed everything without a lookup.

    request                                   needs
    Produce                                   topic write, per topic
    Fetch                                     topic read, per topic
    ListOffsets, Metadata(topics)             topic describe, per topic (auto-creation also needs
                                              topic create, else the request goes on without it)
    Metadata(None), ListGroups                nothing; the reply lists only what the client may describe
    Metadata of __consumer_offsets            nothing (how group members find their coordinator; its
                                              creation on first use too)
    CreateTopics / DeleteTopics / AlterConfigs topic create / delete / alter, per topic
    DescribeTopics(names) / (None)            topic describe per topic / cluster admin
    ConsumerGroupHeartbeat, OffsetCommit,     group read (OffsetCommit also topic read per topic)
      OffsetFetch
    DescribeGroup / DeleteGroup               group describe / group delete
    DescribeCluster, InitProducerId           any authenticated client
    DescribeWorkerStats, *Acls                cluster admin
    anything else (broker-internal traffic)   super users only

Implications (as in Kafka): read, write, create, delete and alter imply describe; ``all`` implies
every operation of its resource type.

Invariants: one ``authorize`` per request, never per record; a ``Permissions`` set per identity
is computed once per ACL version and cached; a snapshot never changes (``AclGuard.update`` swaps
in a new one, so readers in other threads need no lock).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Callable, Final, Iterable

from kbroker.errors import AuthorizationError, InvalidRequestError
from kbroker.transport.envelope import Envelope
from kbroker.transport.messages_acls import AclEntry, AclFilter, CreateAcls, DeleteAcls, DescribeAcls, UpdateAcls
from kbroker.transport.messages_admin import (
    AlterConfigs,
    CreateTopics,
    DeleteTopics,
    DescribeCluster,
    DescribeTopics,
    DescribeWorkerStats,
)
from kbroker.transport.messages_client import Fetch, InitProducerId, ListOffsets, Metadata, MetadataResponse, Produce
from kbroker.transport.messages_groups import (
    ConsumerGroupHeartbeat,
    DeleteGroup,
    DescribeGroup,
    ListGroups,
    OFFSETS_TOPIC,
    ListGroupsResponse,
    OffsetCommit,
    OffsetFetch,
)
from kbroker.transport.schema import Message

__all__ = ["AclBinding", "AclGuard", "AclSnapshot", "Permissions", "OPERATIONS", "RESOURCE_TYPES", "CLUSTER_NAME", "matches"]

log = logging.getLogger(__name__)

CLUSTER_NAME: Final = "kafka-cluster"
ANY: Final = "*"
OPERATIONS: Final[dict[str, tuple[str, ...]]] = {
    "topic": ("read", "write", "create", "delete", "describe", "alter", "all"),
    "group": ("read", "describe", "delete", "all"),
    "cluster": ("admin", "all"),
}
RESOURCE_TYPES: Final = tuple(OPERATIONS)
_IMPLIES_DESCRIBE: Final = frozenset({"read", "write", "create", "delete", "alter", "all"})


@dataclass(frozen=True, slots=True, order=True)
class AclBinding:
    """One ALLOW entry. ``principal``: a Z85 public key (40 chars) or "*"; ``resource_name``: a name or "*"."""

    principal: str
    resource_type: str
    resource_name: str
    operation: str

    def __post_init__(self) -> None:
        if not isinstance(self.principal, str) or not (self.principal == ANY or len(self.principal) == 40):
            raise InvalidRequestError(
                f"ACL principal must be a CURVE public key (40 Z85 characters, the public-key line of a .key file) or '*', got {self.principal!r}"
            )
        if self.resource_type not in OPERATIONS:
            raise InvalidRequestError(f"ACL resource_type must be one of {', '.join(RESOURCE_TYPES)}, got {self.resource_type!r}")
        if not isinstance(self.resource_name, str) or not self.resource_name:
            raise InvalidRequestError(f"ACL resource_name must be a non-empty name or '*', got {self.resource_name!r}")
        if self.resource_type == "cluster" and self.resource_name not in (CLUSTER_NAME, ANY):
            raise InvalidRequestError(f"the cluster resource is named {CLUSTER_NAME!r} (or '*'), got {self.resource_name!r}")
        if self.operation not in OPERATIONS[self.resource_type]:
            ops = ", ".join(OPERATIONS[self.resource_type])
            raise InvalidRequestError(f"operation {self.operation!r} does not apply to a {self.resource_type}; use one of {ops}")

    @property
    def key(self) -> str:
        """Its metadata-log key (controller_model): one record per distinct entry."""
        return f"acl/{self.resource_type}/{self.operation}/{self.principal}/{self.resource_name}"

    def to_entry(self) -> AclEntry:
        return AclEntry(self.principal, self.resource_type, self.resource_name, self.operation)

    @classmethod
    def from_entry(cls, entry: AclEntry) -> AclBinding:
        return cls(entry.principal, entry.resource_type, entry.resource_name, entry.operation)


def matches(binding: AclBinding, flt: AclFilter) -> bool:
    """Whether ``binding`` has every non-nil field of ``flt``."""
    return all(
        want is None or want == have
        for want, have in (
            (flt.principal, binding.principal),
            (flt.resource_type, binding.resource_type),
            (flt.resource_name, binding.resource_name),
            (flt.operation, binding.operation),
        )
    )


class Permissions:
    """What one identity may do: per (resource type, operation), every name or a set of names."""

    __slots__ = ("_all", "_names")

    def __init__(self, bindings: Iterable[AclBinding]) -> None:
        everything: set[tuple[str, str]] = set()
        names: dict[tuple[str, str], set[str]] = {}
        for b in bindings:
            ops = OPERATIONS[b.resource_type] if b.operation == "all" else (b.operation,)
            if b.operation in _IMPLIES_DESCRIBE and "describe" in OPERATIONS[b.resource_type]:
                ops = (*ops, "describe")
            for op in ops:
                if b.resource_name == ANY:
                    everything.add((b.resource_type, op))
                else:
                    names.setdefault((b.resource_type, op), set()).add(b.resource_name)
        self._all = frozenset(everything)
        self._names = {k: frozenset(v) for k, v in names.items() if k not in everything}

    def allows(self, resource_type: str, operation: str, name: str) -> bool:
        key = (resource_type, operation)
        if key in self._all:
            return True
        found = self._names.get(key)
        return found is not None and name in found


_NOTHING = Permissions(())


class AclSnapshot:
    """An immutable ACL set with a cache of per-identity ``Permissions``."""

    def __init__(self, version: int, bindings: Iterable[AclBinding], super_users: frozenset[str]) -> None:
        self.version = version
        self.bindings = frozenset(bindings)
        self.super_users = super_users
        self._by_principal: dict[str, list[AclBinding]] = {}
        for b in self.bindings:
            self._by_principal.setdefault(b.principal, []).append(b)
        self._cache: dict[str, Permissions] = {}

    def permissions(self, identity: str) -> Permissions:
        found = self._cache.get(identity)
        if found is None:
            mine = self._by_principal.get(identity, []) + self._by_principal.get(ANY, [])
            found = self._cache[identity] = Permissions(mine) if mine else _NOTHING
        return found


Check = tuple[str, str, str]  # (resource type, operation, name)


class AclGuard:
    """The ``RequestGuard`` of a broker process's I/O thread (transport/curve.py); see the module docstring.

    ``update`` (any thread) swaps in a new snapshot; ``authorize`` / ``filter_reply`` run in the
    I/O thread and the actors' threads and only read the current one.
    """

    def __init__(self, super_users: Iterable[str], bindings: Iterable[AclBinding] = (), version: int = 0) -> None:
        self.super_users = frozenset(super_users)
        self.snapshot = AclSnapshot(version, bindings, self.super_users)
        self.denied = 0

    def update(self, version: int, bindings: Iterable[AclBinding]) -> bool:
        """Install ``bindings`` unless an equal or newer version is in place; True if installed."""
        if version < self.snapshot.version:
            return False
        self.snapshot = AclSnapshot(version, bindings, self.super_users)
        return True

    def on_update(self, envelope: Envelope) -> None:
        """Handler for ``UpdateAcls`` from the controller (runs in the I/O thread: quick)."""
        message = envelope.message
        try:
            if isinstance(message, UpdateAcls) and self.update(message.version, (AclBinding.from_entry(e) for e in message.acls)):
                log.info("ACLs updated: version %d, %d entries", message.version, len(message.acls))
        except InvalidRequestError as exc:
            log.error("ignored an invalid ACL update: %s", exc.message)
        finally:
            envelope.done()

    # --- the check ------------------------------------------------------------------------

    def authorize(self, identity: str | None, message: Message) -> Message:
        if identity in self.super_users:
            return message
        if identity is None:
            raise AuthorizationError("this connection has no authenticated identity; connect with CURVE keys")
        kind = type(message)
        rule = _RULES.get(kind)
        if rule is None:
            raise self._deny(identity, f"send {kind.__name__} (broker-internal: super users only)")
        perms = self.snapshot.permissions(identity)
        for resource_type, operation, name in rule(message):
            if not perms.allows(resource_type, operation, name):
                raise self._deny(identity, f"{operation} {resource_type} {name!r}", (resource_type, operation, name))
        if kind is Metadata and message.allow_auto_topic_creation and message.topics:  # type: ignore[attr-defined]
            if not all(t == OFFSETS_TOPIC or perms.allows("topic", "create", t) for t in message.topics):  # type: ignore[attr-defined]
                return dataclasses.replace(message, allow_auto_topic_creation=False)  # type: ignore[type-var]
        return message

    def filter_reply(self, identity: str, message: Message) -> Message:
        kind = type(message)
        if (kind is not MetadataResponse and kind is not ListGroupsResponse) or identity in self.super_users:
            return message
        perms = self.snapshot.permissions(identity)
        if isinstance(message, MetadataResponse):
            topics = tuple(t for t in message.topics if t.name == OFFSETS_TOPIC or perms.allows("topic", "describe", t.name))
            return message if len(topics) == len(message.topics) else dataclasses.replace(message, topics=topics)
        assert isinstance(message, ListGroupsResponse)
        groups = tuple(g for g in message.groups if perms.allows("group", "describe", g.group_id))
        return message if len(groups) == len(message.groups) else dataclasses.replace(message, groups=groups)

    def _deny(self, identity: str, what: str, check: Check | None = None) -> AuthorizationError:
        self.denied += 1
        hint = ""
        if check is not None:
            resource_type, operation, name = check
            where = "--cluster" if resource_type == "cluster" else f"--{resource_type} {name}"
            hint = f"; an admin can allow it: kbroker acls add --principal {identity} {where} --operation {operation}"
        return AuthorizationError(f"client {identity} may not {what}{hint}")


def _topics(op: str, names: Callable[[Message], Iterable[str]]) -> Callable[[Message], list[Check]]:
    return lambda m: [("topic", op, n) for n in dict.fromkeys(names(m))]


def _group(op: str) -> Callable[[Message], list[Check]]:
    return lambda m: [("group", op, m.group_id)]  # type: ignore[attr-defined]


_NONE: Callable[[Message], list[Check]] = lambda m: []  # noqa: E731
_ADMIN: Callable[[Message], list[Check]] = lambda m: [("cluster", "admin", CLUSTER_NAME)]  # noqa: E731

_RULES: dict[type, Callable[[Message], list[Check]]] = {
    Produce: _topics("write", lambda m: (t.name for t in m.topics)),  # type: ignore[attr-defined]
    Fetch: _topics("read", lambda m: (t.name for t in m.topics)),  # type: ignore[attr-defined]
    ListOffsets: _topics("describe", lambda m: (t.name for t in m.topics)),  # type: ignore[attr-defined]
    Metadata: _topics("describe", lambda m: (t for t in m.topics or () if t != OFFSETS_TOPIC)),  # type: ignore[attr-defined]
    CreateTopics: _topics("create", lambda m: (t.name for t in m.topics)),  # type: ignore[attr-defined]
    DeleteTopics: _topics("delete", lambda m: m.topic_names),  # type: ignore[attr-defined]
    AlterConfigs: _topics("alter", lambda m: (r.topic for r in m.resources)),  # type: ignore[attr-defined]
    DescribeTopics: lambda m: _ADMIN(m) if m.topic_names is None else _topics("describe", lambda x: x.topic_names)(m),  # type: ignore[attr-defined]
    DescribeCluster: _NONE,
    InitProducerId: _NONE,
    ListGroups: _NONE,
    DescribeWorkerStats: _ADMIN,
    ConsumerGroupHeartbeat: _group("read"),
    OffsetCommit: lambda m: _group("read")(m) + [("topic", "read", t.name) for t in m.topics],  # type: ignore[attr-defined]
    OffsetFetch: _group("read"),
    DescribeGroup: _group("describe"),
    DeleteGroup: _group("delete"),
    CreateAcls: _ADMIN,
    DescribeAcls: _ADMIN,
    DeleteAcls: _ADMIN,
}
