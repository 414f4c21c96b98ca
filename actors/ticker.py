"""A periodic ``tell`` to an actor: how actors get a notion of time without threads of their own.

pykka actors only react to messages; an actor that must notice the absence of something (a
worker's missing heartbeats, a controller that stopped answering) is sent a tick every
``interval`` seconds and compares its injected clock with what it last saw.

Invariants: one daemon thread per ticker; ticks are never queued up faster than ``interval``;
the thread ends on ``stop()`` or when the actor is gone. Owners still call ``stop()`` (in a
``finally``) so no thread outlives what it serves.
"""

from __future__ import annotations

import threading

import pykka

__all__ = ["Ticker"]


class Ticker:
    def __init__(self, target: pykka.ActorRef, message: object, interval: float, *, name: str = "kbroker-ticker") -> None:
        if interval <= 0:
            raise ValueError(f"a ticker interval must be positive, got {interval}")
        self._target = target
        self._message = message
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Ticker:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopped.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                self._target.tell(self._message)
            except pykka.ActorDeadError:
                return
