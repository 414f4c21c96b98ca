"""ZeroMQ CURVE for kbroker: key files, the broker's ZAP handler, and socket setup for both ends.

    kbroker keys generate NAME --dir DIR   ->  DIR/NAME.key (public)  DIR/NAME.key_secret (both keys)
                                               ZeroMQ's certificate format (zmq.auth), files 0600, DIR 0700

    broker process (supervisor or worker)                     client (Admin / Producer / Consumer)
      IOThread(curve=CurveServer)                               Connection(socket_setup=ClientCurve)
        ZapHandler: ROUTER on inproc://zeromq.zap.01            DEALER: CURVE_SERVERKEY = broker public,
          polled by the I/O thread (same context, same thread)          CURVE_PUBLICKEY/SECRETKEY = own pair
          allowed = the allow dir's *.key + the broker's own key + the super users' keys
          reply User-Id = the client's public key (Z85, 40 chars) -> Envelope.identity
          with --max-connections: an allowed key past the limit gets "500" (conn_limit.py),
          except the broker's own key; without CURVE it admits every NULL client under the limit
        ROUTER: CURVE server with the broker's key pair
        DEALERs (to other broker processes): CURVE client with the broker's key pair (server key =
          the same public key: every process of one broker shares one key pair)

Invariants:
- A secret key never appears in a repr, a log line or an error message; errors name the file.
- The allow directory is re-read when its modification time changes (checked on each handshake,
  i.e. once per new connection, never per message): removing ``alice.key`` revokes alice for every
  connection made afterwards; connections already authenticated stay up until they close.
- ``ZapHandler`` is owned by the I/O thread that created it (ZeroMQ sockets are single-threaded);
  it must be bound before the ROUTER accepts connections (without a ZAP handler libzmq would let
  every CURVE client in), and closed before the context is terminated.
- A key that is not allowed is refused with "400" whether or not the broker is full; the
  connection limit ("500") is only checked for allowed keys, never for the broker's own key.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Protocol

import zmq
import zmq.auth
from zmq.utils import z85

from kbroker.transport.conn_limit import REFUSED_STATUS, REFUSED_TEXT, ConnectionMonitor
from kbroker.transport.schema import Message

__all__ = [
    "CurveKeyError",
    "CurveServerConfig",
    "CurveServer",
    "ClientCurve",
    "AllowList",
    "ZapHandler",
    "RequestGuard",
    "generate_keys",
    "load_public_key",
    "load_key_pair",
    "client_curve",
    "ZAP_ENDPOINT",
    "ZAP_DOMAIN",
]

log = logging.getLogger(__name__)

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
ZAP_DOMAIN = b"kbroker"
PUBLIC_SUFFIX = ".key"
_LOG_EVERY_S = 60.0
SECRET_SUFFIX = ".key_secret"


class CurveKeyError(ValueError):
    """A key file is missing, unreadable or not in ZeroMQ's certificate format (the message names it)."""


class RequestGuard(Protocol):
    """Authorization hook of an I/O thread with CURVE on (actors/acls.py ``AclGuard``)."""

    def authorize(self, identity: str | None, message: Message) -> Message: ...
    def filter_reply(self, identity: str, message: Message) -> Message: ...


# --- key files -----------------------------------------------------------------------------------


def generate_keys(name: str, key_dir: str | os.PathLike[str], *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``NAME.key`` and ``NAME.key_secret`` in ``key_dir`` (created 0700; files 0600)."""
    if not name or "/" in name or name.startswith("."):
        raise CurveKeyError(f"key name {name!r} must be a plain file name (no '/', not starting with '.')")
    directory = Path(key_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    public, secret = directory / f"{name}{PUBLIC_SUFFIX}", directory / f"{name}{SECRET_SUFFIX}"
    existing = [str(p) for p in (public, secret) if p.exists()]
    if existing and not overwrite:
        raise CurveKeyError(f"{', '.join(existing)} already exist(s); pick another name or remove the old keys first")
    old_umask = os.umask(0o077)  # no window in which the secret file is readable by others
    try:
        zmq.auth.create_certificates(str(directory), name)
    finally:
        os.umask(old_umask)
    for path in (public, secret):
        os.chmod(path, 0o600)
    return public, secret


def _read_certificate(path: str | os.PathLike[str], what: str) -> tuple[bytes, bytes | None]:
    try:
        public, secret = zmq.auth.load_certificate(os.fspath(path))
    except OSError:
        raise CurveKeyError(f"{what} {os.fspath(path)!r} does not exist or cannot be read; check the path") from None
    except ValueError:
        raise CurveKeyError(
            f"{what} {os.fspath(path)!r} is not a ZeroMQ certificate (no public-key line); "
            "create keys with `kbroker keys generate NAME --dir DIR`"
        ) from None
    if len(public) != 40 or (secret is not None and len(secret) != 40):
        raise CurveKeyError(f"{what} {os.fspath(path)!r} holds a malformed key (expected 40 Z85 characters)")
    return public, secret


def load_public_key(path: str | os.PathLike[str], what: str = "public key file") -> bytes:
    """The Z85 public key in a ``.key`` (or ``.key_secret``) file."""
    return _read_certificate(path, what)[0]


def load_key_pair(path: str | os.PathLike[str], what: str = "secret key file") -> tuple[bytes, bytes]:
    """(public, secret) Z85 keys from a ``.key_secret`` file."""
    public, secret = _read_certificate(path, what)
    if secret is None:
        raise CurveKeyError(
            f"{what} {os.fspath(path)!r} holds no secret key (a public .key file?); pass the NAME.key_secret file"
        )
    return public, secret


# --- the client side -------------------------------------------------------------------------------


class ClientCurve:
    """``socket_setup`` for a client's DEALERs: CURVE client with its own pair and the broker's public key."""

    __slots__ = ("public_key", "_secret_key", "server_key")

    def __init__(self, public_key: bytes, secret_key: bytes, server_key: bytes) -> None:
        self.public_key = public_key
        self._secret_key = secret_key
        self.server_key = server_key

    def __repr__(self) -> str:
        return f"ClientCurve(public_key={self.public_key.decode()!r}, server_key={self.server_key.decode()!r})"

    def __call__(self, sock: zmq.Socket, role: str) -> None:
        sock.setsockopt(zmq.CURVE_SERVERKEY, self.server_key)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.public_key)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self._secret_key)


def client_curve(
    curve_secret_key: str | os.PathLike[str] | None, curve_server_key: str | os.PathLike[str] | None
) -> ClientCurve | None:
    """The socket setup for a client given its key files (both or neither); ``CurveKeyError`` otherwise."""
    if curve_secret_key is None and curve_server_key is None:
        return None
    if curve_secret_key is None or curve_server_key is None:
        missing = "curve_secret_key" if curve_secret_key is None else "curve_server_key"
        raise CurveKeyError(
            f"CURVE needs both curve_secret_key (this client's NAME.key_secret) and curve_server_key "
            f"(the broker's public .key); {missing} is missing"
        )
    public, secret = load_key_pair(curve_secret_key, "curve_secret_key")
    server = load_public_key(curve_server_key, "curve_server_key")
    return ClientCurve(public, secret, server)


# --- the broker side -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CurveServerConfig:
    """What ``kbroker start`` was given (paths only, so it pickles to workers without key material)."""

    secret_key_file: str
    allow_dir: str
    super_user_files: tuple[str, ...] = ()

    def load(self) -> CurveServer:
        """Read the key files; ``CurveKeyError`` naming the file that is wrong."""
        public, secret = load_key_pair(self.secret_key_file, "--curve-secret-key")
        if not Path(self.allow_dir).is_dir():
            raise CurveKeyError(f"--curve-allow {self.allow_dir!r} is not a directory; create it and put the clients' .key files in it")
        supers = frozenset(load_public_key(f, "--curve-super-user") for f in self.super_user_files)
        allow = AllowList(self.allow_dir, implicit=supers | {public})
        return CurveServer(public, secret, allow, supers | {public})


class AllowList:
    """The public keys that may connect: ``*.key`` files of a directory plus implicit ones.

    Re-read when the directory's modification time changes (a key file added or removed).
    """

    def __init__(self, directory: str | os.PathLike[str], implicit: Iterable[bytes] = ()) -> None:
        self.directory = Path(directory)
        self._implicit = frozenset(implicit)
        self._stamp: int | None = None
        self._keys: frozenset[bytes] = frozenset()
        self.refresh()

    def refresh(self) -> frozenset[bytes]:
        try:
            stamp = self.directory.stat().st_mtime_ns
        except OSError:
            stamp = -1
        if stamp != self._stamp:
            self._stamp = stamp
            self._keys = self._load()
        return self._keys | self._implicit

    def _load(self) -> frozenset[bytes]:
        keys = set()
        try:
            paths = sorted(self.directory.glob(f"*{PUBLIC_SUFFIX}"))
        except OSError as exc:
            log.error("cannot read the CURVE allow directory %s: %s; only the broker's own keys are allowed", self.directory, exc)
            return frozenset()
        for path in paths:
            try:
                keys.add(load_public_key(path, "allowed key file"))
            except CurveKeyError as exc:
                log.warning("ignoring %s", exc)
        log.info("CURVE allow list: %d client key(s) from %s", len(keys), self.directory)
        return frozenset(keys)

    def allows(self, public_key_z85: bytes) -> bool:
        return public_key_z85 in self.refresh()


class CurveServer:
    """A broker process's CURVE settings: ``socket_setup`` for its sockets and the allow list for ZAP."""

    def __init__(self, public_key: bytes, secret_key: bytes, allow: AllowList, super_users: frozenset[bytes]) -> None:
        self.public_key = public_key
        self._secret_key = secret_key
        self.allow = allow
        self.super_users = frozenset(k.decode("ascii") for k in super_users)  # identities (Z85 text)

    def __repr__(self) -> str:
        return f"CurveServer(public_key={self.public_key.decode()!r}, allow={str(self.allow.directory)!r})"

    def socket_setup(self, sock: zmq.Socket, role: str) -> None:
        """The ROUTER serves CURVE (identities checked by ZAP); DEALERs to other broker processes use our own pair."""
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.public_key)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self._secret_key)
        if role == "router":
            sock.setsockopt(zmq.CURVE_SERVER, 1)
            sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN)
        else:
            sock.setsockopt(zmq.CURVE_SERVERKEY, self.public_key)


class ZapHandler:
    """ZAP (RFC 27) on one context, driven by its I/O thread's poll loop.

    ``allow``: CURVE, only these keys; None: a plaintext ROUTER (every NULL client). ``connections``:
    refuse past ``--max-connections``, except the ``exempt`` keys (the broker's own).
    """

    def __init__(
        self,
        context: zmq.Context,
        allow: AllowList | None,
        *,
        connections: ConnectionMonitor | None = None,
        exempt: frozenset[bytes] = frozenset(),
    ) -> None:
        self._allow = allow
        self._connections = connections
        self._exempt = exempt
        self.socket = context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        try:
            self.socket.bind(ZAP_ENDPOINT)
        except BaseException:
            self.socket.close(linger=0)
            raise
        self.accepted = 0
        self.refused = 0
        self._last_logged: dict[bytes, float] = {}  # refused key -> when it was last logged

    def handle(self) -> None:
        """Answer every pending ZAP request (never blocks)."""
        while True:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._answer(frames)

    def _answer(self, frames: list[bytes]) -> None:
        try:
            split = frames.index(b"")
        except ValueError:
            return  # not a ZAP request
        envelope, request = frames[: split + 1], frames[split + 1 :]
        if len(request) < 6:
            return
        version, request_id, _domain, address, _identity, mechanism, *credentials = request
        status, text, user = b"400", b"unknown public key", b""
        if version != b"1.0":
            status, text = b"500", b"unsupported ZAP version"
        elif self._allow is None:
            status, text = b"200", b"OK"  # plaintext: here only for the connection limit
        elif mechanism != b"CURVE" or not credentials or len(credentials[0]) != 32:
            text = b"CURVE required"
        else:
            key = z85.encode(credentials[0])
            if self._allow.allows(key):
                status, text, user = b"200", b"OK", key
            else:
                self._log_refusal(key, address)
        if status == b"200" and self._connections is not None and not self._connections.admits(address, user in self._exempt):
            status, text, user = REFUSED_STATUS, REFUSED_TEXT, b""
        if status == b"200":
            self.accepted += 1
        else:
            self.refused += 1
        self.socket.send_multipart([*envelope, b"1.0", request_id, status, text, user, b""])

    def _log_refusal(self, key: bytes, address: bytes) -> None:
        """Once a minute per key at most: a refused client's ZeroMQ socket retries every 100 ms."""
        now = time.monotonic()
        if now - self._last_logged.get(key, -_LOG_EVERY_S) < _LOG_EVERY_S:
            return
        if len(self._last_logged) > 10_000:
            self._last_logged.clear()
        self._last_logged[key] = now
        log.warning(
            "refused a CURVE client from %s: public key %s is not in %s",
            address.decode(errors="replace"), key.decode(), self._allow.directory,
        )  # fmt: skip

    def close(self) -> None:
        self.socket.close(linger=0)


def mode_of(path: str | os.PathLike[str]) -> int:
    """The permission bits of ``path`` (for checks and tests)."""
    return stat.S_IMODE(os.stat(path).st_mode)
