"""What a local actor receives from the I/O thread, and how remote actors are addressed.

An ``Envelope`` carries one decoded message, its payload frames and a reply handle. The actor
that receives it must release it: ``reply(...)`` (at most once; it releases too) and/or
``done()`` (idempotent). Typical: ``done()`` as soon as the payload is no longer needed (the
batch is in the log), ``reply()`` later (the in-sync replicas have it); a tell that needs no
answer just gets ``done()``. Until released, the payload bytes count against the I/O thread's
in-flight budget; envelopes that are never released eventually stop the process from reading.

``Envelope.detached(message, on_reply)`` builds one with no socket behind it, so the same
handler code serves an in-process caller (and tests) without going through ZeroMQ.

Thread-safety: an envelope belongs to the one actor it was delivered to; ``reply`` and ``done``
may be called from that actor's thread (or any single thread), never concurrently.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Protocol

from kbroker.errors import KBrokerError
from kbroker.transport.schema import Message

__all__ = ["Address", "Envelope", "ReplySink"]


class Address(NamedTuple):
    """Where an actor lives: the process's ROUTER endpoint and the actor's registered name."""

    endpoint: str  # e.g. "tcp://10.0.0.5:7093"
    actor: str | None  # e.g. "controller", "replica:orders-3"; None: the endpoint's default actor


class ReplySink(Protocol):
    """What sends an envelope's reply and releases its bytes (the I/O thread, or a callback)."""

    def send_reply(self, envelope: Envelope, message: Message) -> None: ...

    def release(self, envelope: Envelope) -> None: ...


class Envelope:
    """One message delivered to a local actor."""

    __slots__ = (
        "message", "correlation_id", "to", "frames", "payload_bytes", "route", "identity", "_sink", "_replied", "_released",
    )  # fmt: skip

    def __init__(
        self,
        message: Message,
        correlation_id: int,
        to: str | None,
        frames: tuple[Any, ...],
        payload_bytes: int,
        sink: ReplySink,
        route: tuple[bytes, ...] = (),
        identity: str | None = None,
    ) -> None:
        self.message = message
        self.correlation_id = correlation_id
        self.to = to  # the actor name the sender used (None: the endpoint's default actor)
        self.frames = frames  # the payload frames (zmq.Frame), which the message's payloads view
        self.payload_bytes = payload_bytes
        self.route = route  # ZeroMQ routing frames of the sender (opaque)
        self.identity = identity  # the sender's CURVE public key (Z85) as ZAP reported it; None without CURVE
        self._sink = sink
        self._replied = False
        self._released = payload_bytes == 0

    def __repr__(self) -> str:
        return (
            f"Envelope({type(self.message).__name__}, id={self.correlation_id}, to={self.to!r}, "
            f"payload_bytes={self.payload_bytes}, replied={self._replied}, released={self._released})"
        )

    @classmethod
    def detached(cls, message: Message, on_reply: Callable[[Message], None] | None = None) -> Envelope:
        """An envelope with no socket behind it: ``reply`` calls ``on_reply`` (in the replier's thread)."""
        return cls(message, 0, None, (), 0, _CallbackSink(on_reply))

    @property
    def replied(self) -> bool:
        return self._replied

    @property
    def released(self) -> bool:
        return self._released

    def reply(self, message: Message) -> None:
        """Send ``message`` back to the sender (same correlation id); also releases the payload."""
        if self._replied:
            raise RuntimeError(f"{self!r} was already replied to")
        self._replied = True
        self._sink.send_reply(self, message)
        self.done()

    def reply_error(self, error: KBrokerError) -> None:
        """Answer with an ``ErrorResponse`` carrying the error's stable code and message."""
        from kbroker.transport.messages_client import ErrorResponse

        self.reply(ErrorResponse(error.code, error.message))

    def done(self) -> None:
        """Stop counting the payload bytes against the in-flight budget (idempotent).

        The payload views stay valid (they keep their frame alive); ``done`` is a promise that the
        actor no longer holds on to them for long, e.g. the batch has been written to the log.
        """
        if not self._released:
            self._released = True
            self._sink.release(self)


class _CallbackSink:
    __slots__ = ("_on_reply",)

    def __init__(self, on_reply: Callable[[Message], None] | None) -> None:
        self._on_reply = on_reply

    def send_reply(self, envelope: Envelope, message: Message) -> None:
        if self._on_reply is not None:
            self._on_reply(message)

    def release(self, envelope: Envelope) -> None:
        pass
