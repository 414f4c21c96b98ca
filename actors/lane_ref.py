"""An actor whose quick messages from the I/O thread run on the I/O thread, the rest on its own thread.

    I/O thread ──ref.tell(msg)──▶ lane idle and msg quick? ──yes──▶ actor.receive_inline(msg), here, now
                                        │ no (something queued or running, or slow work)
    other threads ──ref.tell/ask──▶ Queued(msg) ──▶ pykka inbox ──▶ actor's thread: on_receive

A ``PartitionReplica`` is a pykka ``ThreadingActor``: its thread does the slow work (opening and
recovering a log, compaction, retention, fsync, truncation) without stalling anyone else. Its hot
path (a produce, a push from the leader, a follower's ack, a fetch) is quick and arrives on the
I/O thread, where a hand-off to the actor's thread and back costs more than the work itself
(30-100 us of futex and GIL traffic each, several per replicated request). ``LaneRef`` runs such
a message on the I/O thread when nothing is queued for the actor and its thread is not running a
message; otherwise it queues the message as any actor message.

Invariants (``Lane``):
- One message at a time: whoever runs one holds ``running`` (the actor's thread, blocking; the
  I/O thread, only if it is free), so the actor's state is never touched by two threads at once.
- Order per sender: a message runs inline only while no counted message is queued, so nothing a
  sender queued earlier is overtaken. A message the actor sends to itself while running inline
  finds ``running`` held and is queued.
- ``queued`` counts the ``Queued`` messages not yet finished; messages sent to the pykka ref
  directly (its stop, tests) are not counted and never hold up the inline path.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, NamedTuple, Protocol

import pykka

__all__ = ["Lane", "LaneRef", "LaneActor", "Queued"]


class Queued(NamedTuple):
    """A message that went through the actor's inbox (counted by its ``Lane``)."""

    message: Any


class Lane:
    __slots__ = ("_mutex", "_running", "_queued", "inline_runs", "queued_runs")

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._running = threading.Lock()
        self._queued = 0
        self.inline_runs = 0  # messages run by the sender's thread
        self.queued_runs = 0  # messages handed to the actor's thread

    # --- the sender (the I/O thread) --------------------------------------------------------

    def enter_inline(self) -> bool:
        """True: the caller may run a message now and must call ``leave_inline`` after it."""
        with self._mutex:
            return not self._queued and self._running.acquire(blocking=False)

    def leave_inline(self, ran: bool = True) -> None:
        """``ran``: a message did run (False: the caller found it not quick and will queue it)."""
        if ran:
            self.inline_runs += 1  # only the thread holding ``running`` writes it
        self._running.release()

    def queue(self, put: Callable[[], Any]) -> Any:
        """Count a message, then ``put`` it in the actor's inbox (under the lane's mutex, so the
        count and the inbox agree for anyone deciding whether to run inline)."""
        with self._mutex:
            self._queued += 1
            self.queued_runs += 1
            try:
                return put()
            except BaseException:
                self._queued -= 1
                self.queued_runs -= 1
                raise

    # --- the actor's thread -----------------------------------------------------------------

    def enter(self) -> None:
        self._running.acquire()

    def leave(self, counted: bool) -> None:
        with self._mutex:
            if counted:
                self._queued -= 1
            self._running.release()

    @property
    def queued(self) -> int:
        return self._queued


class LaneActor(Protocol):
    lane: Lane

    def quick(self, message: Any) -> bool: ...
    def receive_inline(self, message: Any) -> None: ...


class LaneRef:
    """Looks like the actor's ``pykka.ActorRef`` (``tell``, ``ask``, ``is_alive``, ``stop``).

    ``inline`` False turns the inline path off (every message goes through the inbox, as a plain
    pykka actor: for comparisons). ``in_io_thread`` says whether the caller is the I/O thread."""

    __slots__ = ("_actor", "_ref", "_lane", "_in_io_thread", "_inline")

    def __init__(
        self, actor: LaneActor, ref: pykka.ActorRef, in_io_thread: Callable[[], bool], *, inline: bool = True
    ) -> None:
        self._actor = actor
        self._ref = ref
        self._lane = actor.lane
        self._in_io_thread = in_io_thread
        self._inline = inline

    @property
    def lane(self) -> Lane:
        return self._lane

    @property
    def actor_ref(self) -> pykka.ActorRef:
        return self._ref

    def tell(self, message: Any) -> None:
        if self._inline and self._in_io_thread():
            if self._ref.actor_stopped.is_set():
                raise pykka.ActorDeadError(f"{self._ref} not found")
            lane = self._lane
            if lane.enter_inline():
                ran = False
                try:
                    if self._actor.quick(message):
                        ran = True
                        self._actor.receive_inline(message)
                        return
                finally:
                    lane.leave_inline(ran)
        self._lane.queue(lambda: self._ref.tell(Queued(message)))

    def ask(self, message: Any, *, block: bool = True, timeout: float | None = None) -> Any:
        future = self._lane.queue(lambda: self._ref.ask(Queued(message), block=False))
        return future.get(timeout=timeout) if block else future

    def is_alive(self) -> bool:
        return self._ref.is_alive()

    def stop(self, block: bool = True, timeout: float | None = None) -> Any:
        return self._ref.stop(block=block, timeout=timeout)

    def __repr__(self) -> str:
        return f"<LaneRef of {self._ref}>"
