"""Consumer against a fake broker that refuses whole requests: a non-retriable refusal of Fetch or
ListOffsets (no READ ACL, invalid request) is raised by ``poll`` on every call, a retriable one
(unavailable, throttled) is retried until it clears."""

from __future__ import annotations

import time
from typing import Iterator

import pytest

from _client_fake_broker import FakeBroker
from kbroker.errors import AuthorizationError, BrokerUnavailableError, InvalidRequestError, KBrokerError
from kbroker.transport.client.consumer import Consumer
from kbroker.transport.client.producer import Producer
from kbroker.transport.client.types import TopicPartition
from kbroker.transport.messages_client import ErrorResponse, Fetch, FetchResponse, ListOffsets

pytestmark = pytest.mark.timeout(30)

T0 = TopicPartition("t", 0)
DENIED = "client ALICE may not read topic 't'; an admin can allow it: kbroker acls add ..."


class RefusingBroker(FakeBroker):
    """``refuse[request type]``: answer it with an ``ErrorResponse`` of that error (or, for Fetch with
    ``as_fetch_code``, a ``FetchResponse`` carrying only the error code); delete the key to serve it."""

    def __init__(self, partitions: dict[str, int]) -> None:
        self.refuse: dict[type, KBrokerError] = {}
        self.as_fetch_code = False
        super().__init__(partitions)

    def _handle(self, message: object) -> object:
        error = self.refuse.get(type(message))
        if error is None:
            return super()._handle(message)
        if isinstance(message, Fetch) and self.as_fetch_code:
            return FetchResponse(error.code, 0, ())
        return ErrorResponse(error.code, error.message)


@pytest.fixture
def broker() -> Iterator[RefusingBroker]:
    fake = RefusingBroker({"t": 1})
    with Producer(fake.endpoint) as producer:
        for i in range(3):
            producer.send("t", b"v%d" % i, partition=0)
    yield fake
    fake.stop()


def _poll_until_records(consumer: Consumer, count: int, within_s: float = 10) -> list[bytes]:
    got: list[bytes] = []
    deadline = time.monotonic() + within_s
    while len(got) < count and time.monotonic() < deadline:
        got += [r.value for r in consumer.poll(100)]
    return got


def test_a_denied_fetch_is_raised_by_every_poll_not_retried_silently(broker: RefusingBroker) -> None:
    broker.refuse[Fetch] = AuthorizationError(DENIED)
    with Consumer(broker.endpoint, fetch_max_wait_ms=10, retry_backoff_ms=50) as consumer:
        consumer.assign([T0])
        for _ in range(3):  # once per call, each call: not a one-shot that then returns [] forever
            started = time.monotonic()
            with pytest.raises(AuthorizationError, match="may not read topic 't'"):
                consumer.poll(5000)
            assert time.monotonic() - started < 2.0, "raised at the refusal, not after the poll timeout"
        assert broker.requests["Fetch"] <= 4  # one fetch per poll (after the backoff), no busy loop
        assert consumer.position(T0) == 0  # nothing skipped
        del broker.refuse[Fetch]  # allowed now (an admin added the ACL): the same consumer reads on
        assert _poll_until_records(consumer, 3) == [b"v0", b"v1", b"v2"]


def test_a_fetch_response_with_a_non_retriable_error_code_is_raised(broker: RefusingBroker) -> None:
    broker.refuse[Fetch] = InvalidRequestError()
    broker.as_fetch_code = True
    with Consumer(broker.endpoint, fetch_max_wait_ms=10) as consumer:
        consumer.assign([T0])
        with pytest.raises(InvalidRequestError):
            consumer.poll(5000)


@pytest.mark.parametrize("as_fetch_code", [False, True])
def test_a_retriable_fetch_refusal_is_retried_until_it_clears(broker: RefusingBroker, as_fetch_code: bool) -> None:
    broker.refuse[Fetch] = BrokerUnavailableError("worker is starting")
    broker.as_fetch_code = as_fetch_code
    with Consumer(broker.endpoint, fetch_max_wait_ms=10, retry_backoff_ms=20) as consumer:
        consumer.assign([T0])
        deadline = time.monotonic() + 10
        while broker.requests["Fetch"] < 3 and time.monotonic() < deadline:
            assert consumer.poll(100) == []
        assert broker.requests["Fetch"] >= 3
        del broker.refuse[Fetch]
        assert _poll_until_records(consumer, 3) == [b"v0", b"v1", b"v2"]


def test_a_denied_list_offsets_is_raised_by_poll_and_position(broker: RefusingBroker) -> None:
    broker.refuse[ListOffsets] = AuthorizationError("client ALICE may not describe topic 't'")
    with Consumer(broker.endpoint, fetch_max_wait_ms=10, request_timeout_ms=5000) as consumer:
        consumer.assign([T0])
        started = time.monotonic()
        with pytest.raises(AuthorizationError, match="describe topic 't'"):
            consumer.poll(5000)
        with pytest.raises(AuthorizationError, match="describe topic 't'"):
            consumer.position(T0)
        consumer.seek_to_beginning()
        with pytest.raises(AuthorizationError, match="describe topic 't'"):
            consumer.poll(5000)
        assert time.monotonic() - started < 3.0
        assert broker.requests["Fetch"] == 0
