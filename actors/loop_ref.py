"""An actor that lives on its process's I/O thread instead of a thread of its own.

    replica threads, timers ──ref.tell(msg)──▶ io.call_soon(target.on_receive, msg) ──▶ I/O thread
    clients ──envelope──▶ I/O thread: Inbound ──ref.tell──▶ its own command deque (no wake-up)
                          ──▶ target.on_receive(envelope) in the same loop pass ──▶ replies leave

A ``LoopRef`` looks like a pykka ``ActorRef`` to its senders (``tell``, ``is_alive``, ``stop``)
but runs the target's ``on_receive`` on the I/O thread: one thread for the socket work and the
actor's, so a request routed by it costs no thread hand-off (each costs 30-100 us of futex and GIL
traffic, several per request). Only for actors whose work is quick and never blocks (the Gateway:
routing and aggregation; the log work stays on the replica actors' threads).

Invariants: the target's state is touched by the I/O thread only (messages from other threads
are queued to it); after ``stop`` a ``tell`` raises ``pykka.ActorDeadError`` like a stopped actor's.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import pykka

__all__ = ["LoopRef", "LoopTarget"]


class LoopTarget(Protocol):
    def on_receive(self, message: Any) -> None: ...
    def on_stop(self) -> None: ...


def _inline(fn: Callable[..., Any], *args: Any) -> bool:
    fn(*args)
    return True


class LoopRef:
    """``tell`` hands the message to ``call_soon`` (an ``IOThread.call_soon``; inline by default, for tests)."""

    __slots__ = ("_target", "_call_soon", "_alive")

    def __init__(self, target: LoopTarget, call_soon: Callable[..., bool] = _inline) -> None:
        self._target = target
        self._call_soon = call_soon
        self._alive = True

    def tell(self, message: Any) -> None:
        if not self._alive or not self._call_soon(self._target.on_receive, message):
            raise pykka.ActorDeadError(f"{type(self._target).__name__} is stopped")

    def is_alive(self) -> bool:
        return self._alive

    def stop(self, block: bool = True, timeout: float | None = None) -> None:
        if self._alive:
            self._alive = False
            self._target.on_stop()

    def __repr__(self) -> str:
        return f"<LoopRef of {type(self._target).__name__}>"
