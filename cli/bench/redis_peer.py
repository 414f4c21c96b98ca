"""Redis Streams as the comparison peer: Debian's ``redis-server`` driven through redis-py.

``RedisPeer()`` starts ``redis-server`` on a free loopback port in a temp dir, with
``appendonly yes`` and ``appendfsync everysec`` (durability close to a broker that fsyncs on
roll and replicates) and no RDB snapshots, waits for PING, and ``stop()`` shuts it down and
removes the dir. The workloads are the ones a Python user would write:

- ``xadd``: XADD of ``record_size``-byte values to one stream in pipelines of 1000
  (``transaction=False``), records/s from the first command to the last reply;
- ``xread``: XREAD COUNT 10000 from id 0 until every entry is read.

``missing()`` says what is not installed (the server or redis-py), with the command to fix it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from typing import Any

from kbroker.cli.bench import stats

__all__ = ["RedisPeer", "missing", "INSTALL_HINT"]

PIPELINE = 1000
READ_COUNT = 10_000
START_TIMEOUT_S = 30.0
INSTALL_HINT = (
    "the comparison needs Redis: install the server with `sudo apt-get install redis-server` "
    "(Debian/Ubuntu) and redis-py with `pip install 'kbroker[bench]'`"
)


def missing() -> str | None:
    """None when redis-server and redis-py are both available, else what is missing and how to fix it."""
    lacking = []
    if shutil.which("redis-server") is None:
        lacking.append("redis-server is not on PATH")
    try:
        import redis  # noqa: F401
    except ImportError:
        lacking.append("redis-py (the `redis` package) is not installed")
    if not lacking:
        return None
    return f"{'; '.join(lacking)}. {INSTALL_HINT}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisPeer:
    def __init__(self) -> None:
        import redis

        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError(INSTALL_HINT)
        self._tmp = tempfile.TemporaryDirectory(prefix="kbroker-bench-redis-")
        self.port = _free_port()
        self.process = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self._tmp.name,
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no",
             "--protected-mode", "no", "--logfile", ""],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.client = redis.Redis(host="127.0.0.1", port=self.port)
        self.version = ""
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def __enter__(self) -> RedisPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait_ready(self) -> None:
        import redis

        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                output = self.process.stdout.read() if self.process.stdout else ""
                raise RuntimeError(f"redis-server exited with {self.process.returncode}:\n{output[-2000:]}")
            try:
                self.client.ping()
                self.version = str(self.client.info("server").get("redis_version", ""))
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not answer PING within {START_TIMEOUT_S:g} s") from None
                time.sleep(0.02)  # polling for the server's port with a deadline

    def xadd(self, stream: str, records: int, record_size: int) -> dict[str, Any]:
        value = b"r" * record_size
        client = self.client
        client.delete(stream)
        started = time.perf_counter()
        for base in range(0, records, PIPELINE):
            pipe = client.pipeline(transaction=False)
            for _ in range(min(PIPELINE, records - base)):
                pipe.xadd(stream, {"v": value})
            pipe.execute()
        return stats.rates(records, record_size, time.perf_counter() - started)

    def xread(self, stream: str, record_size: int) -> dict[str, Any]:
        total = self.client.xlen(stream)
        got = 0
        last = b"0"
        started = time.perf_counter()
        while got < total:
            reply = self.client.xread({stream: last}, count=READ_COUNT)
            if not reply:
                break
            entries = reply[0][1]
            got += len(entries)
            last = entries[-1][0]
        return stats.rates(got, record_size, time.perf_counter() - started)

    def stop(self) -> None:
        try:
            self.client.close()
        except Exception:
            pass
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._tmp.cleanup()
