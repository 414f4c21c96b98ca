"""Wakeup, ShutdownSignals and Ticker: the plumbing the supervisor's and workers' main threads use."""

from __future__ import annotations

import multiprocessing.connection
import os
import signal
import threading

import pykka

from kbroker.actors.signals import ShutdownSignals, Wakeup, ignore_sigint_across_exec
from kbroker.actors.ticker import Ticker


def test_wakeup_makes_wait_return_and_drains() -> None:
    wakeup = Wakeup()
    try:
        assert multiprocessing.connection.wait([wakeup], 0) == []
        threading.Thread(target=wakeup.wake).start()
        assert multiprocessing.connection.wait([wakeup], 10) == [wakeup]
        for _ in range(100_000):  # a full pipe is still just a pending wake-up
            wakeup.wake()
        wakeup.drain()
        assert multiprocessing.connection.wait([wakeup], 0) == []
    finally:
        wakeup.close()
    wakeup.wake()  # after close: harmless


def test_a_handled_signal_is_recorded_and_wakes() -> None:
    wakeup = Wakeup()
    signals = ShutdownSignals(wakeup)
    previous = signal.getsignal(signal.SIGUSR1)
    signals.install(handled=(signal.SIGUSR1,))
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert multiprocessing.connection.wait([wakeup], 10) == [wakeup]
        assert signals.requested and signals.reason == "SIGUSR1" and signals.count == 1 and signals.by_signal
        signals.request("later")  # the first reason stays
        assert signals.reason == "SIGUSR1" and signals.count == 2
    finally:
        signals.restore()
        wakeup.close()
    assert signal.getsignal(signal.SIGUSR1) == previous


def test_a_signal_caught_by_another_thread_still_wakes_the_waiting_main_thread() -> None:
    """The kernel may hand a process-directed signal to any thread that does not block it; Python
    runs the handler only when the main thread next runs bytecode, so a main thread parked in
    wait() must be woken by the C-level handler itself (signal.set_wakeup_fd)."""
    wakeup = Wakeup()
    signals = ShutdownSignals(wakeup)
    previous = signal.getsignal(signal.SIGUSR1)
    signals.install(handled=(signal.SIGUSR1,))
    try:
        # the timer's own thread takes the signal, meant to land while the main thread is parked in wait()
        other = threading.Timer(0.3, lambda: signal.pthread_kill(threading.get_ident(), signal.SIGUSR1))
        other.start()
        assert multiprocessing.connection.wait([wakeup], 3) == [wakeup]  # without the wake-up fd: [] after 3 s
        other.join()
        wakeup.drain()
        assert signals.reason == "SIGUSR1"  # the handler ran once the main thread was back in Python
    finally:
        signals.restore()
        wakeup.close()
    assert signal.getsignal(signal.SIGUSR1) == previous
    assert signal.set_wakeup_fd(-1) == -1  # restore() gave the wake-up fd back


def test_request_from_another_thread() -> None:
    wakeup = Wakeup()
    signals = ShutdownSignals(wakeup)
    try:
        threading.Thread(target=signals.request, args=("controller lost",)).start()
        assert multiprocessing.connection.wait([wakeup], 10) == [wakeup]
        assert signals.reason == "controller lost" and not signals.by_signal
    finally:
        wakeup.close()


def test_sigint_is_ignored_only_inside_the_block() -> None:
    before = signal.getsignal(signal.SIGINT)
    with ignore_sigint_across_exec():
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    assert signal.getsignal(signal.SIGINT) == before


class _Counter(pykka.ThreadingActor):
    def __init__(self, enough: int, reached: threading.Event) -> None:
        super().__init__()
        self.count = 0
        self._enough = enough
        self._reached = reached

    def on_receive(self, message: object) -> None:
        self.count += 1
        if self.count >= self._enough:
            self._reached.set()


def test_ticker_tells_periodically_and_stops() -> None:
    reached = threading.Event()
    ref = _Counter.start(3, reached)
    ticker = Ticker(ref, "tick", 0.01).start()
    try:
        assert reached.wait(10)
    finally:
        ticker.stop()
        ref.stop()
    ticker.stop()  # idempotent


def test_ticker_ends_when_its_actor_is_gone() -> None:
    ref = _Counter.start(1, threading.Event())
    ref.stop()
    ticker = Ticker(ref, "tick", 0.01).start()
    ticker._thread.join(10)
    assert not ticker._thread.is_alive()
