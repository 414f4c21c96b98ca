"""Three replica cores in one process, wired by an in-test message pump that can hold, drop or cut
traffic, with a tiny controller (elections, AlterIsr). Every message goes through the wire codec.

Checked while it runs: a high watermark never moves backward; an acks=all produce succeeds only when
every ISR member holds the same bytes up to its last offset. Checked at the end: all replicas
identical, every acknowledged record present exactly once.
"""

from __future__ import annotations

import random
from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from kbroker.actors.replica_outbox import Outbox, ProduceResult, ReplicaSettings
from kbroker.actors.replica_state import ReplicaState
from kbroker.storage.config import TopicConfig
from kbroker.storage.memory_log import MemoryLog
from kbroker.storage.records import build_batch, decode_batches
from kbroker.transport.codec import decode, encode
from kbroker.transport.messages_internal import (
    AlterIsr,
    AlterIsrResponse,
    OffsetForLeaderEpoch,
    OffsetForLeaderEpochResponse,
    PartitionState,
    ReplicaAppend,
    ReplicaAppendAck,
    ReplicaFetch,
    ReplicaFetchResponse,
)

T0 = 1_700_000_000_000
LAG = 2_000
SETTINGS = ReplicaSettings(replica_lag_time_max_ms=LAG, request_timeout_ms=1_000)
CONTROLLER = -100
HANDLERS = {
    ReplicaAppend: ReplicaState.on_replica_append,
    ReplicaAppendAck: ReplicaState.on_replica_append_ack,
    ReplicaFetch: ReplicaState.on_replica_fetch,
    ReplicaFetchResponse: ReplicaState.on_replica_fetch_response,
    OffsetForLeaderEpoch: ReplicaState.on_offset_for_leader_epoch,
    OffsetForLeaderEpochResponse: ReplicaState.on_offset_for_leader_epoch_response,
    AlterIsrResponse: ReplicaState.on_alter_isr_response,
}


def wire(message):
    """Through the real codec and back: the message must be valid on the wire."""
    frames = encode(message, 1)
    return decode([bytes(f) for f in frames]).message


def contents(core: ReplicaState) -> list[bytes | None]:
    return [r.value for r in decode_batches(read_all(core))]


def read_all(core: ReplicaState) -> bytes:
    parts, offset = [], core.log_start_offset
    while offset < core.log_end_offset:
        chunk = core.log.read(offset, 1 << 20)
        parts.append(chunk.data)
        offset = chunk.next_offset
    return b"".join(parts)


class Net:
    def __init__(self, ids=(1, 2, 3), config: dict | None = None) -> None:
        self.now = T0
        self.config = TopicConfig.from_dict(config or {})
        self.replicas = tuple(ids)
        self.cores = {i: ReplicaState("t", 0, i, MemoryLog(self.config, clock=lambda: self.now), SETTINGS) for i in ids}
        self.queue: deque = deque()
        self.down: set[int] = set()  # dead workers: their traffic is lost both ways
        self.cut: set[tuple[int, int]] = set()  # one-way links that lose everything
        self.hold: set[int] = set()  # destinations whose traffic waits in self.held
        self.held: list = []
        self.drop_rate = 0.0
        self.rng = random.Random(0)
        self.leader, self.epoch, self.partition_epoch, self.isr = -1, 0, 0, ()
        self.results: dict[object, ProduceResult] = {}
        self.values: dict[object, bytes] = {}
        self.hw_seen = {i: 0 for i in ids}
        self._next_id = 0

    # ------------------------------------------------------------------ controller
    def state(self) -> PartitionState:
        return PartitionState(0, self.leader, self.epoch, self.partition_epoch, self.replicas, self.isr)

    def elect(self, leader: int, isr) -> None:
        self.leader, self.isr = leader, tuple(isr)
        self.epoch += 1
        self.partition_epoch += 1
        for i, core in self.cores.items():
            if i not in self.down:
                self.absorb(i, core.apply_partition_state(self.state(), self.now))
        self.pump()

    def restart(self, i: int) -> None:
        """Worker i comes back as a new process: same log, fresh core, told the current state."""
        self.down.discard(i)
        self.cores[i] = ReplicaState("t", 0, i, self.cores[i].log, SETTINGS)
        self.absorb(i, self.cores[i].apply_partition_state(self.state(), self.now))
        self.pump()

    def alter_isr(self, request: AlterIsr) -> None:
        if (request.leader_epoch, request.partition_epoch) != (self.epoch, self.partition_epoch):
            answer = AlterIsrResponse(95, "stale partition epoch", "t", 0, self.state())
        else:
            self.partition_epoch += 1
            self.isr = request.new_isr
            answer = AlterIsrResponse(0, None, "t", 0, self.state())
        self.queue.append((CONTROLLER, request.worker_id, answer))

    # ------------------------------------------------------------------ pump
    def absorb(self, src: int, out: Outbox) -> None:
        for send in out.to_replicas:
            self.queue.append((src, send.to, wire(send.message)))
        for request in out.to_controller:
            self.queue.append((src, CONTROLLER, wire(request)))
        for result in out.produce_results:
            self.results[result.request_id] = result
            if result.acks == -1 and result.error is None:
                self.check_committed(src, result)
        self.check_high_watermarks()

    def pump(self, limit: int = 100_000) -> None:
        for _ in range(limit):
            if not self.queue:
                return
            src, dst, message = self.queue.popleft()
            if src in self.down or dst in self.down or (src, dst) in self.cut:
                continue
            if self.drop_rate and self.rng.random() < self.drop_rate:
                continue
            if dst in self.hold:
                self.held.append((src, dst, message))
            elif dst == CONTROLLER:
                self.alter_isr(message)
            else:
                self.absorb(dst, HANDLERS[type(message)](self.cores[dst], message, self.now))
        raise AssertionError("the pump does not come to rest")

    def release(self) -> None:
        self.hold.clear()
        self.queue.extend(self.held)
        self.held.clear()
        self.pump()

    def run(self, ms: int, step: int = 50) -> None:
        end = self.now + ms
        while self.now < end:
            self.now += step
            for i, core in self.cores.items():
                if i not in self.down:
                    self.absorb(i, core.tick(self.now))
            self.pump()

    def produce(self, value: bytes, acks: int = -1, at: int | None = None) -> object:
        self._next_id += 1
        rid = self._next_id
        self.values[rid] = value
        leader = self.leader if at is None else at
        data = build_batch([(value, b"k", None, self.now)])
        self.absorb(leader, self.cores[leader].append_produce(data, acks, self.now, rid, timeout_ms=60_000))
        return rid

    def acknowledged(self) -> list[bytes]:
        return [self.values[r] for r, res in self.results.items() if res.acks == -1 and res.error is None]

    # ------------------------------------------------------------------ invariants
    def check_high_watermarks(self) -> None:
        for i, core in self.cores.items():
            assert core.high_watermark >= self.hw_seen[i], f"high watermark of {i} moved backward"
            self.hw_seen[i] = core.high_watermark

    def check_committed(self, leader: int, result: ProduceResult) -> None:
        isr = set(self.cores[leader].isr)
        assert len(isr) >= self.config.min_insync_replicas
        if self.cores[leader].leader_epoch == self.epoch:
            isr |= set(self.isr)  # what the controller elects from must hold it too
        expected = self.cores[leader].log.read(result.base_offset, 1 << 20, result.last_offset + 1).data
        for member in isr:
            core = self.cores[member]
            assert core.log_end_offset > result.last_offset, f"acks=all done but ISR member {member} lacks it"
            assert core.log.read(result.base_offset, 1 << 20, result.last_offset + 1).data == expected

    def settle(self, ms: int = 20_000) -> None:
        """Heal everything and let replication finish."""
        self.drop_rate = 0.0
        self.cut.clear()
        self.release()
        self.run(ms)

    def check_identical(self) -> None:
        leader = self.cores[self.leader]
        for core in self.cores.values():
            assert read_all(core) == read_all(leader)
            assert core.high_watermark == leader.high_watermark == leader.log_end_offset
        values = contents(leader)
        for value in self.acknowledged():
            assert values.count(value) == 1, value


def started(**config) -> Net:
    net = Net(config=config)
    net.elect(1, (1, 2, 3))
    net.run(100)
    return net


def test_acks_all_completes_only_when_every_isr_member_has_the_data() -> None:
    net = started()
    net.hold = {3}
    first = net.produce(b"a")
    net.pump()
    assert first not in net.results and net.cores[2].log_end_offset == 1
    assert net.cores[1].high_watermark == 0
    net.release()
    assert net.results[first].error is None and net.cores[1].high_watermark == 1
    ids = [net.produce(b"v%d" % i) for i in range(5)]  # pipelined: all pushed before any ack
    net.pump()
    assert [net.results[r].base_offset for r in ids] == [1, 2, 3, 4, 5]
    net.settle(2_000)
    net.check_identical()


def test_a_silent_follower_is_shrunk_out_and_rejoins_when_caught_up() -> None:
    net = started(**{"min.insync.replicas": 2})
    net.down.add(3)
    waiting = net.produce(b"x")
    net.run(LAG - 300)  # 3 was last caught up at about T0: out of the ISR after T0 + LAG
    assert waiting not in net.results and net.isr == (1, 2, 3)
    net.run(1_000)
    assert net.results[waiting].error is None and net.isr == (1, 2) == net.cores[1].isr
    for i in range(3):
        net.produce(b"y%d" % i)
        net.pump()
    assert len(net.acknowledged()) == 4
    net.restart(3)
    net.run(5_000)
    assert net.isr == (1, 2, 3) == net.cores[1].isr
    net.check_identical()


def test_after_a_leader_change_a_diverged_follower_truncates_by_epochs() -> None:
    net = started()
    net.produce(b"m0")
    net.pump()
    net.cut = {(1, 3)}
    net.produce(b"m1", acks=1)  # reaches 2 only
    net.pump()
    net.cut = {(1, 3), (1, 2)}
    net.produce(b"m2", acks=1)  # stays on the leader
    net.pump()
    assert [contents(net.cores[i]) for i in (1, 2, 3)] == [[b"m0", b"m1", b"m2"], [b"m0", b"m1"], [b"m0"]]
    net.down.add(1)
    net.cut.clear()
    net.elect(3, (3, 2))  # the controller picks 3 from the ISR; 2 has a tail 3 never saw
    assert contents(net.cores[2]) == [b"m0"]  # truncated to where epoch 1 ends on the new leader
    net.produce(b"m3")
    net.pump()
    assert net.results[4].error is None
    net.restart(1)  # the old leader returns as a follower, with two records nobody else has
    net.run(3_000)
    assert set(net.isr) == {1, 2, 3}
    assert contents(net.cores[1]) == [b"m0", b"m3"]
    net.check_identical()


def test_an_acknowledged_record_survives_failover_though_followers_lag_on_the_high_watermark() -> None:
    net = started()
    net.produce(b"acked")
    net.pump()
    assert net.cores[1].high_watermark == 1
    assert net.cores[2].high_watermark == net.cores[3].high_watermark == 0  # they learn it later
    net.down.add(1)
    net.elect(2, (2, 3))
    net.run(200)
    assert contents(net.cores[3]) == [b"acked"]  # not truncated to its high watermark (KIP-101)
    assert net.cores[2].high_watermark == 1
    net.restart(1)
    net.settle(3_000)
    net.check_identical()


def chaos(seed: int, steps: int, drop_rate: float) -> Net:
    """Produce with acks 0/1/all while leaders and followers die and return as new processes, links
    are cut one way, and messages are dropped; the controller elects from the live ISR."""
    print(f"chaos seed={seed} steps={steps} drop_rate={drop_rate}")
    rng = random.Random(seed)
    net = started(**{"min.insync.replicas": 2})
    net.rng = random.Random(seed + 1)
    for step in range(steps):
        action = rng.random()
        live_isr = [r for r in net.isr if r not in net.down]
        if action < 0.6 and net.leader not in net.down:
            for n in range(rng.randint(1, 3)):
                net.produce(b"s%d-%d-%d" % (seed, step, n), acks=rng.choice([-1, -1, 1, 0]))
        elif action < 0.7 and not net.down and len(live_isr) > 1:
            net.down.add(net.leader)  # the leader dies; the controller elects from the live ISR
            survivors = [r for r in net.isr if r != net.leader]
            net.elect(rng.choice(survivors), survivors)
        elif action < 0.75 and not net.down and len(live_isr) > 1:
            net.down.add(rng.choice([r for r in net.replicas if r != net.leader]))  # a follower dies
        elif action < 0.85 and net.down:
            net.restart(rng.choice(sorted(net.down)))
        elif action < 0.9:
            net.cut.add(tuple(rng.sample(net.replicas, 2)))
        elif action < 0.95:
            net.cut.clear()
        net.drop_rate = drop_rate if rng.random() < 0.4 else 0.0
        net.run(rng.choice([20, 50, 100, 300, 1000]))
    for i in sorted(net.down):
        net.restart(i)
    net.settle(30_000)
    return net


@settings(max_examples=12, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), drop_rate=st.sampled_from([0.1, 0.25, 0.5]))
def test_chaos_loses_no_acknowledged_record_and_ends_identical(seed: int, drop_rate: float) -> None:
    net = chaos(seed, 250, drop_rate)
    assert set(net.isr) == {1, 2, 3}
    net.check_identical()
    assert net.acknowledged(), "the run acknowledged nothing: it tests nothing"
