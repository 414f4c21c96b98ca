"""``kbroker start --max-connections`` against a real broker: refusals, service, a freed slot.

Each broker process counts every TCP connection to its endpoint. On a 1-worker broker the
supervisor's bootstrap endpoint has one link from the worker, and the worker's endpoint one from
the controller; a Producer or a Consumer (no group) opens one connection to each endpoint.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from _cluster import Cluster, wait_until
from kbroker import Admin, Consumer, Producer, TopicPartition
from kbroker.errors import AuthenticationError, ConnectionLimitError
from kbroker.transport.connection import Connection
from kbroker.transport.messages_admin import DescribeCluster

pytestmark = pytest.mark.timeout(120)

LIMIT_ERROR = r"refused the connection: it has reached its connection limit \(kbroker start --max-connections\)"


def admitted(admin: Admin) -> bool:
    """One request; False while the broker still counts a connection that was just closed."""
    try:
        admin.list_topics()
        return True
    except ConnectionLimitError:
        return False


def consume(consumer: Consumer, got: list[bytes], count: int) -> None:
    def enough() -> bool:
        got.extend(r.value for r in consumer.poll(200))
        return len(got) >= count

    wait_until(enough, 20, f"{count} record(s) consumed")


def test_plaintext_limit_refuses_new_clients_and_keeps_serving_the_others(
    tmp_path: Path, start_cluster: Callable[..., Cluster]
) -> None:
    config = tmp_path / "broker.toml"
    config.write_text("[broker]\nmax_connections = 3\n")  # the CURVE test below gives it as a flag
    cluster = start_cluster(workers=1, args=["--config", str(config)])
    with Admin(cluster.bootstrap, timeout=10) as admin:  # closed before the others come: its slot frees up
        admin.create_topic("orders", 1, 1)
        [worker] = admin.describe_cluster()
    producer = Producer(cluster.bootstrap, acks="all", request_timeout_ms=10_000, max_block_ms=20_000)
    consumer = Consumer(cluster.bootstrap, request_timeout_ms=10_000)
    late: Admin | None = None
    try:
        producer.send("orders", b"before").result(20)
        consumer.assign([TopicPartition("orders", 0)])
        got: list[bytes] = []
        consume(consumer, got, 1)
        # both endpoints are full now (worker/controller link + producer + consumer); clients connect
        # when created, and connections in their handshake count: so one client at a time
        late = Admin(cluster.bootstrap, timeout=10)
        with pytest.raises(ConnectionLimitError, match=LIMIT_ERROR) as refused:
            late.list_topics()
        assert refused.value.retriable and cluster.bootstrap in refused.value.message
        with Connection(worker.endpoint, timeout=10) as direct, pytest.raises(ConnectionLimitError, match=worker.endpoint):
            direct.request(DescribeCluster())  # refused in the handshake, whatever the request
        cluster.output.wait_for_line(re.compile(r"refused a connection from .* the limit is 3 \(--max-connections\)"), 10)

        producer.send("orders", b"after").result(20)  # the clients already in are served as before
        consume(consumer, got, 2)
        assert got == [b"before", b"after"]

        producer.close()  # frees a slot on each endpoint: the refused client gets in on a later request
        wait_until(lambda: admitted(late), 20, "the refused Admin admitted once the producer closed")
        assert late.list_topics() == ["orders"]
    finally:
        if late is not None:
            late.close()
        consumer.close()
        producer.close()


def test_curve_limit_exempts_broker_links_and_keeps_authentication_errors(
    tmp_path: Path, start_cluster: Callable[..., Cluster]
) -> None:
    keys = tmp_path / "keys"
    for name in ("broker", "admin", "mallory"):
        done = subprocess.run(
            [sys.executable, "-m", "kbroker.cli.main", "keys", "generate", name, "--dir", str(keys)],
            capture_output=True, text=True, timeout=60, env=dict(os.environ),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    (tmp_path / "allow").mkdir()
    args = [
        "--curve-secret-key", str(keys / "broker.key_secret"), "--curve-allow", str(tmp_path / "allow"),
        "--curve-super-user", str(keys / "admin.key"), "--max-connections", "2",
    ]  # fmt: skip
    cluster = start_cluster(workers=1, args=args)

    def user(name: str) -> dict[str, str]:
        return {"curve_secret_key": str(keys / f"{name}.key_secret"), "curve_server_key": str(keys / "broker.key")}

    # the bootstrap holds the worker's link (the broker's key: admitted, counted) and one client
    first = Admin(cluster.bootstrap, timeout=10, **user("admin"))
    second: Admin | None = None
    try:
        first.create_topic("t", 1, 1)
        second = Admin(cluster.bootstrap, timeout=10, **user("admin"))  # after the first is in (handshakes count)
        with pytest.raises(ConnectionLimitError, match=LIMIT_ERROR):
            second.list_topics()
        with Admin(cluster.bootstrap, timeout=10, **user("mallory")) as mallory:
            with pytest.raises(AuthenticationError, match="refused this client's CURVE public key"):
                mallory.list_topics()  # an unknown key is still an authentication failure, full or not
        assert first.list_topics() == ["t"]
        first.close()
        wait_until(lambda: admitted(second), 20, "the refused Admin admitted once the first closed")
        assert [w.alive for w in second.describe_cluster()] == [True]  # the worker's link was never at risk
    finally:
        first.close()
        if second is not None:
            second.close()


def test_a_restarted_follower_refused_by_its_full_leader_catches_up_once_a_slot_frees(
    start_cluster: Callable[..., Cluster]
) -> None:
    """Plaintext links between broker processes count: a follower restarted while its leader's
    endpoint is full is refused there, retries with a backoff, and catches up once a slot frees."""
    import os as _os
    import signal

    from kbroker.errors import KBrokerError
    from kbroker.transport.messages_client import Metadata

    cluster = start_cluster(workers=2, args=["--max-connections", "5"])
    cluster.wait_all_alive()
    fillers: list[Connection] = []
    with Admin(cluster.bootstrap, timeout=10) as admin, Producer(cluster.bootstrap, acks="all", request_timeout_ms=10_000) as producer:
        admin.create_topic("r", 1, 2)

        def partition() -> object:
            return admin.describe_topic("r").partitions[0]

        wait_until(lambda: len(partition().isr) == 2, 20, "an ISR of 2")
        leader = partition().leader
        follower = next(r for r in partition().replicas if r != leader)
        endpoint = next(w.endpoint for w in admin.describe_cluster() if w.id == leader)
        producer.send("r", b"0").result(20)

        def take_a_slot() -> bool:
            conn = Connection(endpoint, timeout=5)
            try:
                conn.request(Metadata(None, False))
            except ConnectionLimitError:
                conn.close()
                return False
            except KBrokerError:
                pass  # admitted: any answer means the handshake went through
            fillers.append(conn)
            return True

        try:
            while take_a_slot():  # the leader's endpoint is full now
                assert len(fillers) < 10, "the limit of 5 does not hold"
            _os.kill(cluster.alive_pids()[follower], signal.SIGKILL)
            wait_until(take_a_slot, 10, "the dead follower's slot taken before it restarts")
            cluster.output.wait_for_line(re.compile(r"refused this process's connection: it has reached its connection limit"), 30)
            producer.send("r", b"1").result(20)  # the leader serves on (ISR of 1 once the follower is out)
        finally:
            for conn in fillers:
                conn.close()
        wait_until(lambda: follower in partition().isr and partition().high_watermark == partition().log_end_offset == 2,
                   30, "the follower back in the ISR with both records")  # fmt: skip
        cluster.output.wait_for_line(re.compile(r"admitted this process's connection again"), 10)
        producer.send("r", b"2").result(20)
