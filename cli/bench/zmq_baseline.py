"""Raw ZeroMQ loopback bandwidth: the ceiling the broker's produce path is compared against.

A PUSH socket in this process sends ``frames`` frames of ``frame_bytes`` (``copy=False``, the
same bytes object each time) over tcp on 127.0.0.1 to a PULL socket in a spawned process, which
reports when it has them all. Both high-water marks are 16 frames (MEASUREMENTS.md: large frames
with the default HWM balloon memory). The clock runs from the first send to the receiver's
report, so the figure is what one process can push to another: no broker, no Python per record.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

__all__ = ["loopback_bandwidth"]

_MP = multiprocessing.get_context("spawn")
_HWM = 16


def _receiver(endpoint: str, frames: int, conn: Any) -> None:
    import zmq

    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    sock.setsockopt(zmq.RCVHWM, _HWM)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        first = sock.recv(copy=False)  # the handshake frame
        conn.send("ready")
        total = 0
        for _ in range(frames):
            total += len(sock.recv(copy=False))
        conn.send(("done", total, len(first)))
    finally:
        sock.close()
        ctx.term()


def loopback_bandwidth(frame_bytes: int, frames: int = 1000, timeout_s: float = 120) -> dict[str, float]:
    """``{"frame_bytes", "frames", "seconds", "mb_per_s"}`` of one PUSH -> PULL stream."""
    import zmq

    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.SNDHWM, _HWM)
    sock.setsockopt(zmq.LINGER, 0)
    parent, child = _MP.Pipe()
    try:
        port = sock.bind_to_random_port("tcp://127.0.0.1")
        receiver = _MP.Process(target=_receiver, args=(f"tcp://127.0.0.1:{port}", frames, child), daemon=True)
        receiver.start()
        try:
            sock.send(b"hello")
            if not parent.poll(timeout_s) or parent.recv() != "ready":
                raise RuntimeError("the ZeroMQ receiver did not start")
            payload = b"z" * frame_bytes
            started = time.perf_counter()
            for _ in range(frames):
                sock.send(payload, copy=False)
            if not parent.poll(timeout_s):
                raise RuntimeError("the ZeroMQ receiver did not finish in time")
            _, total, _ = parent.recv()
            seconds = time.perf_counter() - started
        finally:
            receiver.join(10)
            if receiver.is_alive():
                receiver.kill()
    finally:
        sock.close()
        ctx.term()
    return {"frame_bytes": frame_bytes, "frames": frames, "seconds": seconds, "mb_per_s": total / seconds / 1e6}
