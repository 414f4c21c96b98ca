"""The client's view of cluster metadata: who leads each partition, and when to ask again.

Fed by ``MetadataResponse`` messages (``update``) and by the errors produce/fetch answers carry
(``observe_error``); read on every send (``topic``) and every drain (``leader_endpoint``).

    MetadataResponse ──update()──> workers {id: endpoint}, topics {name: TopicView}
    NotLeader / UnknownTopic / timeouts ──observe_error()/observe_timeout()──> stale
    needs_update(now) / time_to_next_update(now) ──> the I/O loop sends ``metadata_request()``

Rules (as Kafka's ``Metadata``):
- Metadata is refreshed when marked stale (an error said the view is wrong, or a topic is wanted
  that the cache does not know) and otherwise every ``max_age_s``; never more often than every
  ``refresh_backoff_s``.
- A partition's leader epoch never goes backwards: a response with an older epoch for a
  partition (from a worker that has not heard of the election yet) keeps the cached leader and
  leaves the cache stale, so it is asked again (KIP-320).
- A NotLeader answer that names a leader with a newer epoch moves the partition to that leader at
  once (KIP-951), and the cache is still marked stale for the full picture.
- Topics the broker says do not exist keep their error (``topic_error``) until a later response
  has them; the client decides whether to wait (auto-creation) or give up.

Pure: no sockets, no threads, time passed in. One writer (the client's I/O thread, or whoever
holds the client's lock); other threads may read ``topic()`` / ``leader_endpoint()``: a
``TopicView`` is immutable and replaced by a single dict assignment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from kbroker.errors import (
    BrokerUnavailableError,
    FencedLeaderEpochError,
    KafkaStorageError,
    KBrokerError,
    LeaderNotAvailableError,
    NotLeaderError,
    RequestTimedOutError,
    UnknownLeaderEpochError,
    UnknownTopicOrPartitionError,
    error_for_code,
)
from kbroker.transport.messages_client import Metadata, MetadataResponse

__all__ = ["PartitionLeader", "TopicView", "MetadataCache", "STALE_ERROR_CODES"]

STALE_ERROR_CODES = frozenset(
    {
        NotLeaderError.code,
        UnknownTopicOrPartitionError.code,
        LeaderNotAvailableError.code,
        FencedLeaderEpochError.code,
        UnknownLeaderEpochError.code,
        KafkaStorageError.code,
        RequestTimedOutError.code,
        BrokerUnavailableError.code,
    }
)
"""Error codes in a produce/fetch answer that mean "the metadata may be wrong: refresh"."""


@dataclass(frozen=True, slots=True)
class PartitionLeader:
    partition: int
    leader_id: int  # -1: no leader (election in progress)
    leader_epoch: int
    endpoint: str | None  # None: no leader, or a leader whose endpoint is not known yet
    replicas: tuple[int, ...] = ()
    isr: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class TopicView:
    """One topic as the cache knows it; ``available`` are the partitions whose leader is reachable."""

    name: str
    partitions: tuple[PartitionLeader, ...]  # indexed by partition number
    available: tuple[int, ...]

    @property
    def num_partitions(self) -> int:
        return len(self.partitions)


class MetadataCache:
    """Leaders per partition, partitions per topic, and the refresh schedule."""

    def __init__(self, *, max_age_s: float = 300.0, refresh_backoff_s: float = 0.1) -> None:
        self._max_age_s = max_age_s
        self._refresh_backoff_s = refresh_backoff_s
        self._workers: dict[int, str] = {}
        self._topics: dict[str, TopicView] = {}
        self._errors: dict[str, KBrokerError] = {}
        self._wanted: set[str] = set()
        self._controller_id = -1
        self._stale = True
        self._last_refresh = float("-inf")  # last successful update
        self._last_attempt = float("-inf")  # last request sent (success or not)
        self._version = 0  # bumped by every change of a leader or of the topic set

    # --- reading ---------------------------------------------------------------------------

    @property
    def version(self) -> int:
        """Changes whenever leaders or topics change (cheap "did anything move?" check)."""
        return self._version

    @property
    def workers(self) -> dict[int, str]:
        return dict(self._workers)

    def departed(self, endpoints: Iterable[str]) -> set[str]:
        """Those of ``endpoints`` that the last metadata does not list as live workers (dead or
        fenced: requests in flight to them will not be answered). None while no worker is known."""
        live = set(self._workers.values())
        return {e for e in endpoints if e not in live} if live else set()

    @property
    def controller_id(self) -> int:
        return self._controller_id

    def topic(self, name: str) -> TopicView | None:
        return self._topics.get(name)

    def topics(self) -> list[str]:
        return sorted(self._topics)

    def partition_count(self, name: str) -> int | None:
        view = self._topics.get(name)
        return None if view is None else len(view.partitions)

    def leader(self, topic: str, partition: int) -> PartitionLeader | None:
        view = self._topics.get(topic)
        if view is None or not 0 <= partition < len(view.partitions):
            return None
        return view.partitions[partition]

    def leader_endpoint(self, topic: str, partition: int) -> str | None:
        """Where to send produce/fetch for the partition; None while unknown (then refresh)."""
        view = self._topics.get(topic)
        if view is None or partition >= len(view.partitions):
            return None
        return view.partitions[partition].endpoint

    def leader_epoch(self, topic: str, partition: int) -> int:
        found = self.leader(topic, partition)
        return -1 if found is None else found.leader_epoch

    def endpoint_of(self, worker_id: int) -> str | None:
        return self._workers.get(worker_id)

    def topic_error(self, name: str) -> KBrokerError | None:
        """The error the last response gave for ``name`` (e.g. unknown topic), if any."""
        return self._errors.get(name)

    # --- refresh schedule ------------------------------------------------------------------

    @property
    def stale(self) -> bool:
        return self._stale

    def want(self, topics: Iterable[str]) -> bool:
        """Track these topics; returns True (and marks stale) if one of them is not known yet."""
        missing = False
        for name in topics:
            self._wanted.add(name)
            if name not in self._topics:
                missing = True
        if missing:
            self._stale = True
        return missing

    def forget(self, topics: Iterable[str]) -> None:
        for name in topics:
            self._wanted.discard(name)

    def request_update(self) -> None:
        """Mark the view stale: refresh at the next opportunity (after the backoff)."""
        self._stale = True

    def time_to_next_update(self, now: float) -> float:
        """Seconds until a refresh is due (0: now)."""
        due = 0.0 if self._stale else self._last_refresh + self._max_age_s - now
        backoff = self._last_attempt + self._refresh_backoff_s - now
        return max(due, backoff, 0.0)

    def needs_update(self, now: float) -> bool:
        return self.time_to_next_update(now) == 0.0

    def metadata_request(self, now: float, *, allow_auto_topic_creation: bool = True) -> Metadata:
        """The ``Metadata`` request to send now (for the wanted topics; all topics if none wanted)."""
        self._last_attempt = now
        topics = tuple(sorted(self._wanted)) if self._wanted else None
        return Metadata(topics=topics, allow_auto_topic_creation=allow_auto_topic_creation)

    def failed_update(self, now: float) -> None:
        """The metadata request failed: stay stale, try again after the backoff."""
        self._last_attempt = now
        self._stale = True

    # --- updating --------------------------------------------------------------------------

    def update(self, response: MetadataResponse, now: float) -> None:
        """Take in a ``MetadataResponse`` (for some or all topics; other topics are kept)."""
        self._last_attempt = max(self._last_attempt, now)
        self._last_refresh = now
        self._stale = False
        workers = {w.worker_id: w.endpoint for w in response.workers}
        if workers != self._workers:
            self._workers = workers
            self._version += 1
            self._topics = {name: self._rebind(view) for name, view in self._topics.items()}
        self._controller_id = response.controller_id
        for topic in response.topics:
            if topic.error_code != 0:
                self._errors[topic.name] = error_for_code(topic.error_code, topic.error_message)
                if self._topics.pop(topic.name, None) is not None:
                    self._version += 1
                if error_for_code(topic.error_code).retriable and topic.name in self._wanted:
                    self._stale = True  # e.g. LeaderNotAvailable while the topic is being created
                continue
            self._errors.pop(topic.name, None)
            self._merge_topic(topic)
        if any(name not in self._topics for name in self._wanted):
            self._stale = True

    def _merge_topic(self, topic: object) -> None:
        old = self._topics.get(topic.name)  # type: ignore[attr-defined]
        parts = sorted(topic.partitions, key=lambda p: p.partition)  # type: ignore[attr-defined]
        leaders: list[PartitionLeader] = []
        for p in parts:
            cached = old.partitions[p.partition] if old is not None and p.partition < len(old.partitions) else None
            if cached is not None and p.leader_epoch < cached.leader_epoch:
                leaders.append(cached)  # an older view of this partition: keep ours, ask again
                self._stale = True
                continue
            if p.error_code != 0 or p.leader_id < 0:
                self._stale = True  # no leader right now (election): ask again soon
            leader_id = p.leader_id if p.error_code == 0 or p.leader_id >= 0 else -1
            leaders.append(
                PartitionLeader(
                    p.partition,
                    leader_id,
                    p.leader_epoch,
                    self._workers.get(leader_id) if leader_id >= 0 else None,
                    tuple(p.replicas),
                    tuple(p.isr),
                )
            )
        if [lp.partition for lp in leaders] != list(range(len(leaders))):
            self._stale = True  # a gap in partition numbers: an incomplete answer
            leaders = [lp for i, lp in enumerate(leaders) if lp.partition == i]
        view = _view(topic.name, leaders)  # type: ignore[attr-defined]
        if view != old:
            self._topics[view.name] = view
            self._version += 1

    def _rebind(self, view: TopicView) -> TopicView:
        """The same leaders, with endpoints looked up again (the worker list changed)."""
        leaders = [
            PartitionLeader(
                lp.partition, lp.leader_id, lp.leader_epoch,
                self._workers.get(lp.leader_id) if lp.leader_id >= 0 else None, lp.replicas, lp.isr,
            )
            for lp in view.partitions
        ]
        return _view(view.name, leaders)

    def observe_error(self, topic: str, partition: int, error_code: int, leader_id: int = -1, leader_epoch: int = -1) -> bool:
        """A produce/fetch answer for ``topic``/``partition`` carried ``error_code``.

        Marks the cache stale when the error means the metadata is wrong (``STALE_ERROR_CODES``)
        and, for NotLeader/FencedLeaderEpoch naming a known leader with a newer epoch, points
        the partition at it right away. Returns True if the cache was marked stale.
        """
        if error_code not in STALE_ERROR_CODES:
            return False
        self._stale = True
        if leader_id >= 0 and error_code in (NotLeaderError.code, FencedLeaderEpochError.code):
            self._move_leader(topic, partition, leader_id, leader_epoch)
        elif error_code in (NotLeaderError.code, LeaderNotAvailableError.code, KafkaStorageError.code):
            self._forget_leader(topic, partition)
        return True

    def observe_timeout(self, endpoint: str) -> None:
        """A request to ``endpoint`` went unanswered: the worker may be gone, refresh."""
        self._stale = True

    def _move_leader(self, topic: str, partition: int, leader_id: int, leader_epoch: int) -> None:
        view = self._topics.get(topic)
        endpoint = self._workers.get(leader_id)
        if view is None or not 0 <= partition < len(view.partitions) or endpoint is None:
            return
        current = view.partitions[partition]
        if leader_epoch <= current.leader_epoch:
            return
        moved = PartitionLeader(partition, leader_id, leader_epoch, endpoint, current.replicas, current.isr)
        self._replace(view, moved)

    def _forget_leader(self, topic: str, partition: int) -> None:
        """The named leader is wrong and no better one is known: stop sending there until refreshed."""
        view = self._topics.get(topic)
        if view is None or not 0 <= partition < len(view.partitions):
            return
        current = view.partitions[partition]
        if current.endpoint is None:
            return
        self._replace(view, PartitionLeader(partition, current.leader_id, current.leader_epoch, None, current.replicas, current.isr))

    def _replace(self, view: TopicView, leader: PartitionLeader) -> None:
        leaders = list(view.partitions)
        leaders[leader.partition] = leader
        self._topics[view.name] = _view(view.name, leaders)
        self._version += 1


def _view(name: str, leaders: list[PartitionLeader]) -> TopicView:
    return TopicView(name, tuple(leaders), tuple(lp.partition for lp in leaders if lp.endpoint is not None))
