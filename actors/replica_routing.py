"""How a PartitionReplica sends what its core decided (an ``Outbox``): answers, replication messages, asks.

    Outbox.produce_results / fetch_results ──PartAnswer──▶ the requester (the Gateway's ref in the PartKey)
    Outbox.to_replicas ──▶ a parked envelope of that follower (reply), else io.tell / io.ask to
                           (endpoint of that worker, "replica:<topic>:<partition>")
    Outbox.to_controller ──▶ io.ask to the controller
    an ask's answer ──Answer(request, future)──▶ the replica's LaneRef (from the I/O thread: inline)

A mixin of ``PartitionReplica``: it uses that actor's state (``core``, ``_io``, ``_cache``,
``_controller``, ``_name``, ``_ask_timeout``, ``_waiting_envelopes``, ``lane_ref``).
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pykka

from kbroker.actors.replica_outbox import Outbox
from kbroker.actors.replica_requests import PartAnswer, PartKey
from kbroker.errors import KBrokerError
from kbroker.transport.envelope import Address
from kbroker.transport.messages_internal import (
    AlterIsr,
    OffsetForLeaderEpoch,
    OffsetForLeaderEpochResponse,
    ReplicaFetch,
    ReplicaFetchResponse,
)
from kbroker.transport.schema import Message

__all__ = ["Answer", "OutboxRouting", "error_answer", "tell_requester"]

log = logging.getLogger("kbroker.actors.partition_replica")


@dataclass(frozen=True, slots=True)
class Answer:
    """The answer to an ask of the replica (``future`` is done), with the request it answers."""

    request: Message
    future: Future


class OutboxRouting:
    if TYPE_CHECKING:
        core: Any
        lane_ref: Any
        _io: Any
        _cache: Any
        _controller: Address | None
        _name: str
        _ask_timeout: float
        _waiting_envelopes: dict

    def _route(self, out: Outbox) -> None:
        core = self.core
        for result in out.produce_results:
            key = result.request_id
            if isinstance(key, PartKey) and result.acks != 0:
                tell_requester(key, PartAnswer(key, result.to_response(key.partition, core.leader_id, core.leader_epoch)))
        for result in out.fetch_results:
            key = result.request_id
            if isinstance(key, PartKey):
                tell_requester(key, PartAnswer(key, result.to_response(key.partition, core.leader_id, core.leader_epoch)))
        for send in out.to_replicas:
            self._send_to_replica(send.to, send.message)
        for request in out.to_controller:
            self._send_to_controller(request)

    def _send_to_replica(self, worker_id: int, message: Message) -> None:
        waiting = self._waiting_envelopes.pop((type(message), worker_id), None)
        if waiting is not None:
            waiting.reply(message)
            return
        endpoint = self._cache.snapshot.endpoint_of(worker_id)
        if endpoint is None:
            log.debug("%s: no endpoint known for worker %d; dropped %s", self._name, worker_id, type(message).__name__)
            return
        address = Address(endpoint, self._name)
        if isinstance(message, ReplicaFetch):
            timeout = message.max_wait_ms / 1000 + self._ask_timeout
            self._ask(address, message, timeout)
        elif isinstance(message, OffsetForLeaderEpoch):
            self._ask(address, message, self._ask_timeout)
        else:
            self._io.tell(address, message)

    def _send_to_controller(self, request: AlterIsr) -> None:
        log.info("%s: asking the controller for ISR %s (partition epoch %d)", self._name, list(request.new_isr), request.partition_epoch)
        if self._controller is None:
            log.debug("%s: no controller address; AlterIsr dropped", self._name)
            return
        self._ask(self._controller, request, self._ask_timeout)

    def _ask(self, address: Address, message: Message, timeout: float) -> None:
        future = self._io.ask(address, message, timeout)
        ref = self.lane_ref

        def deliver(done: Future) -> None:  # runs in the I/O thread: only a tell
            try:
                ref.tell(Answer(message, done))
            except pykka.ActorDeadError:
                pass

        future.add_done_callback(deliver)


def error_answer(request: Message, error: KBrokerError) -> Message | None:
    """The answer the core gets when the leader's process refused the request as a whole (an
    ErrorResponse: the replica is not there yet, or the I/O thread stopped): an error answer, so
    the follower retries after retry_backoff_ms instead of waiting out request_timeout_ms."""
    if isinstance(request, ReplicaFetch):
        return ReplicaFetchResponse(
            request.topic, request.partition, error.code, request.current_leader_epoch, -1, -1, -1, None
        )
    if isinstance(request, OffsetForLeaderEpoch):
        return OffsetForLeaderEpochResponse(request.topic, request.partition, error.code, -1, -1)
    return None


def tell_requester(key: PartKey, message: object) -> None:
    """Answer the requester (the gateway); one that has stopped (worker shutdown) needs no answer."""
    try:
        key.reply_to.tell(message)
    except pykka.ActorDeadError:
        pass
