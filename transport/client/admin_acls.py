"""``Admin`` ACL methods (Kafka's AdminClient names): ``create_acls``, ``list_acls``, ``delete_acls``.

    Admin ── CreateAcls / DescribeAcls / DeleteAcls ──▶ bootstrap endpoint (the controller)

ACLs take effect only on a broker with CURVE (``kbroker start --curve-secret-key ... --curve-allow
...``); the caller needs the cluster ``admin`` operation (a ``--curve-super-user`` key, or an ACL
granting it). A principal is a client's CURVE public key: the Z85 text, or a path to its ``.key``
file (``public_key``), or ``"*"`` for every authenticated client. See actors/acls.py for which
request needs which operation.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Iterable

from zmq.utils import z85

from kbroker.actors.acls import CLUSTER_NAME, AclBinding
from kbroker.errors import InvalidConfigError, error_for_code
from kbroker.transport.curve import CurveKeyError, load_public_key
from kbroker.transport.messages_acls import (
    AclFilter,
    CreateAcls,
    CreateAclsResponse,
    DeleteAcls,
    DeleteAclsResponse,
    DescribeAcls,
    DescribeAclsResponse,
)

__all__ = ["AclAdmin", "AclBinding", "public_key", "CLUSTER_NAME"]


def public_key(principal: str | os.PathLike[str]) -> str:
    """``"*"``, a 40-character Z85 key, or the path of a ``.key`` / ``.key_secret`` file -> the principal text."""
    text = os.fspath(principal)
    if text == "*" or (len(text) == 40 and not os.path.exists(text) and _is_z85_key(text)):
        return text
    try:
        return load_public_key(text, "principal key file").decode("ascii")
    except CurveKeyError as exc:
        raise InvalidConfigError(f"{exc} (a principal is a .key file, a 40-character public key, or '*')") from None


def _is_z85_key(text: str) -> bool:
    try:
        return len(z85.decode(text.encode("ascii"))) == 32
    except (ValueError, KeyError, UnicodeEncodeError):
        return False


class AclAdmin:
    """Mixed into ``Admin`` (which provides ``_request``)."""

    if TYPE_CHECKING:
        def _request(self, message: Any, expected: type) -> Any: ...

    def create_acls(self, acls: Iterable[AclBinding]) -> int:
        """Store ALLOW entries; returns how many were new. One invalid entry stores nothing."""
        entries = tuple(_binding(a).to_entry() for a in acls)
        if not entries:
            raise InvalidConfigError("create_acls needs at least one AclBinding")
        reply: CreateAclsResponse = self._request(CreateAcls(entries), CreateAclsResponse)
        _raise(reply.error_code, reply.error_message)
        return reply.created

    def list_acls(
        self,
        principal: str | os.PathLike[str] | None = None,
        resource_type: str | None = None,
        resource_name: str | None = None,
        operation: str | None = None,
    ) -> list[AclBinding]:
        """Every entry matching the given fields (None: any), sorted."""
        reply: DescribeAclsResponse = self._request(
            DescribeAcls(_filter(principal, resource_type, resource_name, operation)), DescribeAclsResponse
        )
        _raise(reply.error_code, reply.error_message)
        return sorted(AclBinding.from_entry(e) for e in reply.acls)

    def delete_acls(
        self,
        principal: str | os.PathLike[str] | None = None,
        resource_type: str | None = None,
        resource_name: str | None = None,
        operation: str | None = None,
    ) -> list[AclBinding]:
        """Remove every entry matching the given fields (None: any); returns the removed ones."""
        if principal is None and resource_type is None and resource_name is None and operation is None:
            raise InvalidConfigError("delete_acls needs at least one of principal, resource_type, resource_name, operation")
        reply: DeleteAclsResponse = self._request(
            DeleteAcls(_filter(principal, resource_type, resource_name, operation)), DeleteAclsResponse
        )
        _raise(reply.error_code, reply.error_message)
        return sorted(AclBinding.from_entry(e) for e in reply.deleted)


def _binding(acl: object) -> AclBinding:
    if not isinstance(acl, AclBinding):
        raise InvalidConfigError(f"expected an AclBinding, got {type(acl).__name__}")
    return acl


def _filter(principal: Any, resource_type: Any, resource_name: Any, operation: Any) -> AclFilter:
    return AclFilter(None if principal is None else public_key(principal), resource_type, resource_name, operation)


def _raise(code: int, message: str | None) -> None:
    if code:
        raise error_for_code(code, message)


