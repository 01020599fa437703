"""Relay settings in one immutable value.

Owns :class:`RelayConfig`. Of webraft, imports only :mod:`webraft.transport.wire`'s defaults; no
sockets.

The CLI builds a :class:`RelayConfig` from flags; tests build one directly with small limits and
timeouts. Keeping every knob here (rather than as module constants) is what lets the test suite
exercise each limit in milliseconds without monkeypatching.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from webraft.transport.wire import DEFAULT_MAX_BATCH, DEFAULT_MAX_FRAME_BYTES

from .redis_resp import parse_redis_url

__all__ = ["RelayConfig", "default_dir", "own_dir"]

MiB = 1024 * 1024


#: The source checkout this package was imported from (``relay/webraft_relay/`` in it); in an
#: installed package, a directory that holds none of the files looked up here.
CHECKOUT = Path(__file__).resolve().parents[2]


def default_dir(*parts: str) -> Path | None:
    """Find the directory for ``/`` (``browser/``, the demo).

    Looked up in the current directory first (how the relay is started in development and CI),
    then in the source checkout this package was imported from. ``None`` when neither holds a
    non-empty one, so a relay started elsewhere serves only the WebSocket, the library and the
    health endpoints.
    """
    return _first((Path.cwd(), CHECKOUT), parts, "*")


def own_dir(*parts: str, holding: str) -> Path | None:
    """Find a directory of webraft's own files (the library, its wheel, Pyodide).

    Looked up in the source checkout first, then in the current directory, and taken only if
    it holds a file matching ``holding``: an app started beside its own ``browser/`` or
    ``dist/`` (a bundler's output folder) must not have those served as the library's.
    """
    return _first((CHECKOUT, Path.cwd()), parts, holding)


def _first(bases: tuple[Path, ...], parts: tuple[str, ...], holding: str) -> Path | None:
    for base in bases:
        candidate = base.joinpath(*parts)
        if candidate.is_dir() and next(candidate.glob(holding), None) is not None:
            return candidate
    return None


@dataclass(frozen=True, slots=True)
class RelayConfig:
    """Everything a relay needs to know; defaults suit a developer machine.

    Attributes:
        host: interface to bind; loopback by default because the relay has no TLS.
        port: TCP port; 0 asks the OS for a free one (tests, benchmarks).
        static_dir: root for ``/`` and every path not claimed by another route (default:
            ``browser/``, the demo, from the current directory or the checkout).
        pyodide_dir: served under ``/pyodide/`` with long-lived caching (the npm package is
            version-pinned, so its files never change under the same URL).
        dist_dir: served under ``/dist/`` and ``/webraft/dist/`` (our wheel), revalidated on
            every load.
        library_dir: the directory of ``webraft.js`` and ``webraft.d.ts``, served under
            ``/webraft/`` whatever ``static_dir`` is. The defaults of these three are
            webraft's own files (:func:`own_dir`), never an app's folders of the same name.
        tls_cert: PEM certificate chain; with ``tls_key``, the port serves ``https://`` and
            ``wss://`` instead of plain HTTP and WebSocket.
        tls_key: PEM private key of ``tls_cert``.
        secret: when set, a hello must carry ``token = hex HMAC-SHA256(secret, room)``.
        allow_origins: browser origins allowed to open the WebSocket, and whose pages may
            read the library, the wheel and Pyodide (CORS); empty allows any.
            Requests without an ``Origin`` header (non-browser clients) are always allowed.
        max_message_size: largest incoming frame in bytes; larger closes with 1009.
        rate: sustained routed messages per second per connection; 0 disables the limit.
        burst: token-bucket depth, i.e. how many messages may arrive back to back.
        byte_rate: sustained bytes of incoming frames per second per connection; 0 disables
            it. Over it, the relay stops reading the connection until it is back under (no
            frame is dropped): one connection's big frames cannot take every room's CPU.
        byte_burst: bytes a connection may send back to back before it is paced.
        max_batch: most messages in one ``batch`` frame (must fit in ``burst``).
        max_room_size: members per room; one more is refused with 4013.
        max_connections: WebSocket connections per relay; one more is refused with 1013.
        max_connections_per_ip: connections from one IP address; one more is refused with
            1013. 0 (the default) disables it: behind a reverse proxy every client has the
            proxy's address, and on loopback every tab has 127.0.0.1.
        max_buffered_bytes: bytes queued for all receivers together; past it, messages are
            dropped as ``memory_full``. At least ``max_message_size``.
        max_outbound_bytes: bytes queued for one receiver before messages to it are dropped;
            this is what keeps a slow or dead tab from stalling its room.
        max_hello_size: largest frame before the welcome (larger closes with 1009), so that a
            connection that has not joined costs a few KiB, not max_message_size.
        hello_timeout: seconds a new connection has to send its hello.
        ping_interval: seconds between WebSocket keepalive pings (``None`` disables).
        ping_timeout: seconds to wait for the pong before dropping the connection.
        close_timeout: seconds to wait for a closing handshake before cutting TCP.
        compression: negotiate permessage-deflate. Off by default: Raft messages are small
            and the relay's CPU, not loopback bandwidth, is what limits throughput.
        redis: ``redis://`` URL of a Redis >= 7 server shared by several relays serving the
            same rooms (see :mod:`.redis_bus`); ``None`` for a relay on its own.
        redis_ttl: seconds a member's claim outlives its relay: after a relay dies, the
            other relays tell the room its members left within about this long.
    """

    host: str = "127.0.0.1"
    port: int = 8765
    static_dir: Path | None = field(default_factory=lambda: default_dir("browser"))
    pyodide_dir: Path | None = field(
        default_factory=lambda: own_dir("browser", "node_modules", "pyodide",
                                        holding="pyodide.mjs")
    )
    dist_dir: Path | None = field(default_factory=lambda: own_dir("dist", holding="webraft-*.whl"))
    library_dir: Path | None = field(
        default_factory=lambda: own_dir("browser", holding="webraft.js")
    )
    tls_cert: Path | None = None
    tls_key: Path | None = None
    secret: str | None = None
    allow_origins: tuple[str, ...] = ()
    max_message_size: int = DEFAULT_MAX_FRAME_BYTES
    rate: float = 2000.0
    burst: int = 4000
    byte_rate: float = 2 * MiB
    byte_burst: int = 4 * MiB
    max_batch: int = DEFAULT_MAX_BATCH
    max_room_size: int = 64
    max_connections: int = 10_000
    max_connections_per_ip: int = 0
    max_outbound_bytes: int = 8 * MiB
    max_buffered_bytes: int = 256 * MiB
    max_hello_size: int = 4096
    hello_timeout: float = 10.0
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    close_timeout: float = 10.0
    compression: bool = False
    redis: str | None = None
    redis_ttl: float = 10.0

    def __post_init__(self) -> None:
        """Reject settings that would make the relay refuse everything or nothing silently."""
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        for name in (
            "max_message_size",
            "max_batch",
            "max_room_size",
            "max_connections",
            "max_outbound_bytes",
            "burst",
            "byte_burst",
            "max_hello_size",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if self.max_connections_per_ip < 0:
            raise ValueError("max_connections_per_ip must be >= 0 (0 disables it)")
        if self.max_buffered_bytes < self.max_message_size:
            raise ValueError(
                f"max_buffered_bytes ({self.max_buffered_bytes}) must be at least "
                f"max_message_size ({self.max_message_size})"
            )
        for name in ("rate", "byte_rate"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0 disables it), got {getattr(self, name)}")
        if self.rate > 0 and self.max_batch > self.burst:
            # A batch costs one token per message: a batch larger than the bucket could never
            # be admitted, which would look like a silent black hole to the client.
            raise ValueError(f"max_batch ({self.max_batch}) must not exceed burst ({self.burst})")
        if self.redis is not None:
            parse_redis_url(self.redis)  # ValueError now rather than at the first hello
        if self.redis_ttl <= 0:
            raise ValueError(f"redis_ttl must be positive, got {self.redis_ttl}")
        if self.hello_timeout <= 0 or self.close_timeout <= 0:
            raise ValueError("hello_timeout and close_timeout must be positive")
