"""The controller's ACL store: CreateAcls / DescribeAcls / DeleteAcls as calls returning records.

    request        here                        the controller shell then
    CreateAcls     AclStore.create(request)    appends the records (AclBinding) to the metadata log,
    DeleteAcls     AclStore.delete(request)      (Removal tombstones), installs the new set in its own
                                                 AclGuard, tells every live worker ``UpdateAcls``,
                                                 then replies
    DescribeAcls   AclStore.describe(request)  replies

ACL entries are metadata-log records keyed ``acl/<type>/<operation>/<principal>/<name>``
(metadata_log.py), so replaying the log at start rebuilds the store (``MetadataImage.acls``).
A worker that registers gets the whole set at once (``update_message``).

Invariants: a request either applies entirely or changes nothing (one invalid entry fails the
whole CreateAcls); ``version`` grows with every change (wall-clock ms, at least previous + 1) so
a worker never installs an older set after a newer one. Pure; not thread-safe (the controller's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from kbroker.actors.acls import AclBinding, matches
from kbroker.actors.controller_model import MetadataRecord, Removal
from kbroker.errors import KBrokerError
from kbroker.transport.messages_acls import (
    CreateAcls,
    CreateAclsResponse,
    DeleteAcls,
    DeleteAclsResponse,
    DescribeAcls,
    DescribeAclsResponse,
    UpdateAcls,
)
from kbroker.transport.schema import Message

__all__ = ["AclStore", "AclResult"]


@dataclass(frozen=True, slots=True)
class AclResult:
    response: Message
    records: tuple[MetadataRecord, ...]  # to persist before replying (empty: nothing changed)


class AclStore:
    def __init__(self, bindings: Iterable[AclBinding] = (), version: int = 0) -> None:
        self._bindings: dict[str, AclBinding] = {b.key: b for b in bindings}
        self.version = version

    @property
    def bindings(self) -> list[AclBinding]:
        return sorted(self._bindings.values())

    def handle(self, request: Message, now_ms: int) -> AclResult:
        if isinstance(request, CreateAcls):
            return self.create(request, now_ms)
        if isinstance(request, DeleteAcls):
            return self.delete(request, now_ms)
        assert isinstance(request, DescribeAcls), request
        return self.describe(request)

    def create(self, request: CreateAcls, now_ms: int) -> AclResult:
        try:
            wanted = [AclBinding.from_entry(e) for e in request.acls]
        except KBrokerError as exc:
            return AclResult(CreateAclsResponse(exc.code, exc.message, 0), ())
        new = {b.key: b for b in wanted if b.key not in self._bindings}
        if new:
            self._bindings.update(new)
            self._bump(now_ms)
        return AclResult(CreateAclsResponse(0, None, len(new)), tuple(new.values()))

    def delete(self, request: DeleteAcls, now_ms: int) -> AclResult:
        gone = [b for b in self.bindings if matches(b, request.filter)]
        for b in gone:
            del self._bindings[b.key]
        if gone:
            self._bump(now_ms)
        return AclResult(DeleteAclsResponse(0, None, tuple(b.to_entry() for b in gone)), tuple(Removal(b.key) for b in gone))

    def describe(self, request: DescribeAcls) -> AclResult:
        found = tuple(b.to_entry() for b in self.bindings if matches(b, request.filter))
        return AclResult(DescribeAclsResponse(0, None, found), ())

    def update_message(self) -> UpdateAcls:
        return UpdateAcls(self.version, tuple(b.to_entry() for b in self.bindings))

    def _bump(self, now_ms: int) -> None:
        self.version = max(self.version + 1, now_ms)
