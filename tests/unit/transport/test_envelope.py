"""Tests for kbroker.transport.envelope: reply once, release once, detached envelopes."""

from __future__ import annotations

import pytest

from kbroker.errors import NotLeaderError
from kbroker.transport.envelope import Address, Envelope
from kbroker.transport.messages import DescribeCluster, ErrorResponse, Message, UpdateMetadataResponse


class RecordingSink:
    def __init__(self) -> None:
        self.replies: list[Message] = []
        self.released: list[Envelope] = []

    def send_reply(self, envelope: Envelope, message: Message) -> None:
        self.replies.append(message)

    def release(self, envelope: Envelope) -> None:
        self.released.append(envelope)


def make(payload_bytes: int = 10) -> tuple[Envelope, RecordingSink]:
    sink = RecordingSink()
    return Envelope(DescribeCluster(), 5, "controller", (b"x" * payload_bytes,), payload_bytes, sink), sink


def test_reply_sends_once_and_releases() -> None:
    envelope, sink = make()
    envelope.reply(UpdateMetadataResponse(0))
    assert sink.replies == [UpdateMetadataResponse(0)]
    assert sink.released == [envelope]
    assert envelope.replied and envelope.released
    with pytest.raises(RuntimeError, match="already replied"):
        envelope.reply(UpdateMetadataResponse(0))


def test_done_releases_once_and_reply_may_follow() -> None:
    envelope, sink = make()
    envelope.done()
    envelope.done()
    assert sink.released == [envelope]
    envelope.reply(UpdateMetadataResponse(0))
    assert sink.released == [envelope] and len(sink.replies) == 1


def test_envelope_without_payload_never_asks_for_release() -> None:
    envelope, sink = make(payload_bytes=0)
    envelope.reply(UpdateMetadataResponse(0))
    assert sink.released == []


def test_reply_error_carries_the_stable_code() -> None:
    envelope, sink = make()
    envelope.reply_error(NotLeaderError("leader is worker 2"))
    assert sink.replies == [ErrorResponse(6, "leader is worker 2")]


def test_detached_envelope_calls_back() -> None:
    got: list[Message] = []
    envelope = Envelope.detached(DescribeCluster(), got.append)
    envelope.reply(UpdateMetadataResponse(0))
    envelope.done()
    assert got == [UpdateMetadataResponse(0)]
    Envelope.detached(DescribeCluster()).reply(UpdateMetadataResponse(0))  # no callback: dropped


def test_address_is_a_tuple() -> None:
    endpoint, actor = Address("tcp://127.0.0.1:7092", "controller")
    assert (endpoint, actor) == ("tcp://127.0.0.1:7092", "controller")
