"""Helpers shared by the controller core tests (a uniquely named module: tests import it by name)."""

from __future__ import annotations

import random

from kbroker.actors.controller_model import MetadataImage
from kbroker.actors.controller_state import ControllerSettings, ControllerState

T0 = 1_000_000  # a clock reading (ms) to start tests at


def endpoint(worker_id: int) -> str:
    return f"tcp://127.0.0.1:{7100 + worker_id}"


def pid(worker_id: int, incarnation: int = 1) -> int:
    return 1000 * incarnation + worker_id


def cluster(workers: int = 3, *, seed: int = 7, settings: ControllerSettings | None = None) -> ControllerState:
    """A freshly started controller with ``workers`` workers registered (incarnation 1) at ``T0``."""
    state, _ = ControllerState.start(MetadataImage(), settings, rng=random.Random(seed))
    for w in range(workers):
        register(state, w)
    return state


def register(state: ControllerState, worker_id: int, incarnation: int = 1, now_ms: int = T0):
    return state.register_worker(worker_id, endpoint(worker_id), pid(worker_id, incarnation), incarnation, now_ms)


def check_invariants(state: ControllerState) -> None:
    """What must hold after every operation (see controller_state's docstring)."""
    state.image().check()
    live = set(state.live_workers())
    for parts in state.partitions.values():
        for part in parts:
            assert part.leader == -1 or (part.leader in live and part.leader in part.isr), part
            assert set(part.isr) <= set(part.replicas), part
            if part.leader != -1:
                assert set(part.isr) <= live, part  # dead workers leave the ISR of an online partition
