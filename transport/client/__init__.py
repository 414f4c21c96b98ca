"""kbroker.transport.client: the socket-free core of the client bindings.

- ``types``: the public result types (``TopicPartition``, ``RecordMetadata``, ``Record``,
  ``WorkerInfo``, ``TopicInfo``, ``PartitionInfo``, ``GroupInfo``, ``GroupPartition``,
  ``TimestampType``) and ``normalize_bootstrap`` / ``parse_acks``
- ``partitioner``: Kafka's murmur2 key partitioning and KIP-480 sticky partitioning
- ``record_input``: validation of keys, values, headers and timestamps handed to ``send``
- ``producer_batch``: ``ProducerBatch`` (its lifecycle as a state table) and ``RecordFuture``
- ``accumulator``: ``Accumulator``, the producer's batching, sequencing, retries and futures
- ``records``: fetch-response batches -> ``Record`` objects (``records_from_fetch``)
- ``metadata_cache``: ``MetadataCache``, leaders per partition and when to refresh

Everything above is pure or uses only ``threading`` (the accumulator's lock and the futures'
events). ``Producer`` (``producer``, its I/O thread ``sender``), ``Consumer`` (``consumer``,
``fetcher``) and ``Admin`` (``admin``) wire it to ``transport.connection`` (shared bits in ``common``).
Names are loaded lazily (PEP 562).
"""

from __future__ import annotations

from kbroker._lazy import lazy_exports

_LAZY: dict[str, str] = {
    "Admin": "kbroker.transport.client.admin",
    "Consumer": "kbroker.transport.client.consumer",
    "Producer": "kbroker.transport.client.producer",
    "Accumulator": "kbroker.transport.client.accumulator",
    "Action": "kbroker.transport.client.accumulator",
    "Drained": "kbroker.transport.client.accumulator",
    "PartitionOutcome": "kbroker.transport.client.accumulator",
    "FetchedRecords": "kbroker.transport.client.records",
    "records_from_fetch": "kbroker.transport.client.records",
    "MetadataCache": "kbroker.transport.client.metadata_cache",
    "PartitionLeader": "kbroker.transport.client.metadata_cache",
    "TopicView": "kbroker.transport.client.metadata_cache",
    "Partitioner": "kbroker.transport.client.partitioner",
    "murmur2": "kbroker.transport.client.partitioner",
    "partition_for_key": "kbroker.transport.client.partitioner",
    "ProducerBatch": "kbroker.transport.client.producer_batch",
    "RecordFuture": "kbroker.transport.client.producer_batch",
    "GroupInfo": "kbroker.transport.client.types",
    "GroupPartition": "kbroker.transport.client.types",
    "PartitionInfo": "kbroker.transport.client.types",
    "Record": "kbroker.transport.client.types",
    "RecordMetadata": "kbroker.transport.client.types",
    "TimestampType": "kbroker.transport.client.types",
    "TopicInfo": "kbroker.transport.client.types",
    "TopicPartition": "kbroker.transport.client.types",
    "WorkerInfo": "kbroker.transport.client.types",
    "normalize_bootstrap": "kbroker.transport.client.types",
    "parse_acks": "kbroker.transport.client.types",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)
