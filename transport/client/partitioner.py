"""Choosing a record's partition, exactly as Kafka's default partitioner does.

- An explicit ``partition`` is used as given (after a range check).
- A key goes to ``toPositive(murmur2(key)) % num_partitions`` with Kafka's ``Utils.murmur2``
  (seed 0x9747b28c, Java's signed 32-bit arithmetic), so a key lands on the same partition
  number as with a Java, kafka-python or librdkafka (``murmur2_random``) producer.
- A record without a key goes to the topic's *sticky* partition (Kafka's KIP-480): every keyless
  record of a topic goes to one partition until the batch being filled there is full or sent;
  then the producer asks for a new one (``on_new_batch``), picked at random among the partitions
  that have a leader (``available``), never the one just left when another is available.

The accumulator drives the sticky part (``Accumulator.send``): it appends with
``abort_on_new_batch`` and calls ``on_new_batch`` when the append would have opened a batch.

Pure: no sockets, no threads; the random generator is injected for tests. Shared by the threads
that call ``send`` without a lock, as Kafka's ``StickyPartitionCache`` is: each step is one dict
operation under the GIL, and the worst a race does is move a topic's sticky partition twice.
"""

from __future__ import annotations

import random
from struct import Struct
from typing import Sequence

from kbroker.errors import InvalidRequestError, UnknownTopicOrPartitionError

__all__ = ["murmur2", "to_positive", "partition_for_key", "Partitioner"]

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MAX_WORDS_CACHED = 64  # keys up to 256 bytes get a precompiled struct
_HASH_CACHE_SIZE = 1 << 16  # keys remembered by Partitioner before the memo is cleared
_HASH_CACHE_KEY_BYTES = 64  # longer keys are hashed every time (bounds the memo's memory)

_UNPACK_WORDS = [Struct(f"<{n}I").unpack_from for n in range(_MAX_WORDS_CACHED + 1)]


def _murmur2_unsigned(
    data: bytes | bytearray | memoryview, _unpack: list = _UNPACK_WORDS, _from_bytes=int.from_bytes
) -> int:
    """Kafka's murmur2 as an unsigned 32-bit value (the same bits as Java's int).

    Java's ``int`` wraps at 32 bits; here every product is masked instead, and the final value is
    the same bit pattern. Little-endian 4-byte words, then the 1-3 tail bytes as one little-endian
    number (Java's fall-through ``switch``), then the final mix.
    """
    length = len(data)
    h = _SEED ^ length
    m = _M
    nwords = length >> 2
    if nwords:
        words = _unpack[nwords](data) if nwords <= _MAX_WORDS_CACHED else Struct(f"<{nwords}I").unpack_from(data)
        for k in words:
            k = (k * m) & 0xFFFFFFFF
            h = ((h * m) ^ ((k ^ (k >> 24)) * m)) & 0xFFFFFFFF  # (a & M) ^ (b & M) == (a ^ b) & M
        if length & 3:
            h = ((h ^ _from_bytes(data[nwords << 2 :], "little")) * m) & 0xFFFFFFFF
    elif length:
        h = ((h ^ _from_bytes(data, "little")) * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    return h ^ (h >> 15)


def murmur2(data: bytes | bytearray | memoryview) -> int:
    """Kafka's ``Utils.murmur2(byte[])``: a signed 32-bit int, bit for bit."""
    h = _murmur2_unsigned(data)
    return h - 0x100000000 if h & 0x80000000 else h


def to_positive(number: int) -> int:
    """Kafka's ``Utils.toPositive``: clear the sign bit (not ``abs``)."""
    return number & 0x7FFFFFFF


def partition_for_key(key: bytes | bytearray | memoryview, num_partitions: int) -> int:
    """``toPositive(murmur2(key)) % num_partitions``: Kafka's partition for a keyed record."""
    return (_murmur2_unsigned(key) & 0x7FFFFFFF) % num_partitions


class Partitioner:
    """Kafka's default partitioner: explicit partition, else murmur2 of the key, else sticky."""

    __slots__ = ("_sticky", "_rng", "_hashes")

    def __init__(self, rng: random.Random | None = None) -> None:
        self._sticky: dict[str, int] = {}
        self._rng = rng if rng is not None else random.Random()
        # key -> toPositive(murmur2(key)): murmur2 in Python costs ~0.1 us per 4 key bytes, a
        # repeated key (user ids, order ids) ~0.05 us. Bounded: cleared when full.
        self._hashes: dict[bytes, int] = {}

    def partition(
        self,
        topic: str,
        key: bytes | None,
        num_partitions: int,
        partition: int | None = None,
        available: Sequence[int] | None = None,
    ) -> int:
        """The partition for one record.

        ``key`` is ``bytes`` or None; ``available`` lists the partitions that have a leader (None:
        all of them; empty: none, so keyless records go to a random partition).
        """
        if partition is not None:
            return check_partition(topic, partition, num_partitions)
        if key is not None:
            return self.key_hash(key) % num_partitions
        return self.sticky_partition(topic, num_partitions, available)

    def key_hash(self, key: bytes) -> int:
        """``toPositive(murmur2(key))``, remembered for short keys."""
        hashes = self._hashes
        h = hashes.get(key)
        if h is None:
            h = _murmur2_unsigned(key) & 0x7FFFFFFF
            if len(key) <= _HASH_CACHE_KEY_BYTES:
                if len(hashes) >= _HASH_CACHE_SIZE:
                    hashes.clear()
                hashes[key] = h
        return h

    def sticky_map(self) -> dict[str, int]:
        """topic -> its sticky partition (read by the accumulator's keyless fast path; written here only)."""
        return self._sticky

    def sticky_partition(self, topic: str, num_partitions: int, available: Sequence[int] | None = None) -> int:
        """The topic's current sticky partition, choosing one the first time."""
        current = self._sticky.get(topic)
        if current is not None and current < num_partitions:
            return current
        return self._choose(topic, None, num_partitions, available)

    def on_new_batch(
        self, topic: str, prev_partition: int, num_partitions: int, available: Sequence[int] | None = None
    ) -> int:
        """A keyless record for ``prev_partition`` would open a new batch: move the topic on.

        As Kafka's ``StickyPartitionCache.nextPartition``: only changes the sticky partition if it
        still is ``prev_partition`` (another thread may have moved it already); returns the
        partition to use now.
        """
        current = self._sticky.get(topic)
        if current is not None and current != prev_partition and current < num_partitions:
            return current
        return self._choose(topic, current, num_partitions, available)

    def _choose(self, topic: str, old: int | None, num_partitions: int, available: Sequence[int] | None) -> int:
        if num_partitions < 1:
            raise UnknownTopicOrPartitionError(f"topic {topic!r} has no partitions (yet); refresh metadata and retry")
        if available is None:
            candidates: Sequence[int] = range(num_partitions)  # not told: all of them
        else:
            candidates = [p for p in available if p < num_partitions]
        if not candidates:
            new = self._rng.randrange(num_partitions)
        elif len(candidates) == 1:
            new = candidates[0]
        else:
            new = old
            while new is None or new == old:
                new = candidates[self._rng.randrange(len(candidates))]
        self._sticky[topic] = new
        return new


def check_partition(topic: str, partition: object, num_partitions: int) -> int:
    """An explicit partition, checked against the topic's partition count."""
    if not isinstance(partition, int) or isinstance(partition, bool):
        raise InvalidRequestError(f"partition must be an int, not {type(partition).__name__}")
    if not 0 <= partition < num_partitions:
        raise UnknownTopicOrPartitionError(
            f"partition {partition} of topic {topic!r} does not exist: the topic has {num_partitions} "
            f"partition{'s' if num_partitions != 1 else ''} (0..{num_partitions - 1}); "
            "pick one in range or leave partition=None"
        )
    return partition
