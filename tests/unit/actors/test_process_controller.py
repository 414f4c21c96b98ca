"""The Controller actor shell: requests in detached envelopes, a driven clock, listener events."""

from __future__ import annotations

import threading
from typing import Iterator

import pykka
import pytest

from kbroker.actors import controller as controller_module
from kbroker.actors.controller import Controller, ControllerFailed, WorkerDied, WorkerLost, WorkerRegistered, WorkerState
from kbroker.errors import StaleMemberEpochError, UnknownError, UnknownMemberError
from kbroker.transport.envelope import Envelope
from kbroker.transport.messages_admin import DescribeCluster, DescribeClusterResponse
from kbroker.transport.messages_client import ErrorResponse
from kbroker.transport.messages_internal import RegisterWorker, RegisterWorkerResponse, WorkerHeartbeat, WorkerHeartbeatResponse
from kbroker.transport.schema import Message

CLUSTER_ID = "AAAAAAAAAAAAAAAAAAAAAA"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Harness:
    def __init__(self, ref: pykka.ActorRef, clock: Clock, events: list[object]) -> None:
        self.ref, self.clock, self.events = ref, clock, events

    def request(self, message: Message) -> Message:
        replies: list[Message] = []
        self.ref.ask(Envelope.detached(message, replies.append), timeout=10)  # returns once handled
        assert len(replies) == 1, replies
        return replies[0]

    def tick(self) -> None:
        self.ref.ask(controller_module._TICK, timeout=10)

    def died(self, worker_id: int, pid: int) -> None:
        self.ref.ask(WorkerDied(worker_id, pid, "killed by SIGKILL"), timeout=10)

    def workers(self) -> list[tuple[int, str, int, bool]]:
        reply = self.request(DescribeCluster())
        assert isinstance(reply, DescribeClusterResponse)
        return [(w.worker_id, w.endpoint, w.pid, w.alive) for w in reply.workers]


def start_harness(actor_class: type[Controller] = Controller) -> Harness:
    clock, events = Clock(), []
    ref = actor_class.start(
        cluster_id=CLUSTER_ID,
        controller_epoch=3,
        endpoint="tcp://boot:7092",
        session_timeout=6.0,
        check_interval=3600,  # ticks come from the test
        listener=events.append,
        clock=clock,
    )
    return Harness(ref, clock, events)


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = start_harness()
    try:
        yield h
    finally:
        h.ref.stop()


def test_it_accepts_exactly_what_it_serves() -> None:
    assert Controller.ACCEPTS == {RegisterWorker, WorkerHeartbeat, DescribeCluster}


def test_register_heartbeat_describe(harness: Harness) -> None:
    assert harness.request(RegisterWorker(0, "tcp://w:1", 500, 1)) == RegisterWorkerResponse(0, None, 3)
    assert harness.request(RegisterWorker(1, "tcp://w:2", 501, 1)) == RegisterWorkerResponse(0, None, 3)
    assert harness.request(WorkerHeartbeat(0, 1, 0)) == WorkerHeartbeatResponse(0, None, 0)

    reply = harness.request(DescribeCluster())
    assert isinstance(reply, DescribeClusterResponse)
    assert (reply.cluster_id, reply.controller_endpoint) == (CLUSTER_ID, "tcp://boot:7092")
    assert harness.workers() == [(0, "tcp://w:1", 500, True), (1, "tcp://w:2", 501, True)]
    assert harness.events == [WorkerRegistered(0, 500, "tcp://w:1", 1), WorkerRegistered(1, 501, "tcp://w:2", 1)]


def test_heartbeat_errors_travel_in_the_response(harness: Harness) -> None:
    reply = harness.request(WorkerHeartbeat(4, 1, 0))
    assert isinstance(reply, WorkerHeartbeatResponse) and reply.error_code == UnknownMemberError.code
    harness.request(RegisterWorker(4, "tcp://w:1", 500, 2))
    reply = harness.request(WorkerHeartbeat(4, 1, 0))
    assert isinstance(reply, WorkerHeartbeatResponse) and reply.error_code == StaleMemberEpochError.code


def test_a_stale_registration_is_refused(harness: Harness) -> None:
    harness.request(RegisterWorker(0, "tcp://w:1", 500, 5))
    reply = harness.request(RegisterWorker(0, "tcp://w:1", 499, 4))
    assert isinstance(reply, RegisterWorkerResponse) and reply.error_code == StaleMemberEpochError.code
    assert harness.workers() == [(0, "tcp://w:1", 500, True)]


def test_a_reported_death_shows_at_once(harness: Harness) -> None:
    harness.request(RegisterWorker(0, "tcp://w:1", 500, 1))
    harness.died(0, 500)
    assert harness.workers() == [(0, "tcp://w:1", -1, False)]
    assert harness.events[-1] == WorkerLost(0, 500, WorkerState.DEAD, "process exited (killed by SIGKILL)")
    harness.died(0, 500)  # twice: nothing new
    assert len(harness.events) == 2


def test_a_silent_worker_is_fenced_after_the_session_timeout_and_may_return(harness: Harness) -> None:
    harness.request(RegisterWorker(0, "tcp://w:1", 500, 1))
    harness.clock.now += 6.0
    harness.tick()
    assert harness.workers() == [(0, "tcp://w:1", 500, True)]  # exactly the timeout: still alive
    harness.clock.now += 0.5
    harness.tick()
    assert harness.workers() == [(0, "tcp://w:1", 500, False)]
    assert isinstance(harness.events[-1], WorkerLost) and harness.events[-1].state is WorkerState.FENCED

    reply = harness.request(WorkerHeartbeat(0, 1, 0))
    assert isinstance(reply, WorkerHeartbeatResponse) and reply.error_code == UnknownMemberError.code
    harness.request(RegisterWorker(0, "tcp://w:1", 500, 1))
    assert harness.workers() == [(0, "tcp://w:1", 500, True)]


class _BrokenController(Controller):
    def _on_describe_cluster(self, envelope: Envelope) -> None:
        raise RuntimeError("boom")


def test_a_failing_handler_answers_unknown_error_and_the_actor_lives_on() -> None:
    harness = start_harness(_BrokenController)
    try:
        reply = harness.request(DescribeCluster())
        assert isinstance(reply, ErrorResponse) and reply.code == UnknownError.code and "boom" in reply.message
        assert harness.request(RegisterWorker(0, "tcp://w:1", 500, 1)) == RegisterWorkerResponse(0, None, 3)
    finally:
        harness.ref.stop()


def test_a_failing_listener_does_not_break_the_controller() -> None:
    def listener(event: object) -> None:
        raise RuntimeError("listener bug")

    ref = Controller.start(cluster_id=CLUSTER_ID, controller_epoch=1, endpoint="tcp://b:1", check_interval=3600, listener=listener)
    try:
        replies: list[Message] = []
        ref.ask(Envelope.detached(RegisterWorker(0, "tcp://w:1", 1, 1), replies.append), timeout=10)
        assert replies == [RegisterWorkerResponse(0, None, 1)]
    finally:
        ref.stop()


class _CrashingController(Controller):
    def _check_sessions(self) -> None:
        raise RuntimeError("bug in the tick path")


def test_a_crash_outside_requests_is_reported_to_the_listener() -> None:
    failed = threading.Event()
    events: list[object] = []

    def listener(event: object) -> None:
        events.append(event)
        if isinstance(event, ControllerFailed):
            failed.set()

    ref = _CrashingController.start(cluster_id=CLUSTER_ID, controller_epoch=1, endpoint="tcp://b:1", check_interval=3600, listener=listener)
    try:
        ref.tell(controller_module._TICK)
        assert failed.wait(10)
        assert "bug in the tick path" in events[-1].error  # type: ignore[attr-defined]
    finally:
        if ref.is_alive():
            ref.stop()
