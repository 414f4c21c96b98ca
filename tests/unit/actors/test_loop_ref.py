"""LoopRef: an actor run on an IOThread's loop (the worker's Gateway)."""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest

from kbroker.actors.loop_ref import LoopRef
from kbroker.transport.io_thread import IOThread

pytestmark = pytest.mark.timeout(30)


class _Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[Any, int]] = []
        self.stopped = threading.Event()
        self.done = threading.Event()

    def on_receive(self, message: Any) -> None:
        if message == "boom":
            raise RuntimeError("boom")
        self.seen.append((message, threading.get_ident()))
        if message == "last":
            self.done.set()

    def on_stop(self) -> None:
        self.stopped.set()


def _io_thread_ident(io: IOThread) -> int:
    got: list[int] = []
    ready = threading.Event()
    io.call_soon(lambda: (got.append(threading.get_ident()), ready.set()))
    assert ready.wait(5), "call_soon never ran"
    return got[0]


def test_messages_from_any_thread_run_in_order_on_the_io_thread() -> None:
    with IOThread(name="test-loop-ref") as io:
        target = _Recorder()
        ref = LoopRef(target, io.call_soon)
        senders = [threading.Thread(target=lambda i=i: ref.tell(("from", i))) for i in range(4)]
        for t in senders:
            t.start()
        for t in senders:
            t.join()
        for i in range(100):
            ref.tell(i)
        ref.tell("last")
        assert target.done.wait(5), "the messages were not delivered"
        io_ident = _io_thread_ident(io)
        assert {ident for _, ident in target.seen} == {io_ident}
        assert [m for m, _ in target.seen if isinstance(m, int)] == list(range(100))
        assert sorted(m[1] for m, _ in target.seen if isinstance(m, tuple)) == [0, 1, 2, 3]


def test_an_exception_in_the_target_is_logged_and_the_loop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    with IOThread(name="test-loop-ref") as io:
        target = _Recorder()
        ref = LoopRef(target, io.call_soon)
        ref.tell("boom")
        ref.tell("last")
        assert target.done.wait(5), "the loop stopped after the failure"
        assert any("boom" in (r.exc_text or "") or "failed on the I/O thread" in r.getMessage() for r in caplog.records)


def test_a_stopped_ref_refuses_like_a_dead_actor() -> None:
    target = _Recorder()
    ref = LoopRef(target)  # inline: runs in the caller's thread
    ref.tell("last")
    assert target.done.is_set()
    ref.stop()
    assert target.stopped.is_set() and not ref.is_alive()
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("late")


def test_a_stopped_io_thread_refuses_the_tell() -> None:
    io = IOThread(name="test-loop-ref")
    io.start()
    io.stop()
    ref = LoopRef(_Recorder(), io.call_soon)
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("late")
