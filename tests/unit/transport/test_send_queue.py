"""Tests for kbroker.transport.send_queue: FIFO order, byte bound, deadlines (the send is faked)."""

from __future__ import annotations

from concurrent.futures import Future

from hypothesis import given
from hypothesis import strategies as st

from kbroker.transport.send_queue import QueuedMessage, SendQueue, always, frames_size


def item(tag: str, nbytes: int = 10, deadline: float = 100.0, correlation_id: int = 0) -> QueuedMessage:
    return QueuedMessage([tag.encode()], deadline, nbytes, correlation_id, Future() if correlation_id else None)


class FakeSocket:
    def __init__(self, room: int) -> None:
        self.room = room
        self.sent: list[bytes] = []

    def send(self, frames: list[bytes]) -> bool:
        if self.room == 0:
            return False
        self.room -= 1
        self.sent.append(frames[0])
        return True


def test_flush_sends_in_order_until_the_socket_is_full() -> None:
    queue = SendQueue(limit=1000)
    for tag in "abcd":
        assert queue.push(item(tag))
    sock = FakeSocket(room=2)
    assert queue.flush(sock.send, now=0.0, wanted=always) == 0
    assert sock.sent == [b"a", b"b"] and len(queue) == 2 and queue.nbytes == 20
    sock.room = 10
    queue.flush(sock.send, now=0.0, wanted=always)
    assert sock.sent == [b"a", b"b", b"c", b"d"] and not queue and queue.nbytes == 0


def test_byte_limit_refuses_but_an_empty_queue_takes_anything() -> None:
    queue = SendQueue(limit=25)
    assert queue.push(item("huge", nbytes=1000))
    assert not queue.push(item("more", nbytes=1))
    queue.clear()
    assert queue.push(item("a", 10)) and queue.push(item("b", 10))
    assert not queue.push(item("c", 10))


def test_expired_and_unwanted_items_are_dropped_unsent() -> None:
    queue = SendQueue(limit=1000)
    queue.push(item("old", deadline=1.0))
    queue.push(item("abandoned-ask", correlation_id=7))
    queue.push(item("fresh", deadline=50.0))
    sock = FakeSocket(room=10)
    dropped = queue.flush(sock.send, now=5.0, wanted=lambda it: it.correlation_id != 7)
    assert dropped == 2 and sock.sent == [b"fresh"]


def test_expire_drops_from_the_head_only() -> None:
    queue = SendQueue(limit=1000)
    queue.push(item("a", deadline=1.0))
    queue.push(item("b", deadline=9.0))
    queue.push(item("c", deadline=2.0))
    assert queue.head_deadline() == 1.0
    assert queue.expire(now=5.0) == 1
    assert queue.head_deadline() == 9.0 and len(queue) == 2


@given(st.lists(st.tuples(st.integers(1, 50), st.booleans()), max_size=40), st.integers(1, 200))
def test_nbytes_is_the_sum_held(ops: list[tuple[int, bool]], limit: int) -> None:
    queue = SendQueue(limit)
    sock = FakeSocket(room=0)
    for nbytes, flush in ops:
        queue.push(item("x", nbytes))
        if flush:
            sock.room = 1
            queue.flush(sock.send, 0.0, always)
        assert queue.nbytes == sum(i.nbytes for i in queue._items)
        assert queue.nbytes <= max(limit, max((n for n, _ in ops), default=0))


def test_frames_size_counts_bytes_of_any_buffer() -> None:
    import array

    assert frames_size([b"abc", memoryview(array.array("i", [1, 2])), bytearray(5)]) == 3 + 8 + 5
