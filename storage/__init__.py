"""kbroker.storage: the segmented, crash-safe partition log.

Pure library: no sockets, no threads. One ``Log`` per replica, owned by one actor.

- ``batch``: the record batch header (what the broker reads and patches, never decoding records)
- ``records``: building and decoding the records inside a batch
- ``compression``: codecs for batch bodies
- ``segment`` / ``index``: one segment file and its sparse offset and time indexes
- ``log``: the segmented log (append, read, truncate, retention, recovery, checkpoints)
- ``log_rules``: the pure rules the disk log and its memory twin share
- ``memory_log``: ``MemoryLog``, the in-memory twin used as a test double for the layers above
- ``cleaner``: compaction (latest record per key)
- ``epoch_cache``: leader epoch history for follower truncation (KIP-101)
- ``config``: the typed topic configuration
- ``faults``: named fault points for tests
"""

from kbroker.storage.batch import BatchHeader, validate_batch
from kbroker.storage.config import TopicConfig
from kbroker.storage.log import AppendResult, Log, ReadResult
from kbroker.storage.memory_log import MemoryLog
from kbroker.storage.records import BatchBuilder, LogRecord, build_batch, decode_batch, decode_batches

__all__ = [
    "AppendResult",
    "BatchBuilder",
    "BatchHeader",
    "Log",
    "LogRecord",
    "MemoryLog",
    "ReadResult",
    "TopicConfig",
    "build_batch",
    "decode_batch",
    "decode_batches",
    "validate_batch",
]
