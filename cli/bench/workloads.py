"""kbroker workloads, through the public client (``Producer``, ``Consumer``, ``Admin``).

- ``produce``: ``--producers`` clients (1: in this process; more: one spawned process each) send
  records of ``record_size`` bytes, keyless (sticky partitioning) or over ``key_count`` keys, paced
  at ``rate`` records/s when given, for ``records`` records or ``duration_s`` seconds; the clock
  runs from the first send to the end of ``flush()`` (connections and metadata are warmed up
  first, as a long-running client has them).
- ``consume``: ``--consumers`` clients split the partitions (``assign``, partition % n) and read
  from offset 0 up to the high watermark seen when the run starts.
- ``latency``: end to end, produce to consumer receive. A consumer in a second process polls the
  topic; the producer (acks as given, ``linger_ms=0``) sends at ``rate`` records/s, each value
  starting with the send time (``time.monotonic_ns``, one clock for every process of this
  machine); the consumer takes receive time minus send time. The producer's own ack latency
  (send to future done) is reported beside it. Pacing is Kafka's perf-test throttler's: the
  producer sleeps only when it is ``pace_ms`` (2 ms) ahead of the rate, so it sends what is due
  in short bursts (20 records at 10,000/s) instead of waking for every record; ``pace_ms`` 0
  sends each record on its own schedule. Each record's latency starts when it is handed to
  ``send``, whichever way it is paced.

Every runner takes ``advance(n)`` for a progress bar and returns a dict of figures (``stats``).
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from typing import Any, Callable

from kbroker.cli.bench import stats
from kbroker.cli.bench.options import BenchOptions

__all__ = ["create_topic", "produce", "consume", "latency", "make_value"]

Advance = Callable[[int], None]
CHUNK = 5000  # records between progress updates and pacing checks
RUN_TIMEOUT_S = 600.0
_MP = multiprocessing.get_context("spawn")


def _noop(n: int) -> None:
    pass


def make_value(size: int) -> bytes:
    """A value of ``size`` bytes of letters (compressible, as Kafka's perf-test payloads)."""
    pattern = b"kbroker-benchmark-payload-ABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789-"
    return (pattern * (size // len(pattern) + 1))[:size]


def create_topic(bootstrap: str, name: str, partitions: int, replication_factor: int, timeout_s: float = 60) -> None:
    """Create ``name`` and wait until every partition has a leader and a full ISR."""
    from kbroker import Admin

    with Admin(bootstrap, timeout=30) as admin:
        admin.create_topic(name, partitions=partitions, replication_factor=replication_factor)
        deadline = time.monotonic() + timeout_s
        while True:
            info = admin.describe_topic(name)
            if all(p.leader >= 0 and len(p.isr) == replication_factor for p in info.partitions):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"topic {name!r} has no leader or full ISR after {timeout_s:g} s: {info.partitions}")
            time.sleep(0.02)  # polling the topic's state with a deadline


def _producer(bootstrap: str, opts: BenchOptions, **overrides: Any) -> Any:
    from kbroker import Producer

    settings: dict[str, Any] = dict(
        acks=opts.acks_value, linger_ms=opts.linger_ms, batch_bytes=opts.batch_bytes, max_in_flight=opts.max_in_flight,
        compression=opts.compression_value, buffer_memory=max(64 << 20, 4 * opts.batch_bytes),
        max_request_size=max(1 << 20, opts.batch_bytes + (1 << 16)),
    )  # fmt: skip
    settings.update(overrides)
    return Producer(bootstrap, **settings)


def _produce_loop(bootstrap: str, topic: str, opts: BenchOptions, records: int, advance: Advance) -> tuple[float, float, int]:
    """One producer; returns (start, end, records sent) on the ``perf_counter`` clock."""
    value = make_value(opts.record_size)
    keys = [b"key-%d" % i for i in range(opts.key_count)]
    nkeys = len(keys)
    with _producer(bootstrap, opts) as producer:
        producer.send(topic, value).result(60)  # connections and metadata: not measured
        send = producer.send
        last = []
        sent = 0
        limit = records if opts.duration_s == 0 else 1 << 62
        chunk = max(1, min(CHUNK, int(opts.rate // 100))) if opts.rate else CHUNK  # paced every ~10 ms
        started = time.perf_counter()
        until = started + opts.duration_s
        while sent < limit:
            n = min(chunk, limit - sent)
            if nkeys:
                for i in range(sent, sent + n - 1):
                    send(topic, value, keys[i % nkeys])
                last.append(send(topic, value, keys[(sent + n - 1) % nkeys]))
            elif opts.send_many:  # the bulk API: one future per call of opts.send_many records
                for start in range(0, n, opts.send_many):
                    last.append(producer.send_many(topic, [value] * min(opts.send_many, n - start)))
            else:
                for _ in range(n - 1):
                    send(topic, value)
                last.append(send(topic, value))  # one future per chunk is checked after flush
            sent += n
            advance(n)
            now = time.perf_counter()
            if opts.duration_s and now >= until:
                break
            if opts.rate:
                due = started + sent / opts.rate
                if due > now:
                    time.sleep(due - now)  # pacing the load to --rate, not synchronising
        producer.flush(RUN_TIMEOUT_S)
        ended = time.perf_counter()
        failed = next((f.exception() for f in last if f.exception() is not None), None)
        if failed is not None:
            raise RuntimeError(f"records were not delivered: {failed}")
    return started, ended, sent


def _produce_child(bootstrap: str, topic: str, opts: BenchOptions, records: int, counter: Any, results: Any) -> None:
    def advance(n: int) -> None:
        with counter.get_lock():
            counter.value += n

    try:
        results.put(("ok", _produce_loop(bootstrap, topic, opts, records, advance)))
    except BaseException as exc:  # reported to the parent, which raises it
        results.put(("error", repr(exc)))


def _in_processes(target: Callable[..., None], args_per_child: list[tuple], advance: Advance) -> list[Any]:
    """Run ``target(*args, counter, results)`` in one spawned process each; forward progress."""
    counter = _MP.Value("q", 0)
    results = _MP.Queue()
    children = [_MP.Process(target=target, args=(*args, counter, results), daemon=True) for args in args_per_child]
    for child in children:
        child.start()
    out: list[Any] = []
    seen = 0
    deadline = time.monotonic() + RUN_TIMEOUT_S
    try:
        while len(out) < len(children):
            try:
                out.append(results.get(timeout=0.2))
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise RuntimeError("benchmark clients did not finish in time") from None
                if all(not c.is_alive() for c in children) and results.empty():
                    raise RuntimeError("a benchmark client process died") from None
            now = counter.value
            advance(now - seen)
            seen = now
    finally:
        for child in children:
            child.join(5)
            if child.is_alive():
                child.kill()
    advance(counter.value - seen)
    errors = [detail for status, detail in out if status == "error"]
    if errors:
        raise RuntimeError(f"a benchmark client failed: {errors[0]}")
    return [detail for _, detail in out]


def produce(bootstrap: str, topic: str, opts: BenchOptions, advance: Advance = _noop) -> dict[str, Any]:
    if opts.producers == 1:
        spans = [_produce_loop(bootstrap, topic, opts, opts.records, advance)]
    else:
        share = [opts.records // opts.producers + (i < opts.records % opts.producers) for i in range(opts.producers)]
        each = opts.with_(rate=opts.rate / opts.producers)  # --rate is the total over every producer
        spans = _in_processes(_produce_child, [(bootstrap, topic, each, n) for n in share], advance)
    seconds = max(end for _, end, _ in spans) - min(start for start, _, _ in spans)
    return stats.rates(sum(sent for _, _, sent in spans), opts.record_size, seconds)


def _end_offsets(bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
    from kbroker import Admin

    with Admin(bootstrap, timeout=30) as admin:
        return {p.partition: (p.log_start_offset, p.high_watermark) for p in admin.describe_topic(topic).partitions}


def _consume_loop(bootstrap: str, topic: str, ends: dict[int, tuple[int, int]], advance: Advance) -> tuple[float, float, int]:
    from kbroker import Consumer, TopicPartition

    target = sum(high - low for low, high in ends.values())
    got = 0
    with Consumer(bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=10_000) as consumer:
        consumer.assign([TopicPartition(topic, p) for p in ends])
        started = time.perf_counter()
        deadline = time.monotonic() + RUN_TIMEOUT_S
        poll = consumer.poll
        while got < target:
            n = len(poll(500))
            got += n
            advance(n)
            if time.monotonic() > deadline:
                raise RuntimeError(f"read {got} of {target} records of {topic!r} in {RUN_TIMEOUT_S:g} s")
        ended = time.perf_counter()
    return started, ended, got


def _consume_child(bootstrap: str, topic: str, ends: dict[int, tuple[int, int]], counter: Any, results: Any) -> None:
    def advance(n: int) -> None:
        with counter.get_lock():
            counter.value += n

    try:
        results.put(("ok", _consume_loop(bootstrap, topic, ends, advance)))
    except BaseException as exc:
        results.put(("error", repr(exc)))


def consume(bootstrap: str, topic: str, opts: BenchOptions, advance: Advance = _noop) -> dict[str, Any]:
    ends = _end_offsets(bootstrap, topic)
    if opts.consumers == 1:
        spans = [_consume_loop(bootstrap, topic, ends, advance)]
    else:
        shares = [{p: e for p, e in ends.items() if p % opts.consumers == i} for i in range(opts.consumers)]
        spans = _in_processes(_consume_child, [(bootstrap, topic, s) for s in shares if s], advance)
    seconds = max(end for _, end, _ in spans) - min(start for start, _, _ in spans)
    return stats.rates(sum(got for _, _, got in spans), opts.record_size, seconds)


def _latency_consumer(bootstrap: str, topic: str, partitions: list[int], expected: int, conn: Any) -> None:
    """Second process: report "warm" on the first warm-up record, then every measured latency."""
    from kbroker import Consumer, TopicPartition

    samples: list[float] = []
    try:
        warm = False
        with Consumer(bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, fetch_max_wait_ms=100) as consumer:
            consumer.assign([TopicPartition(topic, p) for p in partitions])
            deadline = time.monotonic() + RUN_TIMEOUT_S
            while len(samples) < expected and time.monotonic() < deadline:
                for record in consumer.poll(100):
                    now = time.monotonic_ns()
                    sent = int.from_bytes(record.value[:8], "big")
                    if sent == 0:
                        if not warm:
                            warm = True
                            conn.send("warm")
                    else:
                        samples.append((now - sent) / 1e6)
        conn.send(("ok", samples))
    except BaseException as exc:
        conn.send(("error", repr(exc)))


def latency(bootstrap: str, topic: str, opts: BenchOptions, advance: Advance = _noop) -> dict[str, Any]:
    if opts.rate <= 0:
        raise ValueError("a latency run needs --rate")
    parent, child = _MP.Pipe()
    consumer = _MP.Process(
        target=_latency_consumer, args=(bootstrap, topic, list(range(opts.partitions)), opts.records, child), daemon=True
    )
    consumer.start()
    acks_ms: list[float] = []
    try:
        padding = make_value(max(0, opts.record_size - 8))
        with _producer(bootstrap, opts, linger_ms=0) as producer:
            deadline = time.monotonic() + 60
            while not parent.poll(0.05):  # warm-up records until the consumer sees one
                producer.send(topic, bytes(8) + padding).result(30)
                if time.monotonic() > deadline or not consumer.is_alive():
                    raise RuntimeError("the latency consumer did not receive the warm-up records")
            if (first := parent.recv()) != "warm":
                raise RuntimeError(f"the latency consumer failed before the run: {first[1]}")
            monotonic_ns = time.monotonic_ns
            send = producer.send

            def acked(sent_ns: int) -> Callable[[Any], None]:
                return lambda _future: acks_ms.append((monotonic_ns() - sent_ns) / 1e6)

            started = time.perf_counter()
            sent = 0
            ahead = opts.pace_ms / 1000  # send what is due this far ahead, then sleep (0: one record a time)
            while sent < opts.records:
                due = min(opts.records, int((time.perf_counter() - started + ahead) * opts.rate) + 1)
                advance(due - sent)
                while sent < due:
                    now = monotonic_ns()
                    send(topic, now.to_bytes(8, "big") + padding).add_done_callback(acked(now))
                    sent += 1
                wait = started + sent / opts.rate - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)  # pacing the load to --rate, not synchronising
            producer.flush(RUN_TIMEOUT_S)
            produce_s = time.perf_counter() - started
        if not parent.poll(RUN_TIMEOUT_S):
            raise RuntimeError("the latency consumer did not report")
        status, detail = parent.recv()
        if status != "ok":
            raise RuntimeError(f"the latency consumer failed: {detail}")
    finally:
        consumer.join(10)
        if consumer.is_alive():
            consumer.kill()
    result: dict[str, Any] = {"records": opts.records, "rate": opts.rate, "achieved_rate": opts.records / produce_s}
    if len(detail) < opts.records:
        raise RuntimeError(f"the consumer received {len(detail)} of {opts.records} records in time")
    result.update(stats.latency_summary(detail))
    result["ack"] = stats.latency_summary(acks_ms)
    return result
