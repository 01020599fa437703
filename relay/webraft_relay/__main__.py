"""Command line: ``python -m webraft_relay [serve] [flags]`` and ``... token``.

Owns the CLI. Imports the relay's own modules and the standard library; nothing of webraft
directly.

``main`` is also the ``webraft-relay`` console script. On start the relay prints exactly one
line to stdout, ``webraft relay listening on http://HOST:PORT/ (ws://HOST:PORT/ws)``, and
flushes it: scripts and tests start it with ``--port 0`` and read the URL from that line.
SIGINT and SIGTERM close every connection with 1001 and exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from .config import RelayConfig
from .protocol import issue_token, stats_token
from .server import Relay

__all__ = ["build_config", "main"]

SECRET_ENV = "WEBRAFT_RELAY_SECRET"
_DEFAULTS = {f.name: f.default for f in fields(RelayConfig) if not callable(f.default_factory)}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, for log collectors; a traceback goes in ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _directory(value: str) -> Path | None:
    """``--static ''`` turns a route off; anything else must be an existing directory."""
    if value == "":
        return None
    path = Path(value)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"not a directory: {value}")
    return path


def _optional_seconds(value: str) -> float | None:
    """``0`` disables a keepalive setting (websockets takes ``None`` for that)."""
    seconds = float(value)
    return None if seconds <= 0 else seconds


def _setting(
    p: argparse.ArgumentParser,
    flag: str,
    kind: Callable[[str], Any],
    text: str,
    metavar: str | None = None,
) -> None:
    """A flag for the :class:`RelayConfig` field of the same name, defaulting to its value."""
    name = flag.removeprefix("--").replace("-", "_")
    p.add_argument(
        flag, type=kind, default=_DEFAULTS[name], metavar=metavar,
        help=f"{text} (default: %(default)s)",
    )


#: The flags naming the directories the relay serves files from: the RelayConfig field each
#: sets, and its help.
DIRECTORY_FLAGS = {
    "--static": ("static_dir", "files for / (default: ./browser, the demo; '' disables); the "
                               "library stays at /webraft/ whatever this says"),
    "--pyodide-dir": ("pyodide_dir",
                      "files for /pyodide/ (default: webraft's browser/node_modules/pyodide)"),
    "--dist": ("dist_dir",
               "webraft's wheel, for /dist/ and /webraft/dist/ (default: webraft's dist/)"),
    "--library": ("library_dir",
                  "webraft.js and webraft.d.ts, for /webraft/ (default: webraft's browser/)"),
}


def _serve_parser() -> argparse.ArgumentParser:
    d = _DEFAULTS
    p = argparse.ArgumentParser(
        prog="webraft-relay",
        description="WebSocket relay (and static file server) for webraft nodes in browser tabs.",
        epilog="Subcommand: 'token --secret S --room R [--ttl S] [--address A]' prints a "
        "hello token for a room; "
        "'token --secret S --stats' the bearer token of /stats and /metrics.",
    )
    p.add_argument("--host", default=d["host"], help="interface to bind (default: %(default)s)")
    _setting(p, "--port", int, "TCP port; 0 picks a free one")
    # SUPPRESS: an absent flag leaves no attribute, so the RelayConfig default applies, while
    # an explicit '' (-> None) switches the route off.
    for flag, (field, what) in DIRECTORY_FLAGS.items():
        p.add_argument(flag, dest=field, type=_directory, metavar="DIR",
                       default=argparse.SUPPRESS, help=what)
    p.add_argument(
        "--tls-cert",
        type=Path,
        metavar="PEM",
        help="certificate chain: serve https:// and wss:// (needs --tls-key)",
    )
    p.add_argument("--tls-key", type=Path, metavar="PEM", help="private key of --tls-cert")
    p.add_argument(
        "--secret",
        default=os.environ.get(SECRET_ENV),
        help=f"require HMAC room tokens (default: ${SECRET_ENV}; prefer the "
        "environment, command lines are visible to other users)",
    )
    p.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="browser origin allowed to connect and to load /webraft/, /pyodide/ and /dist/ "
        "(CORS), e.g. http://127.0.0.1:8765 (repeatable; default: any)",
    )
    _setting(p, "--max-message-size", int, "largest incoming frame", "BYTES")
    _setting(p, "--rate", float, "messages/s per connection, 0 = unlimited")
    _setting(p, "--burst", int, "rate-limit bucket size")
    _setting(p, "--byte-rate", float, "incoming bytes/s per connection; over it the relay "
             "stops reading the connection for a while, 0 = unlimited", "BYTES")
    _setting(p, "--byte-burst", int, "bytes a connection may send back to back", "BYTES")
    _setting(p, "--max-batch", int, "messages per batch frame")
    _setting(p, "--max-room-size", int, "members per room")
    _setting(p, "--max-connections", int, "connections per relay, lowered at start to what "
             "the file descriptor limit allows")
    _setting(p, "--max-connections-per-ip", int, "connections from one IP address, 0 = "
             "unlimited; keep 0 behind a proxy (every client has its address)", "N")
    _setting(p, "--max-buffered-bytes", int, "queued bytes for all receivers together "
             "before dropping", "BYTES")
    _setting(p, "--max-outbound-bytes", int, "queued bytes per receiver before dropping",
             "BYTES")
    _setting(p, "--max-hello-size", int, "largest frame before the welcome", "BYTES")
    _setting(p, "--hello-timeout", float, "seconds to send the hello", "S")
    _setting(p, "--ping-interval", _optional_seconds, "keepalive ping period, 0 = off", "S")
    _setting(p, "--ping-timeout", _optional_seconds, "keepalive pong timeout, 0 = off", "S")
    _setting(p, "--close-timeout", float, "closing handshake timeout", "S")
    p.add_argument(
        "--redis",
        metavar="URL",
        help="redis://HOST:PORT of a Redis >= 7 shared by several relays serving the same rooms "
        "(default: none, this relay serves its rooms alone)",
    )
    _setting(p, "--redis-ttl", float, "with --redis: seconds a member outlives its dead relay",
             "S")
    p.add_argument(
        "--compression",
        action="store_true",
        help="negotiate permessage-deflate (off by default: costs relay CPU)",
    )
    p.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="json: one object per line with ts, level, logger, message (default: %(default)s)",
    )
    p.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="(default: %(default)s)",
    )
    return p


def build_config(args: argparse.Namespace) -> RelayConfig:
    """Turn parsed flags into a :class:`RelayConfig` (directories left unset keep defaults)."""
    dirs = {field: getattr(args, field) for field, _ in DIRECTORY_FLAGS.values()
            if hasattr(args, field)}
    return RelayConfig(
        host=args.host,
        port=args.port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        secret=args.secret or None,
        allow_origins=tuple(args.allow_origin),
        max_message_size=args.max_message_size,
        rate=args.rate,
        burst=args.burst,
        byte_rate=args.byte_rate,
        byte_burst=args.byte_burst,
        max_batch=args.max_batch,
        max_room_size=args.max_room_size,
        max_connections=args.max_connections,
        max_connections_per_ip=args.max_connections_per_ip,
        max_outbound_bytes=args.max_outbound_bytes,
        max_buffered_bytes=args.max_buffered_bytes,
        max_hello_size=args.max_hello_size,
        hello_timeout=args.hello_timeout,
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        close_timeout=args.close_timeout,
        compression=args.compression,
        redis=args.redis,
        redis_ttl=args.redis_ttl,
        **dirs,
    )


async def _run(config: RelayConfig) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows loops
            loop.add_signal_handler(sig, stop.set)
    relay = Relay(config)
    try:
        await relay.start()
    except OSError as exc:
        print(
            f"webraft-relay: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr
        )
        return 1
    print(f"webraft relay listening on {relay.url} ({relay.ws_url})", flush=True)
    try:
        await stop.wait()
    finally:
        await relay.stop()
    return 0


def _token(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="webraft-relay token", description="Print the hello token for a room."
    )
    p.add_argument(
        "--secret",
        default=os.environ.get(SECRET_ENV),
        help=f"relay secret (default: ${SECRET_ENV})",
    )
    scope = p.add_mutually_exclusive_group(required=True)
    scope.add_argument("--room", help="the token of this room's hello")
    scope.add_argument(
        "--stats", action="store_true", help="the bearer token of /stats and /metrics"
    )
    p.add_argument(
        "--ttl",
        type=float,
        metavar="S",
        help="the room token expires after S seconds (default: never)",
    )
    p.add_argument("--address", help="the room token admits only this member address")
    args = p.parse_args(argv)
    if not args.secret:
        p.error(f"--secret or ${SECRET_ENV} is required")
    if args.stats:
        print(stats_token(args.secret))
        return 0
    expires = None if args.ttl is None else int(time.time() + args.ttl)
    print(issue_token(args.secret, args.room, expires=expires, address=args.address))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m webraft_relay`` and of the ``webraft-relay`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["token"]:
        return _token(argv[1:])
    if argv[:1] == ["serve"]:
        argv = argv[1:]
    parser = _serve_parser()
    args = parser.parse_args(argv)
    try:
        config = build_config(args)
    except ValueError as exc:
        parser.error(str(exc))
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if args.log_format == "json"
        else logging.Formatter("%(asctime)s %(name)s %(message)s")
    )
    logging.basicConfig(level=args.log_level, handlers=[handler])
    if args.log_level != "DEBUG":
        # websockets logs every connection and HTTP request at INFO: too chatty for a relay.
        logging.getLogger("websockets").setLevel(
            max(logging.WARNING, logging.getLevelName(args.log_level))
        )
    try:
        return asyncio.run(_run(config))
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return 130


if __name__ == "__main__":
    sys.exit(main())
