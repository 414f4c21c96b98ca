"""``Consumer``: reads records from the partitions it is given, straight from each partition's leader.

    assign([TopicPartition]) / subscribe(topics) ──▶ Fetcher (fetcher.py): positions, long-poll
    poll(timeout_ms) ──▶ list[Record]                  Fetch per leader, decoded record buffers
    for record in consumer: ...   (until close())

- A partition without a position starts at ``auto_offset_reset``: "earliest" (the log start),
  "latest" (the high watermark: only new records) or "none" (``poll`` raises until ``seek``);
  the same happens when its position falls out of the log (``OffsetOutOfRange``).
- ``position(tp)`` is the offset of the next record ``poll`` returns for ``tp``; ``seek`` moves it.
- Leader changes, unknown topics (auto-created on first use unless the broker forbids it) and
  timeouts refresh metadata and fetch again from the same position: nothing skipped or repeated.
- A refusal no retry can fix (``AuthorizationError``: no READ ACL on the topic or group) is
  raised by ``poll``, on every call until it is fixed, never turned into empty polls.

With a ``group_id``, ``subscribe(topics)`` (or ``subscribe(pattern=regex)``) joins the consumer
group: the group's coordinator splits the partitions between its members (group_consumer.py),
positions start at the committed offsets, ``commit()`` / auto-commit store them, ``committed(tp)``
reads them. ``group_instance_id`` makes the member static: back under the same id within
``session_timeout_ms``, it gets its partitions back without a reshuffle. Without a group,
``subscribe(topics)`` assigns *every* partition of those topics to this consumer (each consumer
reads everything), picking up partitions added later; ``commit``/``committed`` need a group.

Not thread-safe, except ``close()``, which may be called from another thread to end a ``poll``
or an iteration in progress (as Kafka's ``wakeup`` + ``close``). No thread of its own: the I/O
happens in the thread calling ``poll``.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from typing import Iterable, Iterator, Mapping

from kbroker.errors import InvalidConfigError, RequestTimedOutError
from kbroker.transport.client.common import WakeSignal, check_count, check_ms, curve_setup, resolve_bootstrap
from kbroker.transport.client.fetcher import RESET_POLICIES, Fetcher, FetchSettings
from kbroker.transport.client.group_consumer import GroupConsumer, make_group_consumer
from kbroker.transport.client.types import Record, TopicPartition
from kbroker.transport.messages_client import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP

__all__ = ["Consumer"]

_ITER_POLL_S = 1.0


class Consumer:
    """Reads records. ``Consumer(bootstrap)``; a context manager and an iterator; see the module docstring.

    ``bootstrap``: ``host:port`` or ``tcp://host:port``; default ``$KBROKER_BOOTSTRAP``, else
    127.0.0.1:7092. ``curve_secret_key``/``curve_server_key``: CURVE key files (this client's
    ``NAME.key_secret``, the broker's public ``.key``); default ``$KBROKER_CURVE_SECRET_KEY`` / ``..._SERVER_KEY``.

    Groups: ``group_id``; ``enable_auto_commit`` commits positions every ``auto_commit_interval_ms``,
    before giving partitions up, and on ``close()``; ``session_timeout_ms`` (a member silent this
    long is removed) and ``heartbeat_interval_ms``: heartbeats are sent from ``poll()``, so poll
    more often than the session timeout; ``group_instance_id`` for static membership.
    """

    def __init__(
        self,
        bootstrap: str | None = None,
        group_id: str | None = None,
        auto_offset_reset: str = "earliest",
        enable_auto_commit: bool = True,
        fetch_max_wait_ms: int = 500,
        fetch_min_bytes: int = 1,
        fetch_max_bytes: int = 50 * 1024 * 1024,
        max_partition_fetch_bytes: int = 1024 * 1024,
        max_poll_records: int = 500,
        request_timeout_ms: float = 30_000,
        retry_backoff_ms: float = 100,
        client_id: str | None = None,
        curve_secret_key: str | os.PathLike[str] | None = None,
        curve_server_key: str | os.PathLike[str] | None = None,
        auto_commit_interval_ms: int = 5000,
        session_timeout_ms: int = 45_000,
        heartbeat_interval_ms: int = 3000,
        group_instance_id: str | None = None,
    ) -> None:
        socket_setup = curve_setup(curve_secret_key, curve_server_key)
        if not isinstance(enable_auto_commit, bool):
            raise InvalidConfigError(f"enable_auto_commit must be True or False, got {enable_auto_commit!r}")
        if auto_offset_reset not in RESET_POLICIES:
            raise InvalidConfigError(
                f"auto_offset_reset={auto_offset_reset!r} is not valid: use 'earliest', 'latest' or 'none'"
            )
        self.bootstrap = resolve_bootstrap(bootstrap)
        self.client_id = client_id if client_id is not None else f"kbroker-consumer-{uuid.uuid4().hex[:8]}"
        if not isinstance(self.client_id, str) or not self.client_id:
            raise InvalidConfigError(f"client_id must be a non-empty string, got {client_id!r}")
        self._max_poll_records = check_count("max_poll_records", max_poll_records)
        self._timeout_s = check_ms("request_timeout_ms", request_timeout_ms, minimum=1) / 1000
        settings = FetchSettings(
            client_id=self.client_id,
            auto_offset_reset=auto_offset_reset,
            fetch_max_wait_ms=int(check_ms("fetch_max_wait_ms", fetch_max_wait_ms)),
            fetch_min_bytes=check_count("fetch_min_bytes", fetch_min_bytes, minimum=0),
            fetch_max_bytes=check_count("fetch_max_bytes", fetch_max_bytes),
            max_partition_fetch_bytes=check_count("max_partition_fetch_bytes", max_partition_fetch_bytes),
            request_timeout_s=self._timeout_s,
            retry_backoff_s=check_ms("retry_backoff_ms", retry_backoff_ms) / 1000,
        )
        self._wake = WakeSignal()
        self._fetcher = Fetcher(self.bootstrap, settings, wake=self._wake, socket_setup=socket_setup)
        self._group: GroupConsumer | None = make_group_consumer(
            self._fetcher, self.bootstrap, group_id, self.client_id, enable_auto_commit=enable_auto_commit,
            auto_commit_interval_ms=auto_commit_interval_ms, session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms, group_instance_id=group_instance_id, timeout_s=self._timeout_s,
        )
        self._subscription: tuple[str, ...] | None = None
        self._subscribed_version = -1
        self._io = threading.Lock()  # held by the thread doing I/O (poll & co.)
        self._closed = False

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Consumer({self.bootstrap!r}{', closed' if self._closed else ''})"

    def __iter__(self) -> Iterator[Record]:
        """Records as they arrive, until ``close()`` (from another thread, or a loop body)."""
        while not self._closed:
            try:
                records = self.poll(_ITER_POLL_S * 1000)
            except RuntimeError:
                if self._closed:
                    return  # closed by another thread between two polls
                raise
            for record in records:
                yield record
                if self._closed:
                    return

    # --- assignment -----------------------------------------------------------------------

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Read exactly these partitions (replacing any earlier assignment or subscription)."""
        tps = list(partitions)
        for tp in tps:
            if not isinstance(tp, TopicPartition):
                raise InvalidConfigError(f"assign() takes TopicPartition objects, got {tp!r}")
        with self._using():
            self._subscription = None
            if self._group is not None:
                self._group.unsubscribe()
            self._fetcher.assign(tps)

    def subscribe(self, topics: Iterable[str] | str = (), pattern: str | re.Pattern[str] | None = None) -> None:
        """Read ``topics`` (auto-created if the broker allows) and, with a group, the topics whose
        whole name matches ``pattern`` (picked up as they appear). Without a group: every partition."""
        names = (topics,) if isinstance(topics, str) else tuple(topics)
        regex = pattern.pattern if isinstance(pattern, re.Pattern) else pattern
        if not all(isinstance(t, str) and t for t in names) or (not names and regex is None):
            raise InvalidConfigError(f"subscribe() takes a list of topic names (or pattern=...), got {topics!r}")
        if regex is not None:
            if self._group is None:
                raise InvalidConfigError("subscribe(pattern=...) needs a group_id (the group's coordinator follows the topics)")
            try:
                re.compile(regex)
            except (re.error, TypeError) as exc:
                raise InvalidConfigError(f"subscribe(pattern={pattern!r}): not a valid regular expression: {exc}") from None
        with self._using():
            if not names:
                self._group.subscribe((), regex)  # type: ignore[union-attr]
                return
            self._subscription = names
            cache = self._fetcher.cache
            cache.want(names)
            deadline = time.monotonic() + self._timeout_s
            while True:
                self._fetcher.refresh_metadata(max(0.001, deadline - time.monotonic()))
                missing = [t for t in names if not cache.partition_count(t)]
                error = next((cache.topic_error(t) for t in missing if cache.topic_error(t) is not None), None)
                if error is not None and not error.retriable:
                    raise error
                if not missing:
                    break
                if time.monotonic() >= deadline:
                    raise error or RequestTimedOutError(f"no metadata for {missing} within {self._timeout_s:g}s")
                self._wake_wait(0.1)
            if self._group is not None:
                self._subscription = None
                self._group.subscribe(names, regex)
                return
            self._follow_subscription()

    def _follow_subscription(self) -> None:
        cache = self._fetcher.cache
        if self._subscription is None or cache.version == self._subscribed_version:
            return
        tps = [TopicPartition(t, p) for t in self._subscription for p in range(cache.partition_count(t) or 0)]
        if set(tps) != self._fetcher.assignment():
            self._fetcher.assign(tps)
        self._subscribed_version = cache.version

    def unsubscribe(self) -> None:
        with self._using():
            self._subscription = None
            if self._group is not None:
                self._group.unsubscribe()
            self._fetcher.assign([])

    def assignment(self) -> set[TopicPartition]:
        return self._fetcher.assignment()

    # --- positions ------------------------------------------------------------------------

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Make ``offset`` the next offset ``poll`` returns for ``tp``."""
        with self._using():
            self._fetcher.seek(tp, offset)

    def seek_to_beginning(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        with self._using():
            for tp in partitions if partitions is not None else self._fetcher.assignment():
                self._fetcher.seek_to(tp, EARLIEST_TIMESTAMP)

    def seek_to_end(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        with self._using():
            for tp in partitions if partitions is not None else self._fetcher.assignment():
                self._fetcher.seek_to(tp, LATEST_TIMESTAMP)

    def position(self, tp: TopicPartition) -> int:
        """The offset of the next record ``poll`` returns for ``tp`` (asks the leader if not known yet)."""
        with self._using():
            return self._fetcher.position(tp, self._timeout_s)

    def highwater(self, tp: TopicPartition) -> int | None:
        """The high watermark of ``tp`` as the last fetch answer reported it (None before one came)."""
        return self._fetcher.highwater(tp)

    def caught_up(self) -> bool:
        """Whether every assigned partition has been read up to its last known high watermark."""
        return self._fetcher.caught_up()

    # --- polling --------------------------------------------------------------------------

    def poll(self, timeout_ms: float = 1000) -> list[Record]:
        """Records fetched from the assigned partitions, waiting up to ``timeout_ms`` for some."""
        timeout = check_ms("timeout_ms", timeout_ms) / 1000
        with self._using():
            if self._group is not None:
                return self._group.poll(timeout, self._max_poll_records, lambda: self._closed)
            self._follow_subscription()
            records = self._fetcher.poll(timeout, self._max_poll_records, lambda: self._closed)
            self._follow_subscription()
            return records

    # --- groups -------------------------------------------------------------------------

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commit ``offsets`` ({TopicPartition: next offset to read}; default: the current positions)."""
        with self._using():
            self._needs_group("commit()").commit(offsets)

    def committed(self, tp: TopicPartition) -> int | None:
        """The group's committed offset for ``tp`` (None: nothing committed)."""
        if not isinstance(tp, TopicPartition):
            raise InvalidConfigError(f"committed() takes a TopicPartition, got {tp!r}")
        with self._using():
            return self._needs_group("committed()").committed(tp)

    def _needs_group(self, what: str) -> GroupConsumer:
        if self._group is None:
            raise InvalidConfigError(f"{what} needs a consumer group: create the Consumer with group_id=...")
        return self._group

    # --- closing --------------------------------------------------------------------------

    def close(self) -> None:
        """Stop: ends a ``poll``/iteration in progress in another thread, closes the sockets. Idempotent."""
        self._closed = True
        self._wake.set()
        if self._io.acquire(timeout=self._timeout_s + 1):
            try:
                self._shutdown()
            finally:
                self._io.release()
        # else: the polling thread closes the sockets itself when it returns (see _Using)

    def _using(self) -> _Using:
        if self._closed:
            raise RuntimeError("the consumer is closed")
        return _Using(self)

    def _wake_wait(self, seconds: float) -> None:
        """Wait ``seconds`` or until ``close()``."""
        self._fetcher.idle(seconds)

    def _shutdown(self) -> None:
        """Close the sockets and the wake signal (I/O lock held); a group member commits and leaves first."""
        group, self._group = self._group, None
        try:
            if group is not None:
                group.close()
        finally:
            self._fetcher.close()
        self._wake.close()


class _Using:
    """Holds the consumer's I/O lock; the last user out after ``close()`` closes the sockets."""

    __slots__ = ("_consumer",)

    def __init__(self, consumer: Consumer) -> None:
        self._consumer = consumer

    def __enter__(self) -> None:
        if not self._consumer._io.acquire(blocking=False):
            raise RuntimeError("the Consumer is not thread-safe: another thread is using it (only close() may be called concurrently)")

    def __exit__(self, *exc: object) -> None:
        consumer = self._consumer
        try:
            if consumer._closed:
                consumer._shutdown()
        finally:
            consumer._io.release()
