"""The Gateway actor: the default actor of a worker's endpoint, where clients send data requests.

Today it serves nothing: ``_HANDLERS`` is empty, so ``ACCEPTS`` is empty and the worker's I/O
thread answers every request sent here with InvalidRequest ("actor 'gateway' at tcp://... does
not serve Produce"), a true answer rather than a pretended one. Metadata is answered by the
controller at the bootstrap endpoint.

SEAM (gateway produce/fetch): add ``Produce``, ``Fetch``, ``ListOffsets`` and ``Metadata``
handlers to ``_HANDLERS`` (which widens ``ACCEPTS``). They route each partition to its local
``PartitionReplica`` actor (NotLeader with the known leader otherwise), keep the metadata cache
the controller pushes (``UpdateMetadata``), and answer with ``tell`` + correlation ids, never a
blocking ``ask`` on the data path (see MEASUREMENTS.md). Envelopes must be released (``done``)
once their payload is in the log, replied to once the acks condition holds.

Not thread-safe: state belongs to the actor.
"""

from __future__ import annotations

import logging
from typing import ClassVar

import pykka

from kbroker.errors import InvalidRequestError, UnknownError
from kbroker.transport.envelope import Envelope
from kbroker.transport.schema import Message

__all__ = ["GATEWAY_ACTOR", "Gateway"]

log = logging.getLogger(__name__)

GATEWAY_ACTOR = "gateway"


class Gateway(pykka.ThreadingActor):
    _HANDLERS: ClassVar[dict[type[Message], str]] = {}
    ACCEPTS: ClassVar[frozenset[type[Message]]] = frozenset(_HANDLERS)

    def __init__(self, *, worker_id: int) -> None:
        super().__init__()
        self.worker_id = worker_id

    def on_receive(self, message: object) -> None:
        if not isinstance(message, Envelope):
            log.warning("gateway ignored an unexpected message %r", message)
            return
        handler = self._HANDLERS.get(type(message.message))
        try:
            if handler is None:
                raise InvalidRequestError(f"worker {self.worker_id} does not serve {type(message.message).__name__}")
            getattr(self, handler)(message)
        except Exception as exc:
            error = exc if isinstance(exc, InvalidRequestError) else UnknownError(f"the gateway failed: {type(exc).__name__}: {exc}")
            if not isinstance(exc, InvalidRequestError):
                log.exception("gateway failed on %r", message)
            if not message.replied:
                message.reply_error(error)
            message.done()
