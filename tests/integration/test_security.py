"""CURVE and ACLs against a real ``kbroker start``: handshakes, identities, replication, ACLs, files.

One broker per test keeps them short; each test checks several things on it.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from _cluster import Cluster, wait_until
from kbroker import AclBinding, Admin, Consumer, Producer, TopicPartition
from kbroker.errors import AuthenticationError, AuthorizationError

pytestmark = pytest.mark.timeout(120)


def kbroker(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kbroker.cli.main", *args], capture_output=True, text=True, timeout=timeout,
        env=dict(os.environ, **(env or {})),
    )  # fmt: skip


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    directory = tmp_path / "keys"
    for name in ("broker", "admin", "alice", "mallory"):
        done = kbroker("keys", "generate", name, "--dir", str(directory))
        assert done.returncode == 0, done.stderr
    allow = tmp_path / "allow"
    allow.mkdir()
    (allow / "alice.key").write_bytes((directory / "alice.key").read_bytes())
    return directory


def curve_args(keys: Path) -> list[str]:
    return [
        "--curve-secret-key", str(keys / "broker.key_secret"), "--curve-allow", str(keys.parent / "allow"),
        "--curve-super-user", str(keys / "admin.key"),
    ]  # fmt: skip


def as_user(keys: Path, name: str, server: str = "broker") -> dict[str, str]:
    return {"curve_secret_key": str(keys / f"{name}.key_secret"), "curve_server_key": str(keys / f"{server}.key")}


def public(keys: Path, name: str) -> str:
    text = (keys / f"{name}.key").read_text()
    return next(line.split('"')[1] for line in text.splitlines() if "public-key" in line)


def test_key_files_and_data_dir_are_owner_only(keys: Path, start_cluster: Callable[..., Cluster]) -> None:
    assert mode(keys) == 0o700
    for path in keys.iterdir():
        assert mode(path) == 0o600, path
    cluster = start_cluster(workers=1, args=curve_args(keys))
    assert mode(cluster.data_dir) == 0o700
    secret_lines = [line for line in (keys / "broker.key_secret").read_text().splitlines() if "secret-key" in line]
    secret = secret_lines[0].split('"')[1]
    with Admin(cluster.bootstrap, timeout=10, **as_user(keys, "admin")) as admin:
        admin.create_topic("files", 1, 1)
    data_files = [p for p in cluster.data_dir.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert data_files and all(mode(p) & 0o077 == 0 for p in data_files), [(p, oct(mode(p))) for p in data_files]
    assert secret not in cluster.output.text(), "the broker's secret key must never be logged"


def test_replication_and_acls_under_curve(keys: Path, start_cluster: Callable[..., Cluster]) -> None:
    cluster = start_cluster(workers=3, args=curve_args(keys))
    alice = public(keys, "alice")
    with Admin(cluster.bootstrap, timeout=15, **as_user(keys, "admin")) as admin:
        admin.create_topic("orders", 2, 3)
        admin.create_topic("secret", 1, 1)
        # no ACL yet: alice is authenticated but may do nothing (deny by default)
        with Admin(cluster.bootstrap, timeout=10, **as_user(keys, "alice")) as alice_admin:
            with pytest.raises(AuthorizationError, match="may not describe topic 'orders'"):
                alice_admin.describe_topic("orders")
            assert alice_admin.list_topics() == []  # listing shows only what she may describe
            with pytest.raises(AuthorizationError, match="create topic"):
                alice_admin.create_topic("mine", 1, 1)
            with pytest.raises(AuthorizationError, match="cluster"):
                alice_admin.list_acls()
        assert admin.create_acls([
            AclBinding(alice, "topic", "orders", "write"), AclBinding(alice, "topic", "orders", "read"),
        ]) == 2  # fmt: skip
        assert {a.operation for a in admin.list_acls(principal=alice)} == {"read", "write"}

    # RF 3, acks=all: the followers fetch from the leader over CURVE links with the broker's key
    with Producer(cluster.bootstrap, acks="all", request_timeout_ms=15_000, max_block_ms=30_000, **as_user(keys, "alice")) as producer:
        futures = [producer.send("orders", f"v{i}".encode(), key=f"k{i}".encode()) for i in range(20)]
        metadata = [f.result(30) for f in futures]
        assert len({(m.partition, m.offset) for m in metadata}) == 20
    with Admin(cluster.bootstrap, timeout=15, **as_user(keys, "admin")) as admin:
        def replicated() -> bool:
            parts = admin.describe_topic("orders").partitions
            return all(len(p.isr) == 3 and p.high_watermark == p.log_end_offset for p in parts) and sum(
                p.high_watermark for p in parts
            ) == 20

        wait_until(replicated, 30, "every partition of orders fully replicated on 3 workers")
    with Consumer(cluster.bootstrap, request_timeout_ms=15_000, **as_user(keys, "alice")) as consumer:
        consumer.assign([TopicPartition("orders", 0), TopicPartition("orders", 1)])
        got: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(got) < 20 and time.monotonic() < deadline:
            got += [r.value for r in consumer.poll(500)]
        assert sorted(got) == sorted(f"v{i}".encode() for i in range(20))

    # a consumer group: group read on the group, topic read on what it commits
    with Admin(cluster.bootstrap, timeout=15, **as_user(keys, "admin")) as admin:
        admin.create_acls([AclBinding(alice, "group", "billing", "read")])
    with Consumer(cluster.bootstrap, group_id="billing", request_timeout_ms=15_000, **as_user(keys, "alice")) as consumer:
        consumer.subscribe(["orders"])
        seen: list[bytes] = []
        deadline = time.monotonic() + 40
        while len(seen) < 20 and time.monotonic() < deadline:
            seen += [r.value for r in consumer.poll(500)]
        assert len(seen) == 20
        consumer.commit()
        assert consumer.committed(TopicPartition("orders", 0)) is not None
    with Consumer(cluster.bootstrap, group_id="other", request_timeout_ms=10_000, **as_user(keys, "alice")) as consumer:
        consumer.subscribe(["orders"])
        with pytest.raises(AuthorizationError, match="group 'other'"):
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                consumer.poll(200)

    # a topic without an ACL: produce is denied with a clear error, fetch too
    with Producer(cluster.bootstrap, max_block_ms=15_000, **as_user(keys, "alice")) as producer:
        with pytest.raises(AuthorizationError, match="secret"):
            producer.send("secret", b"x").result(20)
    with Consumer(cluster.bootstrap, request_timeout_ms=10_000, **as_user(keys, "alice")) as consumer:
        consumer.assign([TopicPartition("secret", 0)])
        with pytest.raises(AuthorizationError, match="secret"):
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                consumer.poll(200)

    # the CLI: acls remove, then alice's produce is denied again
    admin_env = {"KBROKER_CURVE_SECRET_KEY": str(keys / "admin.key_secret"), "KBROKER_CURVE_SERVER_KEY": str(keys / "broker.key")}
    done = kbroker("acls", "remove", "--principal", str(keys / "alice.key"), "--topic", "orders", "--operation", "write",
                   "-b", cluster.bootstrap, "-o", "json", env=admin_env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert '"write"' in done.stdout
    cli = kbroker("acls", "list", "-b", cluster.bootstrap, "--curve-secret-key", str(keys / "admin.key_secret"),
                  "--curve-server-key", str(keys / "broker.key"), "-o", "json")  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert '"read"' in cli.stdout and '"write"' not in cli.stdout
    with Producer(cluster.bootstrap, max_block_ms=15_000, **as_user(keys, "alice")) as producer:
        with pytest.raises(AuthorizationError, match="write topic 'orders'"):
            producer.send("orders", b"late").result(20)
    assert "denied Produce from " + alice in cluster.output.text()


@pytest.mark.timeout(90)
def test_a_consumer_without_read_is_told_not_left_polling(keys: Path, start_cluster: Callable[..., Cluster]) -> None:
    """Alice may write (so describe) orders but not read it: poll() raises (as Kafka's
    TopicAuthorizationException), in assign() and group mode, and the CLI exits 1 saying so."""
    cluster = start_cluster(workers=1, args=curve_args(keys))
    alice = public(keys, "alice")
    with Admin(cluster.bootstrap, timeout=15, **as_user(keys, "admin")) as admin:
        admin.create_topic("orders", 1, 1)
        admin.create_acls([AclBinding(alice, "topic", "orders", "write"), AclBinding(alice, "group", "billing", "read")])
    with Producer(cluster.bootstrap, max_block_ms=15_000, **as_user(keys, "alice")) as producer:
        producer.send("orders", b"o1").result(20)

    def refused_within(consumer: Consumer, seconds: float) -> AuthorizationError:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                consumer.poll(200)  # group mode: the first polls join the group and get orders-0
            except AuthorizationError as exc:
                return exc
        raise AssertionError(f"poll() returned for {seconds}s without raising AuthorizationError")

    with Consumer(cluster.bootstrap, request_timeout_ms=10_000, **as_user(keys, "alice")) as consumer:
        consumer.assign([TopicPartition("orders", 0)])
        assert "may not read topic 'orders'" in refused_within(consumer, 5).message
        with pytest.raises(AuthorizationError, match="read topic 'orders'"):
            consumer.poll(3000)  # every poll says so, not only the first
    with Consumer(cluster.bootstrap, group_id="billing", request_timeout_ms=10_000, **as_user(keys, "alice")) as consumer:
        consumer.subscribe(["orders"])
        assert "may not read topic 'orders'" in refused_within(consumer, 15).message

    started = time.monotonic()
    done = kbroker("consume", "orders", "--from-beginning", "-b", cluster.bootstrap, "--timeout-ms", "3000",
                   "--curve-secret-key", str(keys / "alice.key_secret"), "--curve-server-key", str(keys / "broker.key"))  # fmt: skip
    assert done.returncode == 1, (done.stdout, done.stderr)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "may not read topic 'orders'" in errors[0], done.stderr
    assert "consumed" not in done.stderr and done.stdout == ""
    assert time.monotonic() - started < 20
    assert "denied Fetch from " + alice in cluster.output.text()


def test_refused_clients_and_revocation(keys: Path, start_cluster: Callable[..., Cluster]) -> None:
    cluster = start_cluster(workers=1, args=curve_args(keys))
    cases = [
        ({}, "requires CURVE encryption and this client has no keys"),  # plaintext client
        (as_user(keys, "mallory"), "refused this client's CURVE public key"),  # unknown key
        (as_user(keys, "alice", server="mallory"), "curve_server_key is the broker's public key"),  # wrong server key
    ]
    for credentials, message in cases:
        started = time.monotonic()
        with Admin(cluster.bootstrap, timeout=30, **credentials) as admin, pytest.raises(AuthenticationError, match=message):
            admin.describe_cluster()
        assert time.monotonic() - started < 10, f"{message}: the client must fail fast, not wait out its timeout"
    started = time.monotonic()
    with Producer(cluster.bootstrap, max_block_ms=30_000) as producer, pytest.raises(AuthenticationError, match="requires CURVE"):
        producer.send("t", b"x").result(30)
    with Consumer(cluster.bootstrap, request_timeout_ms=30_000) as consumer, pytest.raises(AuthenticationError, match="requires CURVE"):
        consumer.assign([TopicPartition("t", 0)])
        consumer.poll(30_000)
    assert time.monotonic() - started < 20, "plaintext producer and consumer must fail fast"
    done = kbroker("topics", "list", "-b", cluster.bootstrap, "--timeout", "30")
    assert done.returncode == 1 and "requires CURVE" in done.stderr, done.stderr
    with Admin(cluster.bootstrap, timeout=10, **as_user(keys, "alice")) as admin:
        assert [w.id for w in admin.describe_cluster()] == [0]
    (keys.parent / "allow" / "alice.key").unlink()  # revoked: re-read on the next handshake
    with Admin(cluster.bootstrap, timeout=10, **as_user(keys, "alice")) as admin, pytest.raises(AuthenticationError, match="--curve-allow"):
        admin.describe_cluster()
    assert "refused a CURVE client" in cluster.output.text()


def test_acls_survive_a_restart_and_the_allow_dir_is_read_at_start(keys: Path, start_cluster: Callable[..., Cluster]) -> None:
    first = start_cluster(workers=1, args=curve_args(keys))
    alice = public(keys, "alice")
    with Admin(first.bootstrap, timeout=10, **as_user(keys, "admin")) as admin:
        admin.create_topic("kept", 1, 1)
        admin.create_acls([AclBinding(alice, "topic", "kept", "describe"), AclBinding("*", "topic", "kept", "read")])
    with Admin(first.bootstrap, timeout=10, **as_user(keys, "alice")) as admin:
        assert admin.describe_topic("kept").name == "kept"
    assert first.stop() == 0
    allow = keys.parent / "allow"
    (allow / "alice.key").unlink()  # revoked while the broker was down
    (allow / "mallory.key").write_bytes((keys / "mallory.key").read_bytes())  # allowed from now on
    second = start_cluster(workers=1, args=curve_args(keys), data_dir=first.data_dir)
    with Admin(second.bootstrap, timeout=10, **as_user(keys, "admin")) as admin:
        assert admin.list_acls(resource_name="kept") == sorted(
            [AclBinding(alice, "topic", "kept", "describe"), AclBinding("*", "topic", "kept", "read")]
        )
    with Admin(second.bootstrap, timeout=10, **as_user(keys, "alice")) as admin, pytest.raises(AuthenticationError, match="--curve-allow"):
        admin.describe_cluster()
    with Admin(second.bootstrap, timeout=10, **as_user(keys, "mallory")) as admin:
        assert admin.list_topics() == ["kept"]  # the replayed '*' read ACL (read implies describe)
        assert admin.describe_topic("kept").name == "kept"
        with pytest.raises(AuthorizationError, match="delete topic 'kept'"):
            admin.delete_topic("kept")
