"""kbroker.actors: the processes and actors of a running broker.

- ``supervisor``: ``Supervisor`` (the main process of ``kbroker start``), ``BrokerConfig``,
  ``RestartBackoff``
- ``controller``: the ``Controller`` actor shell and its ``WorkerTable``
- ``worker``: ``worker_main`` (a worker process), ``WorkerConfig``, ``ControllerLink``
- ``gateway``: the ``Gateway``, default actor of a worker's endpoint, run on its I/O thread
  (``loop_ref``: ``LoopRef``, an actor scheduled by ``IOThread.call_soon``)
- ``group_coordinator`` and its pure cores (``group_state``, ``group_assignor``,
  ``group_offsets``, ``group_loader``, ``group_cleanup``): consumer groups
- ``datadir``: ``DirLock`` (one broker per data directory), ``cluster.json``
- ``signals``, ``ticker``, ``process_logging``: process plumbing

Names are loaded lazily (PEP 562), so importing one pure module never starts pulling in
``zmq`` or ``pykka`` through this package.
"""

from __future__ import annotations

from kbroker._lazy import lazy_exports

_LAZY: dict[str, str] = {
    "BrokerConfig": "kbroker.actors.supervisor",
    "Controller": "kbroker.actors.controller",
    "ControllerLink": "kbroker.actors.worker",
    "DataDirInUseError": "kbroker.actors.datadir",
    "DirLock": "kbroker.actors.datadir",
    "Gateway": "kbroker.actors.gateway",
    "RestartBackoff": "kbroker.actors.supervisor",
    "StartupError": "kbroker.actors.supervisor",
    "Supervisor": "kbroker.actors.supervisor",
    "WorkerConfig": "kbroker.actors.worker",
    "worker_main": "kbroker.actors.worker",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)
