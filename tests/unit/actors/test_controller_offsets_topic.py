"""The controller creates __consumer_offsets on first ask, whatever the auto-create setting."""

from __future__ import annotations

from _controller_helpers import cluster

from kbroker.actors import controller_requests as requests
from kbroker.actors.group_offsets import OFFSETS_TOPIC_PARTITIONS
from kbroker.transport.messages_client import Metadata
from kbroker.transport.messages_groups import OFFSETS_TOPIC


def test_offsets_topic_created_on_first_ask_compacted_with_rf_up_to_3() -> None:
    for workers, factor in ((1, 1), (2, 2), (4, 3)):
        state = cluster(workers)
        assert requests.metadata(state, Metadata(("other",), True), auto_create=False).changes == ()
        applied = requests.metadata(state, Metadata((OFFSETS_TOPIC,), True), auto_create=False)
        assert len(applied.changes) == 1
        [topic] = applied.response.topics
        assert (topic.name, topic.error_code, len(topic.partitions)) == (OFFSETS_TOPIC, 0, OFFSETS_TOPIC_PARTITIONS)
        assert {len(p.replicas) for p in topic.partitions} == {factor}
        assert dict(state.topic(OFFSETS_TOPIC).configs)["cleanup.policy"] == "compact"
        again = requests.metadata(state, Metadata((OFFSETS_TOPIC,), True), auto_create=True)
        assert again.changes == ()  # created once


def test_offsets_topic_not_created_without_permission_or_workers() -> None:
    state = cluster(3)
    assert requests.metadata(state, Metadata((OFFSETS_TOPIC,), False), auto_create=True).changes == ()
    assert OFFSETS_TOPIC not in state.topics
    empty = cluster(0)
    assert requests.metadata(empty, Metadata((OFFSETS_TOPIC,), True), auto_create=True).changes == ()
