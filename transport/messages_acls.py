"""ACL messages: managed at the bootstrap endpoint (the controller), pushed to every worker.

Clients (``Admin.create_acls`` / ``list_acls`` / ``delete_acls``, ``kbroker acls``) send
``CreateAcls`` / ``DescribeAcls`` / ``DeleteAcls``; they need the cluster ``admin`` operation.
The controller persists ACLs in its metadata log and tells each worker the whole set with the
internal ``UpdateAcls`` (to the worker's ``acls`` actor), so gateways authorize locally.

An ``AclEntry`` allows one operation: ``principal`` is a client's CURVE public key (Z85, 40
characters) or ``*`` (every authenticated client); ``resource_type`` is ``topic``, ``group`` or
``cluster``; ``resource_name`` a literal name or ``*`` (every resource of that type; the cluster's
name is ``kafka-cluster``); ``operation`` one of ``read``, ``write``, ``create``, ``delete``,
``describe``, ``alter``, ``admin``, ``all``. Filters (``AclFilter``) match entries whose fields
equal the non-nil ones.
"""

from __future__ import annotations

from kbroker.transport.schema import ErrorCode, Int64, Message, Name, Text, message, struct

__all__ = [
    "AclEntry",
    "AclFilter",
    "CreateAcls",
    "CreateAclsResponse",
    "DescribeAcls",
    "DescribeAclsResponse",
    "DeleteAcls",
    "DeleteAclsResponse",
]
INTERNAL = ["UpdateAcls"]  # broker-to-broker only (listed with the internal messages)

ACLS_ACTOR = "acls"
"""The name of the worker-side handler of ``UpdateAcls``."""


@struct
class AclEntry:
    principal: Name  # Z85 public key, or "*"
    resource_type: Name  # "topic" | "group" | "cluster"
    resource_name: Name  # a literal name, or "*"
    operation: Name  # "read" | "write" | "create" | "delete" | "describe" | "alter" | "admin" | "all"


@struct
class AclFilter:
    principal: Name | None  # nil: any
    resource_type: Name | None
    resource_name: Name | None
    operation: Name | None


@message
class CreateAcls(Message):
    acls: tuple[AclEntry, ...]


@message
class CreateAclsResponse(Message):
    error_code: ErrorCode  # the first invalid entry fails the whole request (nothing is stored)
    error_message: Text | None
    created: Int64  # entries that were new


@message
class DescribeAcls(Message):
    filter: AclFilter


@message
class DescribeAclsResponse(Message):
    error_code: ErrorCode
    error_message: Text | None
    acls: tuple[AclEntry, ...]


@message
class DeleteAcls(Message):
    filter: AclFilter


@message
class DeleteAclsResponse(Message):
    error_code: ErrorCode
    error_message: Text | None
    deleted: tuple[AclEntry, ...]


@message
class UpdateAcls(Message):
    version: Int64  # grows with every change; a worker ignores an older set
    acls: tuple[AclEntry, ...]
