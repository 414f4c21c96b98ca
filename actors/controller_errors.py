"""Controller-specific errors, re-exported from ``kbroker.errors`` (where they are registered)."""

from __future__ import annotations

from kbroker.errors import IneligibleReplicaError, InvalidUpdateVersionError

__all__ = ["InvalidUpdateVersionError", "IneligibleReplicaError"]
