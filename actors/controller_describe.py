"""DescribeTopics offsets, gathered from the partition leaders without blocking the controller.

    DescribeTopics ──start()──▶ io.ask(DescribeReplicas) to each live leader's replica manager
                                  │ (deadline: ``timeout``; the I/O thread ends every ask)
    future done (I/O thread) ──▶ ``notify(ReplicasDescribed)`` ──▶ the actor ──answered()──▶
    last ask ended ──▶ (envelope, request, offsets): the actor builds the response from its state

Invariants: every started describe completes exactly once, when its last ask has ended (an
answer, an error or the timeout), so a silent worker costs at most ``timeout``, never a hang;
partitions whose leader did not answer keep offsets -1. Not thread-safe: owned by the actor,
except ``notify``, which may be called from any thread.
"""

from __future__ import annotations

import functools
import itertools
import logging
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol

from kbroker.actors.controller_requests import offsets_from
from kbroker.actors.controller_views import Offsets
from kbroker.actors.names import REPLICA_MANAGER
from kbroker.transport.envelope import Address, Envelope
from kbroker.transport.messages_admin import DescribeTopics
from kbroker.transport.messages_internal import DescribeReplicas, DescribeReplicasResponse
from kbroker.transport.schema import Message

__all__ = ["Asker", "Completed", "OffsetGathering", "ReplicasDescribed"]

log = logging.getLogger(__name__)


class Asker(Protocol):
    def ask(self, address: Address, message: Message, timeout: float) -> Future[Message]: ...


@dataclass(frozen=True, slots=True)
class ReplicasDescribed:
    """I/O thread -> actor: one DescribeReplicas ask of a pending describe has ended."""

    token: int
    worker_id: int
    future: Future[Message]


@dataclass(frozen=True, slots=True)
class Completed:
    envelope: Envelope
    request: DescribeTopics
    offsets: Offsets


@dataclass(slots=True)
class _Pending:
    envelope: Envelope
    request: DescribeTopics
    waiting: set[int]
    answers: dict[int, DescribeReplicasResponse] = field(default_factory=dict)


class OffsetGathering:
    def __init__(self, io: Asker, notify: Callable[[ReplicasDescribed], None], timeout: float) -> None:
        self._io = io
        self._notify = notify
        self.timeout = timeout
        self._pending: dict[int, _Pending] = {}
        self._tokens = itertools.count(1)

    def __len__(self) -> int:
        return len(self._pending)

    def start(
        self, envelope: Envelope, request: DescribeTopics, plan: Mapping[int, DescribeReplicas], endpoints: Mapping[int, str]
    ) -> None:
        """Ask every worker in ``plan`` (non-empty) for its replicas; the reply waits for them."""
        token = next(self._tokens)
        self._pending[token] = _Pending(envelope, request, set(plan))
        for worker_id, ask in plan.items():
            future = self._io.ask(Address(endpoints[worker_id], REPLICA_MANAGER), ask, self.timeout)
            future.add_done_callback(functools.partial(self._done, token, worker_id))

    def _done(self, token: int, worker_id: int, future: Future[Message]) -> None:
        self._notify(ReplicasDescribed(token, worker_id, future))

    def answered(self, event: ReplicasDescribed) -> Completed | None:
        """Note one ended ask; the completed describe once it was the last one."""
        pending = self._pending.get(event.token)
        if pending is None:
            return None
        error = event.future.exception()
        result = event.future.result() if error is None else None
        if isinstance(result, DescribeReplicasResponse):
            pending.answers[event.worker_id] = result
        else:
            log.debug("worker %d did not describe its replicas: %s", event.worker_id, error or result)
        pending.waiting.discard(event.worker_id)
        if pending.waiting:
            return None
        del self._pending[event.token]
        return Completed(pending.envelope, pending.request, offsets_from(pending.answers))
