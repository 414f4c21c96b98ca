"""The consumer's fetch engine: positions per partition, fetches to each leader, decoded records.

    poll() ──▶ refresh metadata (bootstrap) ──▶ reset positions (ListOffsets) ──▶ one Fetch per leader
                                                                                    (long poll, kept
    records ◀── buffered, per partition ◀── records_from_fetch ◀── FetchResponse     across polls)

Per assigned partition:
- ``position``: the offset of the next record ``poll`` returns (None until reset or ``seek``);
- ``fetch_offset``: where the next fetch starts (``position`` plus what is buffered);
- a buffer of decoded records not yet returned, and the offset after them (``next_offset``).

Rules:
- A partition with no position is reset with ``ListOffsets`` (earliest -2 / latest -1), as is one
  answered ``OffsetOutOfRange``; ``auto_offset_reset="none"`` raises instead.
- At most one Fetch is in flight per leader, and a partition is fetched only with an empty buffer.
  A reply whose ``fetch_offset`` no longer matches (``seek`` meanwhile) is dropped: no skip, no repeat.
- NotLeader, UnknownTopicOrPartition, leader-epoch errors and timeouts refresh metadata; the
  partition is fetched again from the same offset. A timed-out connection is replaced.
- A whole Fetch refused with a non-retriable error (``ErrorResponse`` or ``FetchResponse.error_code``:
  no READ ACL, invalid request, ...) is raised by ``poll``, once per call, while one of the refused
  partitions is still assigned; they are fetched again after the backoff (as Kafka's
  ``TopicAuthorizationException``). Retriable ones (unavailable, throttled, ...) are only retried.

Not thread-safe: owned by the thread calling ``Consumer.poll`` (``WakeSignal`` may be set from any thread).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from kbroker.errors import (
    BrokerUnavailableError,
    InvalidConfigError,
    KBrokerError,
    OffsetOutOfRangeError,
    RequestTimedOutError,
    UnknownError,
    error_for_code,
)
from kbroker.transport.client.common import ConnectionPool, WakeSignal
from kbroker.transport.client.metadata_cache import MetadataCache
from kbroker.transport.client.records import records_from_fetch
from kbroker.transport.client.types import Record, TopicPartition
from kbroker.transport.connection import Connection
from kbroker.transport.messages_client import (
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    READ_UNCOMMITTED,
    ErrorResponse,
    Fetch,
    FetchPartition,
    FetchResponse,
    FetchTopic,
    ListOffsets,
    ListOffsetsPartition,
    ListOffsetsResponse,
    ListOffsetsTopic,
    MetadataResponse,
)

__all__ = ["Fetcher", "FetchSettings", "RESET_POLICIES"]

RESET_POLICIES = {"earliest": EARLIEST_TIMESTAMP, "latest": LATEST_TIMESTAMP, "none": None}
_REPLY_GRACE_S = 1.0
_STALL_S = 1.0  # beyond max_wait_ms: refresh metadata in case the worker was fenced while hung


@dataclass(frozen=True, slots=True)
class FetchSettings:
    client_id: str
    auto_offset_reset: str = "earliest"
    fetch_max_wait_ms: int = 500
    fetch_min_bytes: int = 1
    fetch_max_bytes: int = 50 * 1024 * 1024
    max_partition_fetch_bytes: int = 1024 * 1024
    request_timeout_s: float = 30.0
    retry_backoff_s: float = 0.1


@dataclass(slots=True)
class _PartitionState:
    position: int | None = None  # next offset poll() returns
    fetch_offset: int | None = None  # next offset to fetch
    buffer: list[Record] = field(default_factory=list)
    buffer_index: int = 0
    buffer_next: int = 0  # offset after the buffered records (where position goes once they are returned)
    retry_at: float = 0.0  # after an error: not before this
    reset_to: int | None = None  # ListOffsets timestamp for the next reset; None: auto_offset_reset
    high_watermark: int | None = None  # from the last fetch answer


@dataclass(slots=True)
class _FetchInFlight:
    deadline: float
    offsets: dict[TopicPartition, int]
    stalled_at: float = float("inf")  # past the long poll's max_wait + _STALL_S: is its worker still there?


class Fetcher:
    """Fetch state and I/O for one consumer (no threads of its own)."""

    def __init__(
        self,
        bootstrap: str,
        settings: FetchSettings,
        *,
        wake: WakeSignal | None = None,
        clock: Callable[[], float] = time.monotonic,
        socket_setup: Callable[..., None] | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self.socket_setup = socket_setup  # CURVE (the group client shares it)
        self._s = settings
        self._wake = wake
        self._clock = clock
        self._cache = MetadataCache(refresh_backoff_s=settings.retry_backoff_s)
        self._pool = ConnectionPool(timeout=settings.request_timeout_s, socket_setup=socket_setup)
        self._parts: dict[TopicPartition, _PartitionState] = {}
        self._in_flight: dict[tuple[str, int], _FetchInFlight] = {}
        self._busy: set[str] = set()  # endpoints with a fetch in flight
        self._refused: tuple[KBrokerError, frozenset[TopicPartition]] | None = None  # for poll() to raise

    # --- assignment and positions ---------------------------------------------------------

    @property
    def cache(self) -> MetadataCache:
        return self._cache

    def assign(self, partitions: list[TopicPartition]) -> None:
        wanted = set(partitions)
        self._parts = {tp: self._parts.get(tp) or _PartitionState() for tp in sorted(wanted)}
        self._cache.want({tp.topic for tp in wanted})

    def assignment(self) -> set[TopicPartition]:
        return set(self._parts)

    def _state(self, tp: TopicPartition) -> _PartitionState:
        try:
            return self._parts[tp]
        except KeyError:
            raise InvalidConfigError(f"{tp} is not assigned to this consumer; assign() it first") from None

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InvalidConfigError(f"offset must be a non-negative int, got {offset!r}")
        state = self._state(tp)
        state.position = state.fetch_offset = offset
        state.buffer, state.buffer_index = [], 0
        state.reset_to = None
        state.retry_at = 0.0

    def seek_to(self, tp: TopicPartition, timestamp: int) -> None:
        """Reset ``tp`` to the earliest (-2) or latest (-1) offset at the next poll."""
        state = self._state(tp)
        state.position = state.fetch_offset = None
        state.buffer, state.buffer_index = [], 0
        state.reset_to = timestamp
        state.retry_at = 0.0

    def position(self, tp: TopicPartition, timeout_s: float) -> int:
        state = self._state(tp)
        deadline = self._clock() + timeout_s
        while state.position is None:
            self._refresh_metadata(self._clock(), deadline)
            self._reset_positions(deadline)
            if state.position is not None:
                break
            if self._clock() >= deadline:
                raise RequestTimedOutError(f"no position for {tp} within {timeout_s:g}s: its leader did not answer ListOffsets")
            self.idle(min(self._s.retry_backoff_s, max(0.0, deadline - self._clock())))
        return state.position

    def positions(self) -> dict[TopicPartition, int]:
        """The known positions of the assigned partitions (those not reset yet are left out); no I/O."""
        return {tp: state.position for tp, state in self._parts.items() if state.position is not None}

    def highwater(self, tp: TopicPartition) -> int | None:
        """The high watermark the last fetch answer for ``tp`` reported (None: no answer yet)."""
        return self._state(tp).high_watermark

    def caught_up(self) -> bool:
        """Every assigned partition has returned everything below its last known high watermark."""
        for state in self._parts.values():
            hw = state.high_watermark
            if hw is None or state.position is None or state.buffer or state.position < hw:
                return False
        return True

    # --- polling --------------------------------------------------------------------------

    def poll(self, timeout_s: float, max_records: int, stop: Callable[[], bool]) -> list[Record]:
        """Records from the buffers, fetching until some arrive or ``timeout_s`` passes (or ``stop()``)."""
        deadline = self._clock() + timeout_s
        self._raise_refused()
        while True:
            records = self._take(max_records)
            if records or stop():
                return records
            self._refresh_metadata(self._clock(), deadline)
            self._reset_positions(deadline)
            now = self._clock()
            self._send_fetches(now)
            wait = max(0.0, deadline - now)
            if self._in_flight:
                wait = min(wait, min(min(f.deadline, f.stalled_at) for f in self._in_flight.values()) - now)
            else:
                wait = min(wait, self._s.retry_backoff_s)  # nothing to wait for: metadata/backoff
            for endpoint, conn in self._pool.poll(max(0.0, wait), self._wake):  # at least one look, even at 0
                self._read_replies(endpoint, conn)
            self._drop_lost()
            self._expire(self._clock())
            self._check_stalled(self._clock())
            records = self._take(max_records)
            if records or stop():
                return records
            self._raise_refused()
            if self._clock() >= deadline:
                return records

    def _raise_refused(self) -> None:
        """Raise the error a whole Fetch was refused with, unless its partitions were all unassigned since."""
        refused, self._refused = self._refused, None
        if refused is not None and not refused[1].isdisjoint(self._parts):
            raise refused[0]

    def _take(self, max_records: int) -> list[Record]:
        out: list[Record] = []
        for state in self._parts.values():
            if state.buffer_index >= len(state.buffer):
                continue
            room = max_records - len(out)
            if room <= 0:
                break
            chunk = state.buffer[state.buffer_index : state.buffer_index + room]
            out.extend(chunk)
            state.buffer_index += len(chunk)
            if state.buffer_index >= len(state.buffer):
                state.buffer, state.buffer_index = [], 0
                state.position = state.buffer_next
            else:
                state.position = chunk[-1].offset + 1
        return out

    # --- metadata -------------------------------------------------------------------------

    def refresh_metadata(self, timeout_s: float) -> None:
        """Ask the bootstrap endpoint now (synchronously) for the wanted topics."""
        now = self._clock()
        request = self._cache.metadata_request(now, allow_auto_topic_creation=True)
        try:
            reply = self._pool.get(self._bootstrap).request(request, timeout=max(0.001, timeout_s))
        except KBrokerError:
            self._cache.failed_update(self._clock())
            raise
        if not isinstance(reply, MetadataResponse):
            self._cache.failed_update(self._clock())
            raise UnknownError(f"expected MetadataResponse from {self._bootstrap}, got {type(reply).__name__}")
        self._cache.update(reply, self._clock())
        self._drop_departed()

    def _refresh_metadata(self, now: float, deadline: float) -> None:
        if not self._cache.needs_update(now):
            return
        timeout = min(self._s.request_timeout_s, max(0.05, deadline - now))
        try:
            self.refresh_metadata(timeout)
        except RequestTimedOutError:
            pass  # retried after the backoff; poll() returns empty if the broker stays away
        except KBrokerError as exc:
            if not exc.retriable:
                raise

    # --- offsets reset --------------------------------------------------------------------

    def _reset_positions(self, deadline: float) -> None:
        now = self._clock()
        by_leader: dict[str, list[tuple[TopicPartition, int]]] = {}
        for tp, state in self._parts.items():
            if state.position is not None or state.retry_at > now:
                continue
            spec = state.reset_to if state.reset_to is not None else RESET_POLICIES[self._s.auto_offset_reset]
            if spec is None:
                raise OffsetOutOfRangeError(
                    f"{tp} has no position and auto_offset_reset='none'; seek() to an offset first"
                )
            endpoint = self._cache.leader_endpoint(tp.topic, tp.partition)
            if endpoint is None:
                self._cache.request_update()
                continue
            by_leader.setdefault(endpoint, []).append((tp, spec))
        for endpoint, items in by_leader.items():
            self._list_offsets(endpoint, items, deadline)

    def _list_offsets(self, endpoint: str, items: list[tuple[TopicPartition, int]], deadline: float) -> None:
        topics: dict[str, list[ListOffsetsPartition]] = {}
        for tp, spec in items:
            epoch = self._cache.leader_epoch(tp.topic, tp.partition)
            topics.setdefault(tp.topic, []).append(ListOffsetsPartition(tp.partition, spec, epoch))
        request = ListOffsets(READ_UNCOMMITTED, tuple(ListOffsetsTopic(t, tuple(ps)) for t, ps in topics.items()))
        conn = self._pool.get(endpoint)
        timeout = min(self._s.request_timeout_s, max(0.05, deadline - self._clock()))
        now = self._clock()
        try:
            reply = self._request_beside_fetches(endpoint, conn, request, timeout)
        except RequestTimedOutError:
            self._cache.observe_timeout(endpoint)
            for tp, _ in items:
                self._parts[tp].retry_at = now + self._s.retry_backoff_s
            return
        except KBrokerError as exc:
            if not exc.retriable:
                raise
            self._cache.request_update()
            return
        if not isinstance(reply, ListOffsetsResponse):
            raise UnknownError(f"expected ListOffsetsResponse from {endpoint}, got {type(reply).__name__}")
        for topic in reply.topics:
            for part in topic.partitions:
                state = self._parts.get(TopicPartition(topic.name, part.partition))
                if state is None or state.position is not None:
                    continue
                if part.error_code:
                    error = error_for_code(part.error_code, part.error_message)
                    if not error.retriable:
                        raise error
                    self._cache.observe_error(topic.name, part.partition, part.error_code)
                    state.retry_at = now + self._s.retry_backoff_s
                    continue
                if part.offset < 0:
                    state.retry_at = now + self._s.retry_backoff_s  # the leader has no answer yet
                    continue
                state.position = state.fetch_offset = part.offset
                state.reset_to = None

    def _request_beside_fetches(self, endpoint: str, conn: Connection, request: object, timeout: float) -> object:
        """A synchronous request on a connection that may have a fetch in flight: handle both replies."""
        now = self._clock()
        cid = conn.send(request, timeout=timeout)  # type: ignore[arg-type]
        deadline = now + timeout
        while True:
            remaining = deadline - self._clock()
            if remaining <= 0:
                self._connection_lost(endpoint, conn)
                raise RequestTimedOutError(f"no reply from {endpoint} within {timeout:g}s")
            try:
                got, reply = conn.receive(remaining)
            except RequestTimedOutError:
                continue
            except BrokerUnavailableError:
                self._connection_lost(endpoint, conn)
                raise
            if got == cid:
                if isinstance(reply, ErrorResponse):
                    raise error_for_code(reply.code, reply.message)
                return reply
            self._on_fetch_reply(endpoint, got, reply)

    # --- fetching -------------------------------------------------------------------------

    def _send_fetches(self, now: float) -> None:
        by_leader: dict[str, list[tuple[TopicPartition, int]]] = {}
        for tp, state in self._parts.items():
            if state.fetch_offset is None or state.buffer or state.retry_at > now:
                continue
            endpoint = self._cache.leader_endpoint(tp.topic, tp.partition)
            if endpoint is None:
                self._cache.request_update()
                continue
            if endpoint in self._busy:
                continue
            by_leader.setdefault(endpoint, []).append((tp, state.fetch_offset))
        for endpoint, items in by_leader.items():
            topics: dict[str, list[FetchPartition]] = {}
            for tp, offset in items:
                epoch = self._cache.leader_epoch(tp.topic, tp.partition)
                topics.setdefault(tp.topic, []).append(
                    FetchPartition(tp.partition, offset, self._s.max_partition_fetch_bytes, epoch)
                )
            request = Fetch(
                client_id=self._s.client_id,
                max_wait_ms=self._s.fetch_max_wait_ms,
                min_bytes=self._s.fetch_min_bytes,
                max_bytes=self._s.fetch_max_bytes,
                isolation_level=READ_UNCOMMITTED,
                topics=tuple(FetchTopic(t, tuple(ps)) for t, ps in topics.items()),
            )
            conn = self._pool.get(endpoint)
            try:
                cid = conn.send(request, timeout=self._s.request_timeout_s)
            except (RequestTimedOutError, BrokerUnavailableError):
                self._connection_lost(endpoint, conn)
                continue
            deadline = now + self._s.fetch_max_wait_ms / 1000 + self._s.request_timeout_s + _REPLY_GRACE_S
            stalled_at = now + self._s.fetch_max_wait_ms / 1000 + _STALL_S
            self._in_flight[(endpoint, cid)] = _FetchInFlight(deadline, dict(items), stalled_at)
            self._busy.add(endpoint)

    def _read_replies(self, endpoint: str, conn: Connection) -> None:
        while not conn.closed and self._pool.readable(conn):
            try:
                cid, reply = conn.receive(0)
            except KBrokerError:  # a malformed reply: give up on this connection's fetch, fetch again
                self._connection_lost(endpoint, conn)
                return
            self._on_fetch_reply(endpoint, cid, reply)

    def _on_fetch_reply(self, endpoint: str, cid: int, reply: object) -> None:
        flight = self._in_flight.pop((endpoint, cid), None)
        if flight is None:
            return  # a reply to an abandoned request
        self._busy.discard(endpoint)
        now = self._clock()
        error = _whole_request_error(reply)
        if error is not None and not error.retriable:  # retrying cannot help (no READ ACL, ...): poll() raises it
            self._refused = (error, frozenset(flight.offsets))
            for tp in flight.offsets:
                if tp in self._parts:
                    self._parts[tp].retry_at = now + self._s.retry_backoff_s
            return
        if not isinstance(reply, FetchResponse) or reply.error_code:
            self._cache.observe_timeout(endpoint)  # a whole-request failure: look the leaders up again
            for tp in flight.offsets:
                if tp in self._parts:
                    self._parts[tp].retry_at = now + self._s.retry_backoff_s
            return
        for topic in reply.topics:
            for part in topic.partitions:
                tp = TopicPartition(topic.name, part.partition)
                state = self._parts.get(tp)
                asked = flight.offsets.get(tp)
                if state is not None and not part.error_code:
                    state.high_watermark = part.high_watermark
                if state is None or asked is None or state.fetch_offset != asked or state.buffer:
                    continue  # unassigned or moved by seek() meanwhile: drop it
                if part.error_code:
                    self._on_partition_error(tp, state, part.error_code, part.error_message, part.leader_id, part.leader_epoch, now)
                    continue
                fetched = records_from_fetch(tp.topic, tp.partition, part.records, asked)
                state.fetch_offset = fetched.next_offset
                if fetched.records:
                    state.buffer, state.buffer_index = fetched.records, 0
                    state.buffer_next = fetched.next_offset
                elif state.position == asked:
                    state.position = fetched.next_offset  # emptied batches (compaction): move past them

    def _on_partition_error(
        self, tp: TopicPartition, state: _PartitionState, code: int, message: str | None, leader_id: int, leader_epoch: int, now: float
    ) -> None:
        if code == OffsetOutOfRangeError.code:
            if RESET_POLICIES[self._s.auto_offset_reset] is None:
                raise error_for_code(code, f"{tp}: {message or 'offset out of range'}")
            state.position = state.fetch_offset = None  # reset per auto_offset_reset at the next round
            state.reset_to = None
            return
        error = error_for_code(code, message)
        if not error.retriable:
            raise type(error)(f"{tp}: {error.message}")
        self._cache.observe_error(tp.topic, tp.partition, code, leader_id, leader_epoch)
        state.retry_at = now + self._s.retry_backoff_s

    def _expire(self, now: float) -> None:
        late = {endpoint for (endpoint, _), f in self._in_flight.items() if f.deadline <= now}
        for endpoint in late:
            self._connection_lost(endpoint, self._pool.get(endpoint))

    def _connection_lost(self, endpoint: str, conn: Connection) -> None:
        for key in [k for k in self._in_flight if k[0] == endpoint]:
            del self._in_flight[key]
        self._busy.discard(endpoint)
        conn.reconnect()
        self._cache.observe_timeout(endpoint)

    def idle(self, seconds: float) -> None:
        """Wait ``seconds``, or less if woken (``close()``); replies that arrive meanwhile are handled."""
        for endpoint, conn in self._pool.poll(seconds, self._wake):
            self._read_replies(endpoint, conn)
        self._drop_lost()

    def _check_stalled(self, now: float) -> None:
        """A fetch unanswered past its long poll: refresh metadata (once per stalled fetch) to learn
        whether its worker was fenced while hung (its connection stays open)."""
        stalled = [f for f in self._in_flight.values() if f.stalled_at <= now]
        for flight in stalled:
            flight.stalled_at = now + _STALL_S
        if stalled:
            self._cache.request_update()

    def _drop_departed(self) -> None:
        """Fetches in flight to a worker the controller no longer lists will not be answered."""
        for endpoint in self._cache.departed({e for (e, _) in self._in_flight}):
            self._connection_lost(endpoint, self._pool.get(endpoint))

    def _drop_lost(self) -> None:
        """Fetches to a worker whose link went down will never be answered: fetch again elsewhere."""
        for endpoint in self._pool.take_lost():
            if endpoint in self._busy or any(key[0] == endpoint for key in self._in_flight):
                self._connection_lost(endpoint, self._pool.get(endpoint))

    def close(self) -> None:
        self._in_flight.clear()
        self._busy.clear()
        self._pool.close()


def _whole_request_error(reply: object) -> KBrokerError | None:
    """The error a Fetch reply carries for the whole request (None: none, or not a Fetch answer at all)."""
    if isinstance(reply, ErrorResponse):
        return error_for_code(reply.code, reply.message)
    if isinstance(reply, FetchResponse) and reply.error_code:
        return error_for_code(reply.error_code, None)
    return None
