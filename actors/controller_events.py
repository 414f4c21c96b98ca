"""Messages between the supervisor and the Controller actor, local to the supervisor process.

    supervisor ──WorkerDied──▶ Controller ──WorkerRegistered / WorkerLost / ControllerFailed──▶ listener

Never on the wire: plain frozen dataclasses handed over by ``ActorRef.tell`` and the listener
callback (which runs in the controller's thread and must only hand over, e.g. to a queue).
"""

from __future__ import annotations

from dataclasses import dataclass

from kbroker.actors.worker_liveness import WorkerState

__all__ = ["ControllerEvent", "ControllerFailed", "WorkerDied", "WorkerLost", "WorkerRegistered"]


@dataclass(frozen=True, slots=True)
class WorkerDied:
    """Supervisor -> controller: the process ``pid`` of worker ``worker_id`` exited (sentinel)."""

    worker_id: int
    pid: int
    cause: str  # e.g. "killed by SIGKILL", "exit code 1"


@dataclass(frozen=True, slots=True)
class WorkerRegistered:
    """Controller -> listener: a worker (re-)registered and is alive."""

    worker_id: int
    pid: int
    endpoint: str
    incarnation: int


@dataclass(frozen=True, slots=True)
class WorkerLost:
    """Controller -> listener: a worker stopped being alive (died or fenced)."""

    worker_id: int
    pid: int
    state: WorkerState
    cause: str


@dataclass(frozen=True, slots=True)
class ControllerFailed:
    """Controller -> listener: the actor crashed (a bug, a failed disk) and has stopped; the broker cannot go on."""

    error: str


ControllerEvent = WorkerRegistered | WorkerLost | ControllerFailed
