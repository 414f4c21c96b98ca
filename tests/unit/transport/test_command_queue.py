"""Tests for kbroker.transport.command_queue: hand-over to the I/O thread without lost wake-ups."""

from __future__ import annotations

import os
import select
import threading

from kbroker.transport.command_queue import CommandQueue


def readable(queue: CommandQueue, timeout: float = 0.0) -> bool:
    return bool(select.select([queue.fileno()], [], [], timeout)[0])


def test_submit_wakes_once_per_drain() -> None:
    queue = CommandQueue()
    try:
        assert not readable(queue)
        for i in range(100):
            assert queue.submit(i)
        assert readable(queue)
        assert os.read(queue.fileno(), 100) == b"\0"  # one wake-up byte for the burst
        queue.clear_wakeup()
        assert [queue.pop() for _ in range(100)] == list(range(100)) and not queue
        queue.submit("next")
        assert readable(queue)
    finally:
        queue.close()


def test_owner_thread_does_not_wake_itself() -> None:
    queue = CommandQueue()
    try:
        queue.set_owner(threading.get_ident())
        queue.submit("from the I/O thread")
        assert not readable(queue) and queue
    finally:
        queue.close()


def test_close_returns_leftovers_and_refuses_more() -> None:
    queue = CommandQueue()
    queue.submit("a")
    queue.submit("b")
    assert queue.close() == ["a", "b"]
    assert queue.closed
    assert not queue.submit("c")
    assert queue.close() == []


def test_no_command_is_lost_between_threads() -> None:
    queue = CommandQueue()
    received: list[int] = []
    producers = 4
    per_producer = 2000
    stop = threading.Event()
    stalls: list[int] = []  # a lost wake-up shows as a poll that times out with commands waiting

    def consume() -> None:
        queue.set_owner(threading.get_ident())
        while len(received) < producers * per_producer and not stop.is_set():
            if readable(queue, timeout=2.0):
                queue.clear_wakeup()
            elif queue:
                stalls.append(len(queue))
            while queue:
                received.append(queue.pop())

    consumer = threading.Thread(target=consume)
    consumer.start()
    threads = [
        threading.Thread(target=lambda base=p * per_producer: [queue.submit(base + i) for i in range(per_producer)])
        for p in range(producers)
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        consumer.join(20)
    finally:
        stop.set()
        consumer.join(5)
        queue.close()
    assert sorted(received) == list(range(producers * per_producer))
    assert stalls == []
