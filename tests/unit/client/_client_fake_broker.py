"""A fake broker for Producer/Consumer unit tests: one ROUTER socket in a thread, real wire codec.

It plays the bootstrap endpoint and one worker at once (the metadata names its own endpoint as
the leader of every partition). Produce goes through ``ModelLeader`` (idempotent sequences
checked as Kafka's leader does); ``faults`` is a list of names consumed one per Produce
partition: "not_leader" (NotLeader, nothing written), "drop" (written, no reply at all: the client
times out and retries), "lost" (written, answered RequestTimedOut). Fetch and ListOffsets are
served from what was written. ``stop()`` ends the thread (tests wait on conditions, not sleeps).
"""

from __future__ import annotations

import threading
from collections import defaultdict

import zmq

from _client_helpers import ModelLeader
from kbroker.errors import NotLeaderError
from kbroker.storage.records import BatchBuilder
from kbroker.transport.client.types import TopicPartition
from kbroker.transport.codec import decode, encode
from kbroker.transport.messages_client import (
    EARLIEST_TIMESTAMP,
    Fetch,
    FetchPartitionResponse,
    FetchResponse,
    FetchTopicResponse,
    InitProducerId,
    InitProducerIdResponse,
    ListOffsets,
    ListOffsetsPartitionResponse,
    ListOffsetsResponse,
    ListOffsetsTopicResponse,
    Metadata,
    MetadataResponse,
    PartitionMetadata,
    Produce,
    ProducePartitionResponse,
    ProduceResponse,
    ProduceTopicResponse,
    TopicMetadata,
    WorkerEndpoint,
)


class FakeBroker:
    def __init__(self, partitions: dict[str, int]) -> None:
        self.partitions = dict(partitions)
        self.leader = ModelLeader()
        self.faults: list[str | None] = []
        self.requests: dict[str, int] = defaultdict(int)
        self.batches: dict[TopicPartition, list[bytes]] = defaultdict(list)  # stored, offsets assigned
        self._lock = threading.Lock()
        self._context = zmq.Context.instance()
        self._socket = self._context.socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.bind("tcp://127.0.0.1:*")
        self.endpoint = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-broker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        assert not self._thread.is_alive()

    def values(self, tp: TopicPartition) -> list[bytes]:
        with self._lock:
            return list(self.leader.values(tp))

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if not self._socket.poll(20):
                    continue
                identity, *frames = self._socket.recv_multipart(copy=True)
                decoded = decode(frames)
                with self._lock:
                    self.requests[type(decoded.message).__name__] += 1
                    reply = self._handle(decoded.message)
                if reply is not None:
                    self._socket.send_multipart([identity, *encode(reply, decoded.correlation_id)], copy=False)
        finally:
            self._socket.close(linger=0)

    def _handle(self, message: object) -> object:
        if isinstance(message, Metadata):
            names = message.topics if message.topics is not None else tuple(self.partitions)
            topics = []
            for name in names:
                if name not in self.partitions:
                    self.partitions[name] = 1  # auto-create
                parts = tuple(PartitionMetadata(p, 0, 0, 1, (0,), (0,)) for p in range(self.partitions[name]))
                topics.append(TopicMetadata(name, 0, None, parts))
            return MetadataResponse((WorkerEndpoint(0, self.endpoint),), -1, tuple(topics))
        if isinstance(message, InitProducerId):
            return InitProducerIdResponse(0, None, 7, message.producer_epoch + 1 if message.producer_id >= 0 else 0)
        if isinstance(message, Produce):
            return self._produce(message)
        if isinstance(message, Fetch):
            return self._fetch(message)
        if isinstance(message, ListOffsets):
            return self._list_offsets(message)
        raise AssertionError(f"unexpected {message!r}")

    def _produce(self, message: Produce) -> object:
        answers = []
        drop = False
        for topic in message.topics:
            parts = []
            for part in topic.partitions:
                tp = TopicPartition(topic.name, part.partition)
                fault = self.faults.pop(0) if self.faults else None
                if fault == "not_leader":
                    code, base = NotLeaderError.code, -1
                else:
                    code, base = self.leader.produce(tp, bytes(part.records), "lost" if fault == "lost" else None)
                    drop = drop or fault == "drop"
                parts.append(ProducePartitionResponse(part.partition, code, None, base, -1, 0, -1, -1))
            answers.append(ProduceTopicResponse(topic.name, tuple(parts)))
        if drop or message.acks == 0:
            return None
        return ProduceResponse(tuple(answers), 0)

    def _stored(self, tp: TopicPartition) -> bytes:
        builder = BatchBuilder()
        for value in self.leader.values(tp):
            builder.append(value, key=b"k")
        return builder.build() if self.leader.values(tp) else b""

    def _fetch(self, message: Fetch) -> FetchResponse:
        topics = []
        for topic in message.topics:
            parts = []
            for part in topic.partitions:
                tp = TopicPartition(topic.name, part.partition)
                hw = len(self.leader.values(tp))
                data = self._stored(tp) if part.fetch_offset < hw else None
                parts.append(FetchPartitionResponse(part.partition, 0, None, hw, hw, 0, 0, 1, data))
            topics.append(FetchTopicResponse(topic.name, tuple(parts)))
        return FetchResponse(0, 0, tuple(topics))

    def _list_offsets(self, message: ListOffsets) -> ListOffsetsResponse:
        topics = []
        for topic in message.topics:
            parts = []
            for part in topic.partitions:
                hw = len(self.leader.values(TopicPartition(topic.name, part.partition)))
                offset = 0 if part.timestamp == EARLIEST_TIMESTAMP else hw
                parts.append(ListOffsetsPartitionResponse(part.partition, 0, None, -1, offset, 1))
            topics.append(ListOffsetsTopicResponse(topic.name, tuple(parts)))
        return ListOffsetsResponse(tuple(topics))
