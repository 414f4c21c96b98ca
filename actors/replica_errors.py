"""Replica-specific errors, re-exported from ``kbroker.errors`` (where they are registered)."""

from __future__ import annotations

from kbroker.errors import InvalidProducerEpochError

__all__ = ["InvalidProducerEpochError"]
