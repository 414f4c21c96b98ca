"""``Producer``: records in on any thread, batched per partition, sent by one I/O thread.

    send() ──▶ MetadataCache.topic (waits up to max_block_ms for a new topic) ──▶ Accumulator.send
                                                                                       │ wakeup
    flush() / close() ──▶ Accumulator.flush / close                     Sender thread ◀┘ (sender.py)

- ``send`` returns a ``RecordFuture`` (``result(timeout)``, ``exception``, ``add_done_callback``)
  of ``RecordMetadata(topic, partition, offset, timestamp_ms)``; callbacks run on the I/O thread.
- ``send_many(topic, values)``: keyless records in bulk with one ``SendManyFuture`` for all of them
  (``result`` gives the count or raises the first error; no per-record offsets): ~0.3 µs per
  record in the caller instead of ~1.3, the same batches, acks, idempotence and order as ``send``.
- Keys go to ``murmur2(key) % partitions`` (Kafka's partitioner); keyless records stick to one
  partition per batch (KIP-480); ``partition=`` overrides both.
- Retriable errors (NotLeader, timeouts, NotEnoughReplicas, ...) are retried after a metadata
  refresh until ``delivery_timeout_ms``; with idempotence (default, needs acks 1 or "all"; off
  for acks=0, which never hears back) a retried batch is written once and order is kept.
- ``close()`` sends what is queued and stops the thread; ``close(timeout)`` fails what is still
  unsent after ``timeout`` seconds.

Thread-safe: ``send``/``flush`` from any thread; the sockets belong to the sender thread.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Iterable, Sequence

from kbroker.errors import InvalidConfigError, KBrokerError, RequestTimedOutError
from kbroker.transport.client.accumulator import Accumulator
from kbroker.transport.client.common import WakeSignal, check_count, check_ms, curve_setup, resolve_bootstrap
from kbroker.transport.client.metadata_cache import MetadataCache, TopicView
from kbroker.transport.client.producer_batch import RecordFuture, SendManyFuture
from kbroker.transport.client.sender import Sender
from kbroker.transport.client.types import parse_acks

__all__ = ["Producer"]


class Producer:
    """Publishes records to topics. ``Producer(bootstrap)``; a context manager; see the module docstring.

    ``bootstrap``: ``host:port`` or ``tcp://host:port``; default ``$KBROKER_BOOTSTRAP``, else
    127.0.0.1:7092. ``acks``: 0, 1 or "all" (-1, "0", "1", "-1" too). ``compression``: None,
    "gzip", "lz4" or "zstd". ``curve_secret_key``/``curve_server_key``: CURVE key files (this
    client's ``NAME.key_secret``, the broker's public ``.key``); default ``$KBROKER_CURVE_SECRET_KEY`` / ``..._SERVER_KEY``.
    """

    def __init__(
        self,
        bootstrap: str | None = None,
        acks: int | str = "all",
        linger_ms: float = 5,
        batch_bytes: int = 512 * 1024,
        compression: str | None = None,
        enable_idempotence: bool = True,
        client_id: str | None = None,
        request_timeout_ms: float = 30_000,
        delivery_timeout_ms: float = 120_000,
        max_block_ms: float = 60_000,
        buffer_memory: int = 32 * 1024 * 1024,
        max_request_size: int = 1024 * 1024,
        max_in_flight: int = 5,
        retries: int = 2**31 - 1,
        retry_backoff_ms: float = 100,
        metadata_max_age_ms: float = 300_000,
        curve_secret_key: str | os.PathLike[str] | None = None,
        curve_server_key: str | os.PathLike[str] | None = None,
    ) -> None:
        socket_setup = curve_setup(curve_secret_key, curve_server_key)
        self.bootstrap = resolve_bootstrap(bootstrap)
        self.acks = parse_acks(acks)
        if not isinstance(enable_idempotence, bool):
            raise InvalidConfigError(f"enable_idempotence must be True or False, got {enable_idempotence!r}")
        self.client_id = client_id if client_id is not None else f"kbroker-producer-{uuid.uuid4().hex[:8]}"
        if not isinstance(self.client_id, str) or not self.client_id:
            raise InvalidConfigError(f"client_id must be a non-empty string, got {client_id!r}")
        request_timeout = check_ms("request_timeout_ms", request_timeout_ms, minimum=1)
        self._max_block_s = check_ms("max_block_ms", max_block_ms) / 1000
        self.idempotent = enable_idempotence and self.acks != 0
        self._wake = WakeSignal()
        try:
            self._acc = Accumulator(
                batch_bytes=check_count("batch_bytes", batch_bytes),
                linger_ms=check_ms("linger_ms", linger_ms),
                buffer_memory=check_count("buffer_memory", buffer_memory),
                max_block_ms=self._max_block_s * 1000,
                max_request_size=check_count("max_request_size", max_request_size),
                max_in_flight=check_count("max_in_flight", max_in_flight),
                retries=check_count("retries", retries, minimum=0),
                retry_backoff_ms=check_ms("retry_backoff_ms", retry_backoff_ms),
                delivery_timeout_ms=check_ms("delivery_timeout_ms", delivery_timeout_ms, minimum=1),
                idempotent=self.idempotent,
                compression=compression,
                wakeup=self._wake.set,
            )
        except ValueError as exc:
            raise InvalidConfigError(str(exc)) from None
        self._cache = MetadataCache(max_age_s=check_ms("metadata_max_age_ms", metadata_max_age_ms) / 1000)
        self._meta = threading.Condition()
        self._closed = False
        self._close_lock = threading.Lock()
        self._sender = Sender(
            bootstrap=self.bootstrap,
            accumulator=self._acc,
            cache=self._cache,
            meta_lock=self._meta,
            wake=self._wake,
            client_id=self.client_id,
            acks=self.acks,
            request_timeout_s=request_timeout / 1000,
            socket_setup=socket_setup,
        )
        self._sender.start()

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Producer({self.bootstrap!r}, acks={self.acks}{', closed' if self._closed else ''})"

    # --- sending --------------------------------------------------------------------------

    def send(
        self,
        topic: str,
        value: bytes | str | None,
        key: bytes | str | None = None,
        headers: Iterable[tuple[str, bytes | str]] | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> RecordFuture:
        """Queue one record; returns its future. Blocks only for new topics' metadata or buffer room."""
        if self._closed:
            raise RuntimeError("cannot send: the producer is closed")
        view = self._cache.topic(topic)
        if view is None:
            view = self._wait_for_topic(topic)
        elif key is None and headers is None and partition is None and timestamp_ms is None:
            future = self._acc.append_to_sticky(topic, value, view.num_partitions)  # the common case, lean
            if future is not None:
                return future
        return self._acc.send(
            topic, value, key, headers, partition, timestamp_ms,
            num_partitions=view.num_partitions, available=view.available,
        )  # fmt: skip

    def send_many(self, topic: str, values: Sequence[bytes | str | None]) -> SendManyFuture:
        """Queue keyless records (``values`` in order, no headers, timestamps now) with one future
        for all of them: the bulk path, like a pipeline of XADDs, for producers whose per-record
        ``send`` would be the bottleneck (about 0.3 µs per record instead of 1.3). The records go
        where ``send`` would put them one by one (sticky partitions), with the same batching, acks,
        idempotence and ordering. Blocks like ``send`` for metadata or buffer room."""
        if self._closed:
            raise RuntimeError("cannot send: the producer is closed")
        if isinstance(values, (bytes, str)):
            raise TypeError("send_many takes a sequence of values, not one value: use send()")
        values = values if isinstance(values, (list, tuple)) else list(values)
        view = self._cache.topic(topic)
        if view is None:
            view = self._wait_for_topic(topic)
        return SendManyFuture(self._acc.append_many(topic, values, view.num_partitions, view.available), len(values))

    def _wait_for_topic(self, topic: str) -> TopicView:
        """The topic's metadata, asking the broker (auto-creation) and waiting up to max_block_ms."""
        if not isinstance(topic, str) or not topic:
            from kbroker.errors import InvalidTopicError

            raise InvalidTopicError(f"topic must be a non-empty string, got {topic!r}")
        deadline = time.monotonic() + self._max_block_s
        with self._meta:
            self._cache.want([topic])
            self._wake.set()
            while True:
                view = self._cache.topic(topic)
                if view is not None and view.num_partitions > 0:
                    return view
                error = self._cache.topic_error(topic)
                if error is not None and not error.retriable:
                    raise error
                fatal = self._sender.fatal
                if fatal is not None or not self._sender.alive:
                    raise fatal or RuntimeError("the producer is closed")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _no_metadata(topic, error, self._max_block_s)
                self._meta.wait(remaining)

    def flush(self, timeout: float | None = None) -> None:
        """Send everything queued now and wait until each record is acknowledged or failed.

        Raises ``RequestTimedOutError`` if ``timeout`` seconds pass first (records keep going).
        """
        if not self._acc.flush(timeout):
            raise RequestTimedOutError(f"flush did not complete within {timeout}s; records are still being sent")

    # --- closing --------------------------------------------------------------------------

    def close(self, timeout: float | None = None) -> None:
        """Send what is queued (waiting up to ``timeout`` seconds, None: until done), then stop.

        Records still unsent after ``timeout`` fail with ``RequestTimedOutError``. Idempotent.
        """
        with self._close_lock:
            if self._closed and not self._sender.alive:
                return
            self._closed = True
            self._acc.close()
            self._sender.stop()
            if self._sender.on_this_thread:
                return  # close() from a callback: the I/O thread finishes and exits by itself
            if not self._sender.join(timeout):
                self._acc.abort(RequestTimedOutError(f"the producer was closed with records unsent after {timeout}s"))
                self._sender.abort()
                self._sender.join(None)
            self._wake.close()


def _no_metadata(topic: str, error: KBrokerError | None, waited_s: float) -> KBrokerError:
    if error is not None:
        return type(error)(f"topic {topic!r} is not available after max_block_ms={waited_s * 1000:g}: {error.message}")
    return RequestTimedOutError(
        f"no metadata for topic {topic!r} within max_block_ms={waited_s * 1000:g}; is the broker running "
        "and reachable at the bootstrap address?"
    )
