"""Worker liveness as the controller sees it: a state machine written as data.

    state  (event:)  REGISTER   HEARTBEAT   SESSION_EXPIRED   PROCESS_EXITED
    ALIVE            ALIVE      ALIVE       FENCED            DEAD
    FENCED           ALIVE      -           -                 DEAD
    DEAD             ALIVE      -           -                 DEAD (no-op)

- ALIVE: registered and heartbeating; may lead, be placed on and join ISRs.
- FENCED: heartbeats stopped for ``session_timeout_ms`` (hung, not known dead); treated as dead
  for leadership, and its heartbeats are refused until it registers again.
- DEAD: the supervisor saw the process exit, or the controller just started (liveness is never
  persisted: after a restart every known worker is DEAD until it registers).

``TRANSITIONS`` is the whole machine; a (state, event) pair missing from it is illegal and
``next_state`` raises ``IllegalTransition``. Not thread-safe: owned by the controller.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final

__all__ = ["IllegalTransition", "TRANSITIONS", "WorkerEvent", "WorkerSession", "WorkerState", "next_state"]


class WorkerState(Enum):
    ALIVE = "alive"
    FENCED = "fenced"
    DEAD = "dead"


class WorkerEvent(Enum):
    REGISTER = "register"  # RegisterWorker: same or newer incarnation
    HEARTBEAT = "heartbeat"  # WorkerHeartbeat from the registered incarnation
    SESSION_EXPIRED = "session_expired"  # no heartbeat for session_timeout_ms (tick)
    PROCESS_EXITED = "process_exited"  # the supervisor's process sentinel fired


class IllegalTransition(ValueError):
    """An event the current state does not accept (the caller turns it into a reply error)."""


TRANSITIONS: Final[dict[tuple[WorkerState, WorkerEvent], WorkerState]] = {
    (WorkerState.ALIVE, WorkerEvent.REGISTER): WorkerState.ALIVE,
    (WorkerState.ALIVE, WorkerEvent.HEARTBEAT): WorkerState.ALIVE,
    (WorkerState.ALIVE, WorkerEvent.SESSION_EXPIRED): WorkerState.FENCED,
    (WorkerState.ALIVE, WorkerEvent.PROCESS_EXITED): WorkerState.DEAD,
    (WorkerState.FENCED, WorkerEvent.REGISTER): WorkerState.ALIVE,
    (WorkerState.FENCED, WorkerEvent.PROCESS_EXITED): WorkerState.DEAD,
    (WorkerState.DEAD, WorkerEvent.REGISTER): WorkerState.ALIVE,
    (WorkerState.DEAD, WorkerEvent.PROCESS_EXITED): WorkerState.DEAD,  # reported twice: no-op
}


def next_state(state: WorkerState, event: WorkerEvent) -> WorkerState:
    """The state after ``event``; raises ``IllegalTransition`` if ``state`` does not accept it."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition(f"a {state.value} worker cannot take {event.value}") from None


@dataclass(slots=True)
class WorkerSession:
    """One worker's registration and liveness (mutable; owned by ``ControllerState``)."""

    worker_id: int
    endpoint: str
    incarnation: int
    pid: int = -1
    state: WorkerState = WorkerState.DEAD
    last_heartbeat_ms: int = -1
    version_seen_at_last_heartbeat: int = -1  # the controller's metadata version at the previous heartbeat

    @property
    def alive(self) -> bool:
        return self.state is WorkerState.ALIVE

    def apply(self, event: WorkerEvent) -> WorkerState:
        """Move along ``TRANSITIONS``; returns the new state."""
        self.state = next_state(self.state, event)
        return self.state
