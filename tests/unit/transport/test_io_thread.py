"""Tests for kbroker.transport.io_thread with real sockets on 127.0.0.1 ephemeral ports."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import threading
import time
from concurrent.futures import Future
from typing import Callable

import pykka
import pytest
import zmq

from _transport_helpers import Inbox, wait_until
from kbroker.errors import BrokerUnavailableError, InvalidRequestError, NotLeaderError, RequestTimedOutError, UnknownError
from kbroker.transport.codec import decode, encode
from kbroker.transport.envelope import Address, Envelope
from kbroker.transport.io_thread import IOThread
from kbroker.transport.messages import ErrorResponse, Message, ReplicaAppend, ReplicaAppendAck

MakeIO = Callable[..., IOThread]


def append(*batches: bytes, base_offset: int = 0, topic: str = "t") -> ReplicaAppend:
    return ReplicaAppend(topic, 0, 1, 5, base_offset, batches, 0, 0)


def ack_for(message: Message) -> ReplicaAppendAck:
    assert isinstance(message, ReplicaAppend)
    return ReplicaAppendAck(message.topic, message.partition, 2, message.leader_epoch, 0, message.base_offset + len(message.batches))


def echo(envelope: Envelope) -> None:
    envelope.reply(ack_for(envelope.message))


def swallow(envelope: Envelope) -> None:
    envelope.done()


@pytest.fixture
def pair(make_io: MakeIO) -> tuple[IOThread, IOThread]:
    return make_io(), make_io()


# --- ask / tell -----------------------------------------------------------------------------


def test_ask_gets_the_reply(pair: tuple[IOThread, IOThread]) -> None:
    a, b = pair
    b.register("echo", echo)
    reply = a.ask(b.address("echo"), append(b"x", b"y", base_offset=10), timeout=5).result(10)
    assert reply == ReplicaAppendAck("t", 0, 2, 5, 0, 12)


def test_tell_delivers_with_to_and_drops_the_reply(pair: tuple[IOThread, IOThread]) -> None:
    a, b = pair
    inbox = Inbox(on_message=echo)
    b.register("follower", inbox)
    a.tell(Address(b.endpoint, "follower"), append(b"z"))
    [envelope] = inbox.wait_for(1)
    assert envelope.to == "follower" and envelope.message == append(b"z")
    wait_until(lambda: a.stats().stale_replies == 1, what="the unasked-for reply to arrive and be dropped")


def test_many_asks_in_flight_resolve_in_any_order(pair: tuple[IOThread, IOThread]) -> None:
    a, b = pair
    b.register("echo", echo)
    futures = [a.ask(b.address("echo"), append(base_offset=i), timeout=10) for i in range(500)]
    assert [f.result(20).log_end_offset for f in futures] == list(range(500))


def test_tells_from_one_process_arrive_in_order(pair: tuple[IOThread, IOThread]) -> None:
    a, b = pair
    inbox = Inbox(on_message=swallow)
    b.register("log", inbox)
    for i in range(1000):
        a.tell(b.address("log"), append(b"p" * (i % 7), base_offset=i))
    envelopes = inbox.wait_for(1000, timeout=20)
    assert [e.message.base_offset for e in envelopes] == list(range(1000))


def test_process_can_address_itself(make_io: MakeIO) -> None:
    io = make_io()
    io.register("echo", echo)
    assert io.ask(io.address("echo"), append(b"a"), timeout=5).result(10).log_end_offset == 1


def test_future_callbacks_run_when_the_reply_arrives(pair: tuple[IOThread, IOThread]) -> None:
    a, b = pair
    b.register("echo", echo)
    done = threading.Event()
    seen: list[Message] = []
    future = a.ask(b.address("echo"), append(), timeout=5)
    future.add_done_callback(lambda f: (seen.append(f.result()), done.set()))
    assert done.wait(10)
    assert seen == [ack_for(append())]


# --- payloads -------------------------------------------------------------------------------


def test_payload_frames_arrive_intact_and_uncopied(pair: tuple[IOThread, IOThread]) -> None:
    a, b = pair
    inbox = Inbox(on_message=echo)
    b.register("follower", inbox)
    batches = (os.urandom(1 << 20), b"", os.urandom(100), os.urandom(70_000))
    a.ask(b.address("follower"), append(*batches), timeout=10).result(20)
    [envelope] = inbox.wait_for(1)
    received = envelope.message.batches
    assert [bytes(r) for r in received] == list(batches)
    assert all(isinstance(frame, zmq.Frame) for frame in envelope.frames)
    assert all(view.obj is frame for view, frame in zip(received, envelope.frames))  # views, not copies
    assert envelope.payload_bytes == sum(map(len, batches))


def test_reply_payloads_reach_the_asker(pair: tuple[IOThread, IOThread]) -> None:
    from kbroker.transport.messages import ReplicaFetch, ReplicaFetchResponse

    a, b = pair
    data = os.urandom(300_000)
    b.register("leader", lambda env: env.reply(ReplicaFetchResponse("t", 0, 0, 5, 10, 0, 10, data)))
    reply = a.ask(b.address("leader"), ReplicaFetch("t", 0, 2, 5, 0, 1 << 20, 0), timeout=5).result(10)
    assert bytes(reply.records) == data


# --- failures -------------------------------------------------------------------------------


def test_ask_times_out_against_a_silent_actor(pair: tuple[IOThread, IOThread]) -> None:
    a, b = pair
    b.register("silent", swallow)
    started = time.monotonic()
    with pytest.raises(RequestTimedOutError, match="no reply to ReplicaAppend from 'silent'"):
        a.ask(b.address("silent"), append(), timeout=0.2).result(10)
    assert time.monotonic() - started < 5
    assert a.stats().pending_asks == 0


def test_ask_times_out_against_a_dead_endpoint(make_io: MakeIO) -> None:
    probe = zmq.Context.instance().socket(zmq.ROUTER)
    port = probe.bind_to_random_port("tcp://127.0.0.1")
    probe.close(linger=0)  # nothing listens there any more
    io = make_io()
    with pytest.raises(RequestTimedOutError):
        io.ask(Address(f"tcp://127.0.0.1:{port}", "anyone"), append(b"x"), timeout=0.3).result(10)
    wait_until(lambda: io.stats().queued_sends == 0, what="the queued message to expire")


def test_ask_times_out_against_a_peer_that_reads_but_never_answers(make_io: MakeIO) -> None:
    ctx = zmq.Context.instance()
    mute = ctx.socket(zmq.ROUTER)
    try:
        port = mute.bind_to_random_port("tcp://127.0.0.1")
        io = make_io()
        with pytest.raises(RequestTimedOutError):
            io.ask(Address(f"tcp://127.0.0.1:{port}", "x"), append(), timeout=0.3).result(10)
        assert mute.poll(1000)  # the request did arrive
    finally:
        mute.close(linger=0)


def test_unknown_actor_gets_an_error_response_retriable_for_one_it_expects(pair: tuple[IOThread, IOThread]) -> None:
    a, b = pair
    with pytest.raises(InvalidRequestError, match="no actor named 'nobody'"):
        a.ask(Address(b.endpoint, "nobody"), append(), timeout=5).result(10)
    b.expect("later")  # a process starting or stopping has not (or no longer) registered its actors
    with pytest.raises(BrokerUnavailableError, match="'later' .* not running"):
        a.ask(Address(b.endpoint, "later"), append(), timeout=5).result(10)
    b.register("gone", Inbox(on_message=echo))
    b.unregister("gone")
    with pytest.raises(BrokerUnavailableError, match="'gone' .* not running"):
        a.ask(Address(b.endpoint, "gone"), append(), timeout=5).result(10)
    with pytest.raises(BrokerUnavailableError, match="no default actor"):
        a.ask(Address(b.endpoint, None), append(), timeout=5).result(10)  # type: ignore[arg-type]
    assert b.stats().rejected == 4


def test_default_actor_gets_messages_without_to(pair: tuple[IOThread, IOThread]) -> None:
    a, b = pair
    inbox = Inbox(on_message=echo)
    b.register("gateway", inbox, default=True)
    a.ask((b.endpoint, None), append(), timeout=5).result(10)
    assert inbox.wait_for(1)[0].to is None
    b.unregister("gateway")
    with pytest.raises(BrokerUnavailableError, match="no default actor"):
        a.ask((b.endpoint, None), append(), timeout=5).result(10)


def test_actor_refuses_types_it_does_not_accept(pair: tuple[IOThread, IOThread]) -> None:
    from kbroker.transport.messages import DescribeCluster

    a, b = pair
    inbox = Inbox(on_message=echo)
    b.register("gateway", inbox, default=True, accepts=[ReplicaAppend])
    with pytest.raises(InvalidRequestError, match="'gateway' .* does not serve DescribeCluster"):
        a.ask((b.endpoint, None), DescribeCluster(), timeout=5).result(10)
    assert a.ask((b.endpoint, None), append(), timeout=5).result(10) == ack_for(append())
    assert len(inbox.envelopes) == 1


def test_error_reply_raises_its_error_class(pair: tuple[IOThread, IOThread]) -> None:
    a, b = pair
    b.register("replica", lambda env: env.reply_error(NotLeaderError("worker 3 leads t-0")))
    with pytest.raises(NotLeaderError, match="worker 3 leads t-0") as info:
        a.ask(b.address("replica"), append(), timeout=5).result(10)
    assert info.value.retriable


def test_failing_handler_answers_unknown_error(pair: tuple[IOThread, IOThread]) -> None:
    a, b = pair

    def broken(envelope: Envelope) -> None:
        raise ZeroDivisionError("oops")

    b.register("broken", broken)
    with pytest.raises(UnknownError, match="ZeroDivisionError: oops"):
        a.ask(b.address("broken"), append(b"payload"), timeout=5).result(10)
    wait_until(lambda: b.stats().inflight_bytes == 0, what="the payload to be released")


def test_malformed_requests_get_error_responses_and_serving_goes_on(pair: tuple[IOThread, IOThread]) -> None:
    a, b = pair
    b.register("echo", echo)
    ctx = zmq.Context.instance()
    client = ctx.socket(zmq.DEALER)
    client.setsockopt(zmq.LINGER, 0)
    try:
        client.connect(b.endpoint)
        bad_field = encode(append(b"x"), 77, "echo")
        header = bad_field[0].replace(b"\xa9partition\x00", b"\xa9partition\xff")  # partition -1
        for frames in ([b"garbage"], [header, b"x"], [b"", b""]):
            client.send_multipart(frames)
            assert client.poll(5000)
            received = client.recv_multipart()
            if frames[0] == b"":  # a REQ-style delimiter comes back in front of the reply
                assert received[0] == b""
                received = received[1:]
            reply = decode(received)
            assert isinstance(reply.message, ErrorResponse) and reply.message.code == InvalidRequestError.code
            if frames[0] is header:
                assert reply.correlation_id == 77
                assert "ReplicaAppend.partition: must be between 0" in reply.message.message
        assert a.ask(b.address("echo"), append(), timeout=5).result(10) == ack_for(append())
    finally:
        client.close(linger=0)


def test_req_socket_clients_are_answered(make_io: MakeIO) -> None:
    io = make_io()
    io.register("echo", echo)
    req = zmq.Context.instance().socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    try:
        req.connect(io.endpoint)
        req.send_multipart(encode(append(b"r"), 3, "echo"))
        assert req.poll(5000)
        reply = decode(req.recv_multipart())
        assert reply.correlation_id == 3 and reply.message == ack_for(append(b"r"))
    finally:
        req.close(linger=0)


# --- pykka actors ---------------------------------------------------------------------------


class EchoActor(pykka.ThreadingActor):
    def on_receive(self, envelope: Envelope) -> None:
        envelope.reply(ack_for(envelope.message))


def test_pykka_actor_receives_envelopes_by_tell(pair: tuple[IOThread, IOThread]) -> None:
    a, b = pair
    ref = EchoActor.start()
    try:
        b.register("replica:t-0", ref)
        assert a.ask(b.address("replica:t-0"), append(b"q"), timeout=5).result(10) == ack_for(append(b"q"))
    finally:
        ref.stop()
    with pytest.raises(BrokerUnavailableError, match="has stopped"):
        a.ask(b.address("replica:t-0"), append(b"q"), timeout=5).result(10)
    wait_until(lambda: b.stats().inflight_bytes == 0, what="the payload to be released")


# --- backpressure ---------------------------------------------------------------------------


def test_reading_stops_while_delivered_bytes_are_not_released(make_io: MakeIO) -> None:
    bound, size, count = 100_000, 30_000, 40
    sender = make_io(hwm=4)
    receiver = make_io(max_inflight_bytes=bound, hwm=4)
    inbox = Inbox()
    receiver.register("slow", inbox)
    for i in range(count):
        sender.tell(receiver.address("slow"), append(bytes(size), base_offset=i))

    wait_until(lambda: receiver.stats().reading_paused, what="the receiver to stop reading")
    held = inbox.wait_for(4)
    assert len(held) == 4  # 0, 30k, 60k, 90k < bound: read; 120k >= bound: stop
    assert receiver.stats().inflight_bytes == 4 * size

    released = 0
    while released < count:
        batch = inbox.wait_for(released + 1, timeout=10)[released:]
        stats = receiver.stats()
        assert stats.inflight_bytes <= bound + size
        for envelope in batch:
            envelope.done()
        released += len(batch)
    wait_until(lambda: receiver.stats().inflight_bytes == 0, what="every release to be counted")
    stats = receiver.stats()
    assert stats.peak_inflight_bytes <= bound + size
    assert not stats.reading_paused and stats.delivered == count
    assert [e.message.base_offset for e in inbox.envelopes] == list(range(count))


def test_reply_releases_the_payload(pair: tuple[IOThread, IOThread]) -> None:
    a, b = pair
    b.register("echo", echo)
    a.ask(b.address("echo"), append(bytes(5000)), timeout=5).result(10)
    wait_until(lambda: b.stats().inflight_bytes == 0, what="the reply to release the payload")
    assert b.stats().peak_inflight_bytes == 5000


# --- lifecycle ------------------------------------------------------------------------------


def test_stop_fails_pending_asks_and_leaves_no_thread(make_io: MakeIO) -> None:
    before = set(threading.enumerate())
    a = IOThread(name="test-io-stop-a")
    b = IOThread(name="test-io-stop-b")
    a.start()
    b.start()
    try:
        b.register("silent", swallow)
        future = a.ask(b.address("silent"), append(b"x" * 100_000), timeout=60)
        wait_until(lambda: b.stats().delivered == 1, what="delivery")
    finally:
        a.stop()
        b.stop()
    with pytest.raises(BrokerUnavailableError, match="stopped before a reply"):
        future.result(1)
    after = [t for t in threading.enumerate() if t not in before and type(t).__name__ != "GarbageCollectorThread"]
    assert after == []  # (pyzmq's zero-copy garbage collector thread is process-wide, on purpose)
    late: Future[Message] = a.ask(b.address("silent"), append(), timeout=1)
    with pytest.raises(BrokerUnavailableError, match="is stopped"):
        late.result(1)
    a.tell(b.address("silent"), append())  # after stop: dropped, no error
    a.stop()  # idempotent


def test_context_manager_and_bind_errors() -> None:
    with IOThread(name="test-io-cm") as io:
        endpoint = io.endpoint
        busy = IOThread(endpoint, name="test-io-busy")
        with pytest.raises(zmq.ZMQError):
            busy.start()
        busy.stop()
    assert not any(t.name in ("test-io-cm", "test-io-busy") for t in threading.enumerate())
    with pytest.raises(RuntimeError, match="not started"):
        IOThread().endpoint


def test_advertised_host_replaces_the_wildcard(make_io: MakeIO) -> None:
    io = make_io(bind="tcp://0.0.0.0:*", advertised_host="127.0.0.1")
    assert io.endpoint.startswith("tcp://127.0.0.1:")
    io.register("echo", echo)
    other = make_io()
    assert other.ask(io.address("echo"), append(), timeout=5).result(10) == ack_for(append())


def test_forget_closes_the_peer_socket(pair: tuple[IOThread, IOThread]) -> None:
    a, b = pair
    b.register("echo", echo)
    a.ask(b.address("echo"), append(), timeout=5).result(10)
    assert a.stats().peers == 1
    a.forget(b.endpoint)
    wait_until(lambda: a.stats().peers == 0, what="the peer socket to close")
    assert a.ask(b.address("echo"), append(), timeout=5).result(10) == ack_for(append())  # reconnects


def test_io_thread_cannot_cross_processes(make_io: MakeIO) -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(make_io())


def test_register_validates_names(make_io: MakeIO) -> None:
    io = make_io()
    with pytest.raises(ValueError, match="actor names"):
        io.register("", echo)
    with pytest.raises(ValueError, match="actor names"):
        io.register("x" * 256, echo)


# --- across a real spawned process ----------------------------------------------------------


def test_tell_and_ask_across_a_spawned_process(make_io: MakeIO) -> None:
    import _transport_peer

    ctx = multiprocessing.get_context("spawn")
    parent_end, child_end = ctx.Pipe()
    child = ctx.Process(target=_transport_peer.serve, args=(child_end,), daemon=True)
    child.start()
    try:
        assert parent_end.poll(60), "the child did not report its endpoint"
        child_endpoint = parent_end.recv()
        io = make_io()
        pongs = Inbox(on_message=echo)
        io.register("pong", pongs)
        batch = os.urandom(200_000)
        reply = io.ask(Address(child_endpoint, "echo"), append(batch, base_offset=100), timeout=10).result(20)
        assert reply == ReplicaAppendAck("t", 0, 7, 5, 0, 100 + len(batch))
        parent_end.send(io.endpoint)
        assert parent_end.poll(30)
        assert parent_end.recv() == repr(ReplicaAppendAck("from-child", 1, 2, 2, 0, 1))
        assert pongs.wait_for(1)[0].message.topic == "from-child"
    finally:
        parent_end.send("stop")
        child.join(20)
        if child.is_alive():
            child.kill()
            child.join()
    assert child.exitcode == 0
