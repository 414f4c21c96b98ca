"""kbroker: a distributed event log and pub/sub broker in the spirit of Apache Kafka.

The public API is importable from here. Client classes are loaded lazily (PEP 562) so that
``import kbroker.storage`` and ``import kbroker.errors`` never pull in sockets or threads.
"""

from __future__ import annotations

from kbroker._lazy import lazy_exports

from kbroker.errors import *  # noqa: F403
from kbroker.errors import __all__ as _error_names

__version__ = "0.1.0"

# name -> module that defines it; filled in as the subsystems arrive.
_TYPES = "kbroker.transport.client.types"
_LAZY: dict[str, str] = {
    "Admin": "kbroker.transport.client.admin",
    "AclBinding": "kbroker.actors.acls",
    "Consumer": "kbroker.transport.client.consumer",
    "Producer": "kbroker.transport.client.producer",
    "GroupInfo": _TYPES,
    "GroupPartition": _TYPES,
    "PartitionInfo": _TYPES,
    "Record": _TYPES,
    "RecordMetadata": _TYPES,
    "TimestampType": _TYPES,
    "TopicInfo": _TYPES,
    "TopicPartition": _TYPES,
    "WorkerInfo": _TYPES,
}

__all__ = ["__version__", *_error_names, *_LAZY]


__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)
