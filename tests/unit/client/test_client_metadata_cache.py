"""MetadataCache: leaders from MetadataResponse, epochs never backwards, staleness and refresh timing."""

from __future__ import annotations

import pytest

from kbroker.errors import (
    CorruptRecordError,
    LeaderNotAvailableError,
    NotLeaderError,
    RequestTimedOutError,
    UnknownTopicOrPartitionError,
)
from kbroker.transport.client.metadata_cache import MetadataCache
from kbroker.transport.messages_client import (
    Metadata,
    MetadataResponse,
    PartitionMetadata,
    TopicMetadata,
    WorkerEndpoint,
)

WORKERS = (WorkerEndpoint(0, "tcp://w0:1"), WorkerEndpoint(1, "tcp://w1:1"), WorkerEndpoint(2, "tcp://w2:1"))


def part(p: int, leader: int, epoch: int = 1, error: int = 0) -> PartitionMetadata:
    return PartitionMetadata(p, error, leader, epoch, (0, 1, 2), (0, 1, 2) if leader >= 0 else ())


def response(*topics: TopicMetadata, workers: tuple = WORKERS) -> MetadataResponse:
    return MetadataResponse(workers=workers, controller_id=0, topics=topics)


def topic(name: str, *parts: PartitionMetadata, error: int = 0) -> TopicMetadata:
    return TopicMetadata(name, error, None if not error else "no such topic", tuple(parts))


def fresh(now: float = 0.0) -> MetadataCache:
    cache = MetadataCache(max_age_s=300, refresh_backoff_s=0.1)
    cache.update(response(topic("t", part(0, 0), part(1, 1), part(2, 2))), now)
    return cache


def test_leaders_partitions_and_available_partitions_from_a_response() -> None:
    cache = fresh()
    assert cache.leader_endpoint("t", 1) == "tcp://w1:1"
    assert cache.partition_count("t") == 3 and cache.topics() == ["t"]
    view = cache.topic("t")
    assert view is not None and view.num_partitions == 3 and view.available == (0, 1, 2)
    assert cache.leader("t", 2).replicas == (0, 1, 2)  # type: ignore[union-attr]
    assert cache.leader_epoch("t", 0) == 1 and cache.leader_epoch("t", 9) == -1
    assert cache.leader_endpoint("t", 3) is None and cache.leader_endpoint("nope", 0) is None
    assert cache.endpoint_of(2) == "tcp://w2:1" and cache.controller_id == 0
    assert not cache.stale


def test_a_partition_without_leader_is_unavailable_and_keeps_the_cache_stale() -> None:
    cache = MetadataCache()
    cache.update(response(topic("t", part(0, -1, error=LeaderNotAvailableError.code), part(1, 1))), 0.0)
    assert cache.topic("t").available == (1,)  # type: ignore[union-attr]
    assert cache.leader_endpoint("t", 0) is None and cache.stale


def test_refresh_schedule_max_age_and_backoff() -> None:
    cache = fresh(now=10.0)
    assert cache.time_to_next_update(10.0) == 300.0 and not cache.needs_update(309.0)
    assert cache.needs_update(310.0)
    cache.request_update()
    assert cache.time_to_next_update(10.0) == pytest.approx(0.1)  # stale, but the backoff holds
    assert cache.needs_update(10.5)
    assert cache.metadata_request(20.0) == Metadata(topics=None, allow_auto_topic_creation=True)
    cache.failed_update(20.0)
    assert cache.stale and cache.time_to_next_update(20.0) == pytest.approx(0.1)
    assert cache.needs_update(20.5)


def test_wanted_topics_drive_requests_and_unknown_topics_keep_their_error() -> None:
    cache = fresh()
    assert cache.want(["t"]) is False and not cache.stale
    assert cache.want(["new"]) is True and cache.stale
    assert cache.metadata_request(1.0, allow_auto_topic_creation=False) == Metadata(("new", "t"), False)
    cache.update(response(topic("new", error=UnknownTopicOrPartitionError.code)), 2.0)
    assert isinstance(cache.topic_error("new"), UnknownTopicOrPartitionError)
    assert cache.topic("new") is None and cache.stale  # retriable and wanted: keep asking
    cache.update(response(topic("new", part(0, 2))), 3.0)
    assert cache.topic_error("new") is None and cache.leader_endpoint("new", 0) == "tcp://w2:1"
    assert cache.leader_endpoint("t", 0) == "tcp://w0:1"  # topics not in the answer are kept
    cache.forget(["new"])
    assert cache.metadata_request(4.0).topics == ("t",)


def test_leader_epochs_never_go_backwards() -> None:
    cache = fresh()
    cache.update(response(topic("t", part(0, 2, epoch=5), part(1, 1), part(2, 2))), 1.0)
    assert cache.leader_endpoint("t", 0) == "tcp://w2:1"
    version = cache.version
    cache.update(response(topic("t", part(0, 0, epoch=4), part(1, 1), part(2, 2))), 2.0)  # a lagging worker
    assert cache.leader_endpoint("t", 0) == "tcp://w2:1" and cache.leader_epoch("t", 0) == 5
    assert cache.stale and cache.version == version


def test_not_leader_with_a_newer_leader_moves_the_partition_at_once() -> None:
    cache = fresh()
    version = cache.version
    assert cache.observe_error("t", 0, NotLeaderError.code, leader_id=1, leader_epoch=2) is True
    assert cache.leader_endpoint("t", 0) == "tcp://w1:1" and cache.leader_epoch("t", 0) == 2
    assert cache.stale and cache.version > version
    cache.observe_error("t", 0, NotLeaderError.code, leader_id=2, leader_epoch=2)  # not newer: ignored
    assert cache.leader_endpoint("t", 0) == "tcp://w1:1"


def test_not_leader_without_a_hint_makes_the_partition_unavailable_until_refreshed() -> None:
    cache = fresh()
    cache.observe_error("t", 1, NotLeaderError.code)
    assert cache.leader_endpoint("t", 1) is None and cache.topic("t").available == (0, 2)  # type: ignore[union-attr]
    cache.update(response(topic("t", part(0, 0), part(1, 2, epoch=2), part(2, 2))), 1.0)
    assert cache.leader_endpoint("t", 1) == "tcp://w2:1"


def test_errors_that_do_not_concern_metadata_leave_it_alone() -> None:
    cache = fresh()
    assert cache.observe_error("t", 0, CorruptRecordError.code) is False and not cache.stale
    assert cache.observe_error("t", 0, RequestTimedOutError.code) is True and cache.stale
    assert cache.leader_endpoint("t", 0) == "tcp://w0:1"  # a timeout alone does not unseat the leader
    cache2 = fresh()
    cache2.observe_timeout("tcp://w0:1")
    assert cache2.stale


def test_new_worker_endpoints_are_picked_up_by_known_topics() -> None:
    cache = fresh()
    moved = (WorkerEndpoint(0, "tcp://w0:2"), *WORKERS[1:])
    cache.update(response(workers=moved), 1.0)  # an answer about no topic, with new endpoints
    assert cache.leader_endpoint("t", 0) == "tcp://w0:2"
    assert cache.workers == {0: "tcp://w0:2", 1: "tcp://w1:1", 2: "tcp://w2:1"}


def test_an_answer_with_a_gap_in_partition_numbers_is_not_trusted_past_the_gap() -> None:
    cache = MetadataCache()
    cache.update(response(topic("t", part(0, 0), part(2, 2))), 0.0)
    assert cache.partition_count("t") == 1 and cache.stale
