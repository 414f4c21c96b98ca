"""LaneRef: quick messages from the I/O thread run there, the rest on the actor's own thread, in order."""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest

from kbroker.actors.lane_ref import Lane, LaneRef, Queued

pytestmark = pytest.mark.timeout(30)


class _Recorder(pykka.ThreadingActor):
    """Records (message, thread) under its lane, as PartitionReplica runs its messages."""

    def __init__(self, io_thread: list[int], *, inline: bool = True) -> None:
        super().__init__()
        self.lane = Lane()
        self.ref = LaneRef(self, self.actor_ref, lambda: threading.get_ident() in io_thread, inline=inline)
        self.seen: list[tuple[Any, int]] = []
        self.gate = threading.Event()
        self.entered = threading.Event()

    def quick(self, message: Any) -> bool:
        return not (isinstance(message, str) and message.startswith("slow"))

    def receive_inline(self, message: Any) -> None:
        self._record(message)

    def on_receive(self, message: Any) -> Any:
        counted = type(message) is Queued
        if counted:
            message = message.message
        self.lane.enter()
        try:
            return self._record(message)
        finally:
            self.lane.leave(counted)

    def _record(self, message: Any) -> Any:
        self.seen.append((message, threading.get_ident()))
        if message == "slow-blocking":
            self.entered.set()
            assert self.gate.wait(10), "the test never opened the gate"
        if message == "tell-myself":
            self.ref.tell("from-myself")
        return ("answer", message)


@pytest.fixture
def actor() -> Any:
    io: list[int] = [threading.get_ident()]  # the test's thread plays the I/O thread
    refs: list[pykka.ActorRef] = []

    def start(inline: bool = True) -> _Recorder:
        ref = _Recorder.start(io, inline=inline)
        refs.append(ref)
        return ref.proxy().ref.get()._actor  # the instance, for its records

    yield start
    for ref in refs:
        ref.stop()


def _wait_for(recorder: _Recorder, count: int) -> None:
    recorder.ref.ask("sync", timeout=10)  # the actor's thread has run everything queued before this
    assert len([m for m, _ in recorder.seen if m != "sync"]) >= count


def test_a_quick_message_from_the_io_thread_runs_at_once_on_that_thread(actor: Any) -> None:
    recorder = actor()
    recorder.ref.tell("produce")
    assert recorder.seen == [("produce", threading.get_ident())]  # synchronously, here
    assert (recorder.lane.inline_runs, recorder.lane.queued_runs) == (1, 0)


def test_slow_work_and_other_threads_go_to_the_actors_thread(actor: Any) -> None:
    recorder = actor()
    recorder.ref.tell("slow-work")
    other = threading.Thread(target=lambda: recorder.ref.tell("from-another-thread"))
    other.start()
    other.join()
    _wait_for(recorder, 2)
    threads = {m: t for m, t in recorder.seen}
    assert threads["slow-work"] != threading.get_ident()
    assert threads["from-another-thread"] != threading.get_ident()
    assert recorder.lane.inline_runs == 0


def test_quick_messages_wait_behind_queued_ones_so_order_holds(actor: Any) -> None:
    recorder = actor()
    recorder.ref.tell("slow-blocking")  # queued: the actor's thread runs it and blocks
    assert recorder.entered.wait(5)
    recorder.ref.tell("a")  # the lane is busy: queued behind it
    recorder.ref.tell("b")  # something is queued: queued too, never run ahead of "a"
    assert [m for m, _ in recorder.seen] == ["slow-blocking"]
    recorder.gate.set()
    _wait_for(recorder, 3)
    assert [m for m, _ in recorder.seen if m != "sync"] == ["slow-blocking", "a", "b"]
    recorder.ref.tell("c")  # drained: inline again
    assert recorder.seen[-1] == ("c", threading.get_ident())


def test_a_message_the_actor_sends_itself_while_inline_is_queued(actor: Any) -> None:
    recorder = actor()
    recorder.ref.tell("tell-myself")  # inline; its tell finds the lane held and queues
    _wait_for(recorder, 2)
    got = [(m, t == threading.get_ident()) for m, t in recorder.seen if m != "sync"]
    assert got == [("tell-myself", True), ("from-myself", False)]


def test_inline_off_queues_everything_and_ask_answers(actor: Any) -> None:
    recorder = actor(inline=False)
    recorder.ref.tell("produce")
    assert recorder.ref.ask("question", timeout=5) == ("answer", "question")
    assert recorder.ref.ask("q2", block=False).get(timeout=5) == ("answer", "q2")
    assert all(t != threading.get_ident() for _, t in recorder.seen)
    assert recorder.lane.inline_runs == 0 and recorder.lane.queued == 0


def test_a_stopped_actor_refuses_messages_on_both_paths(actor: Any) -> None:
    recorder = actor()
    recorder.ref.stop()
    assert not recorder.ref.is_alive()
    with pytest.raises(pykka.ActorDeadError):
        recorder.ref.tell("produce")  # the inline path
    with pytest.raises(pykka.ActorDeadError):
        recorder.ref.tell("slow-work")
    assert recorder.lane.queued == 0  # a refused message is not counted


def test_the_lane_runs_nothing_inline_while_a_counted_message_waits() -> None:
    lane = Lane()
    inbox: list[str] = []
    lane.queue(lambda: inbox.append("queued"))  # in the inbox, the actor's thread not there yet
    assert not lane.enter_inline()  # nobody is running, but overtaking it would break the order
    lane.enter()  # the actor's thread takes it
    assert not lane.enter_inline()
    lane.leave(counted=True)
    assert lane.enter_inline()
    assert not lane.enter_inline()  # one at a time
    lane.leave_inline()
    assert (lane.inline_runs, lane.queued_runs, lane.queued) == (1, 1, 0)


def test_a_message_that_fails_to_queue_is_not_counted() -> None:
    lane = Lane()

    def refuse() -> None:
        raise pykka.ActorDeadError("gone")

    with pytest.raises(pykka.ActorDeadError):
        lane.queue(refuse)
    assert lane.queued == 0 and lane.enter_inline()
