"""kbroker.transport: typed messages, their wire codec, and the ZeroMQ plumbing between processes.

- ``schema``: named field types with their limits (``Offset``, ``Epoch``, ``Payload``, ...) and
  the ``@message`` / ``@struct`` decorators
- ``messages`` (``messages_client``, ``messages_admin``, ``messages_internal``): every message type
- ``specs``: field specs compiled from those annotations (validating decoders, encoders), pure
- ``codec``: messages <-> ZeroMQ multipart frames (msgpack header + raw payload frames), pure
- ``envelope``: ``Address`` (endpoint, actor name) and the ``Envelope`` a local actor receives
- ``flow``, ``send_queue``, ``command_queue``: pending asks and the in-flight byte budget, the
  per-destination queue for sends that would block, the hand-over to the I/O thread
- ``io_thread``: ``IOThread``, the one thread per process that owns every socket, with
  ``inbound`` (its ROUTER side) and ``outbound`` (its DEALER side)
- ``connection``: ``Connection``, the synchronous client side (DEALER, request/response)
- ``curve``: CURVE key files, the broker's ZAP handler (on the I/O thread) and socket setup for
  both ends; ``messages_acls``: the ACL admin messages (checks in ``kbroker.actors.acls``)
- ``conn_limit``: ``--max-connections`` (a ROUTER's connections counted from its socket monitor,
  handshakes past the limit refused by the ZAP handler)

The client-facing wire protocol is specified in docs/protocol.md.

Names are loaded lazily (PEP 562), so ``import kbroker.transport.codec`` (pure) never pulls in
``zmq`` or ``pykka``.
"""

from __future__ import annotations

from kbroker._lazy import lazy_exports

_LAZY: dict[str, str] = {
    "Address": "kbroker.transport.envelope",
    "Connection": "kbroker.transport.connection",
    "Decoded": "kbroker.transport.codec",
    "Envelope": "kbroker.transport.envelope",
    "IOStats": "kbroker.transport.io_thread",
    "IOThread": "kbroker.transport.io_thread",
    "MESSAGE_TYPES": "kbroker.transport.schema",
    "Message": "kbroker.transport.schema",
    "decode": "kbroker.transport.codec",
    "encode": "kbroker.transport.codec",
    "normalize_endpoint": "kbroker.transport.connection",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)
