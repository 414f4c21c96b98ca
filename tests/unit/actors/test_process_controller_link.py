"""ControllerLink over real I/O threads in one process: register, heartbeat, re-register, lose."""

from __future__ import annotations

import queue
import threading
import time
from typing import Iterator

import pykka
import pytest

from kbroker.actors import controller as controller_module
from kbroker.actors.controller import CONTROLLER_ACTOR, Controller, ControllerEvent, WorkerLost, WorkerRegistered
from kbroker.actors.worker import ControllerLink
from kbroker.transport.envelope import Address
from kbroker.transport.io_thread import IOThread

WAIT = 10.0


class Clock:
    """Real time plus an offset the test can push forward (to expire sessions at once)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


class Rig:
    def __init__(self) -> None:
        self.events: queue.SimpleQueue[ControllerEvent] = queue.SimpleQueue()
        self.lost: list[str] = []
        self.lost_event = threading.Event()
        self.clock = Clock()
        self.controller_io = IOThread(name="test-io-controller")
        self.worker_io = IOThread(name="test-io-worker")
        self.refs: list[pykka.ActorRef] = []

    def start(self, controller_timeout: float = 5.0) -> None:
        endpoint = self.controller_io.start()
        self.worker_io.start()
        controller = Controller.start(
            cluster_id="c", controller_epoch=1, endpoint=endpoint, session_timeout=1.0, check_interval=3600,
            listener=self.events.put, clock=self.clock,
        )  # fmt: skip
        self.refs.append(controller)
        self.controller = controller
        self.controller_io.register(CONTROLLER_ACTOR, controller, default=True, accepts=Controller.ACCEPTS)
        self.refs.append(
            ControllerLink.start(
                io=self.worker_io, worker_id=0, endpoint=self.worker_io.endpoint, incarnation=7,
                controller=Address(endpoint, CONTROLLER_ACTOR), heartbeat_interval=0.02,
                controller_timeout=controller_timeout, on_lost=self._on_lost,
            )
        )  # fmt: skip

    def _on_lost(self, reason: str) -> None:
        self.lost.append(reason)
        self.lost_event.set()

    def next_event(self) -> ControllerEvent:
        return self.events.get(timeout=WAIT)

    def stop(self) -> None:
        for ref in reversed(self.refs):
            ref.stop()
        self.worker_io.stop()
        self.controller_io.stop()


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig()
    try:
        yield r
    finally:
        r.stop()


def test_the_link_registers_at_once(rig: Rig) -> None:
    rig.start()
    event = rig.next_event()
    assert isinstance(event, WorkerRegistered)
    assert (event.worker_id, event.endpoint, event.incarnation) == (0, rig.worker_io.endpoint, 7)


def test_a_fenced_worker_registers_again_through_its_heartbeats(rig: Rig) -> None:
    rig.start()
    assert isinstance(rig.next_event(), WorkerRegistered)
    rig.clock.offset += 60  # the session looks long expired
    rig.controller.ask(controller_module._TICK, timeout=WAIT)
    lost = rig.next_event()
    assert isinstance(lost, WorkerLost)
    again = rig.next_event()  # the next heartbeat is refused, the link registers again
    assert isinstance(again, WorkerRegistered) and again.incarnation == 7
    assert not rig.lost


def test_the_link_gives_up_when_the_controller_stops_answering(rig: Rig) -> None:
    rig.start(controller_timeout=0.3)
    assert isinstance(rig.next_event(), WorkerRegistered)
    rig.controller_io.unregister(CONTROLLER_ACTOR)  # requests are now refused... by an error reply
    rig.controller_io.stop()  # ...and then not answered at all
    assert rig.lost_event.wait(WAIT)
    assert len(rig.lost) == 1 and "has not answered" in rig.lost[0]
