"""Entry point of the spawned process in test_io_thread: an I/O thread with an echo actor.

Protocol over the multiprocessing pipe: the child sends its endpoint; the parent sends its own
endpoint; the child asks the parent's "pong" actor once and sends back the reply's repr; then it
waits for "stop" (or gives up after a deadline so no orphan survives a failed test).
"""

from __future__ import annotations

from multiprocessing.connection import Connection

from kbroker.transport.envelope import Address, Envelope
from kbroker.transport.io_thread import IOThread
from kbroker.transport.messages import ReplicaAppend, ReplicaAppendAck

CHILD_DEADLINE_S = 60


def echo(envelope: Envelope) -> None:
    message = envelope.message
    assert isinstance(message, ReplicaAppend)
    size = sum(len(batch) for batch in message.batches)
    envelope.reply(ReplicaAppendAck(message.topic, message.partition, 7, message.leader_epoch, 0, message.base_offset + size))


def serve(pipe: Connection) -> None:
    io = IOThread(name="peer-io")
    try:
        io.register("echo", echo)
        pipe.send(io.start())
        if not pipe.poll(CHILD_DEADLINE_S):
            return
        parent_endpoint = pipe.recv()
        reply = io.ask(Address(parent_endpoint, "pong"), ReplicaAppend("from-child", 1, 7, 2, 0, (b"hi",), 0, 0), 10)
        try:
            pipe.send(repr(reply.result(15)))
        except Exception as exc:  # reported to the parent, which fails the test
            pipe.send(f"error: {exc!r}")
        pipe.poll(CHILD_DEADLINE_S)
    finally:
        io.stop()
