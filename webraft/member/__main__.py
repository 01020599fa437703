"""``python -m webraft.member`` (console script ``webraft-node``): run a durable member, or talk
to one.

Run a node::

    python -m webraft.member --relay ws://127.0.0.1:8765/ws --room demo --data ./node-a \\
        --address a --members a,b,c [--token T] [--control 127.0.0.1:0]

It keeps term, vote, snapshot and log in ``DATA/raft.sqlite3`` (and its relay session in
``DATA/session``), prints one line ``webraft node a control on http://127.0.0.1:PORT``
(flushed) once it runs, and stops cleanly on SIGINT or SIGTERM (exit 0). ``--members`` only
matters the first time a data directory is used: afterwards the stored configuration wins.
``--join`` instead starts outside any cluster and waits to be added, e.g. by a browser cluster
whose leader adds every peer of the room (``--auto-membership`` gives this node the same
policy while it leads). The key-value store is restored on start from the snapshot plus the
log after it. A relay that refuses the node for good (wrong token, address held by another
node) ends it with exit status 1; bad arguments exit with 2.

Talk to a running node (``--control`` is the URL it printed)::

    python -m webraft.member put KEY VALUE --control URL   # VALUE: JSON, or else a string
    python -m webraft.member get KEY --control URL
    python -m webraft.member del KEY --control URL
    python -m webraft.member status --control URL

Each prints the node's JSON answer and exits 0 on success, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import secrets
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import StorageError
from .control import ControlServer, key_path, request
from .kv import KVStore

__all__ = ["main"]

PROG = "webraft-node"
TOKEN_ENV = "WEBRAFT_RELAY_TOKEN"
CLIENT_COMMANDS = ("put", "get", "del", "status")
SESSION_FILE = "session"
DATABASE_FILE = "raft.sqlite3"


# ------------------------------------------------------------------ running a node


def _members(value: str) -> list[str]:
    members = [m.strip() for m in value.split(",") if m.strip()]
    if not members or len(set(members)) != len(members):
        raise argparse.ArgumentTypeError("a comma-separated list of distinct addresses")
    return members


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not sep or not host or not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError("HOST:PORT, e.g. 127.0.0.1:0")
    return host.strip("[]"), number


def _positive(value: str) -> float:
    seconds = float(value)
    if not seconds > 0:
        raise argparse.ArgumentTypeError("must be positive")
    return seconds


def _count(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def node_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Run a durable webraft member (a replicated key-value store) that talks "
        "to its peers through a relay.",
        epilog="Client commands: put KEY VALUE | get KEY | del KEY | status, each with "
        "--control URL.",
    )
    p.add_argument("--relay", required=True, metavar="URL", help="ws://HOST:PORT/ws")
    p.add_argument("--room", required=True, help="the cluster's room on the relay")
    p.add_argument("--data", required=True, type=Path, metavar="DIR",
                   help="data directory (created if missing)")
    p.add_argument("--address", required=True, help="this node's address in the room")
    founding = p.add_mutually_exclusive_group(required=True)
    founding.add_argument("--members", type=_members, metavar="A,B,C",
                          help="voters of a new cluster, this node included (ignored once "
                          "DIR holds state)")
    founding.add_argument("--join", action="store_true",
                          help="start outside any cluster and wait to be added")
    p.add_argument("--auto-membership", action="store_true",
                   help="while leading, add the room's peers and remove members gone longer "
                   "than --grace (the browser tabs' policy)")
    p.add_argument("--grace", type=_positive, default=20.0, metavar="S",
                   help="with --auto-membership: seconds before a gone member is removed "
                   "(default: %(default)s)")
    p.add_argument("--token", default=os.environ.get(TOKEN_ENV),
                   help=f"room token if the relay has a secret (default: ${TOKEN_ENV})")
    p.add_argument("--control", type=_host_port, default=("127.0.0.1", 0),
                   metavar="HOST:PORT", help="control HTTP server (default: 127.0.0.1:0)")
    p.add_argument("--heartbeat", type=_positive, default=0.05, metavar="S",
                   help="leader heartbeat interval; the follower timeout is 4x, the election "
                   "timeout 3x-6x (default: %(default)s)")
    p.add_argument("--snapshot-entries", type=_count, default=4096, metavar="N",
                   help="snapshot the store and compact the log every N applied entries "
                   "(default: %(default)s)")
    p.add_argument("--proposal-timeout", type=_positive, default=5.0, metavar="S",
                   help="longest a PUT waits for its outcome (default: %(default)s)")
    p.add_argument("--log-level", default="WARNING",
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def load_session(data: Path) -> str:
    """The relay session of this data directory, created on first use.

    Kept on disk so that a restarted process takes its address back from a connection the
    relay has not yet seen die (instead of being refused with 4008). Safe because the SQLite
    lock already guarantees one process per data directory.
    """
    path = data / SESSION_FILE
    with contextlib.suppress(OSError, UnicodeDecodeError):
        session = path.read_text().strip()
        if 0 < len(session) <= 128 and session.isascii() and session.isprintable():
            return session
    session = secrets.token_hex(16)
    tmp = path.with_name(SESSION_FILE + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(session + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return session


async def run_node(args: argparse.Namespace) -> int:
    """Run one member until a signal (0) or a final refusal by the relay (1)."""
    from ..storage.sqlite import SQLiteStorage
    from ..transport.relay import RelayClosed, check_name
    from ..transport.websocket import RelayRaft, relay_url

    heartbeat: float = args.heartbeat
    proposal_timeout: float = args.proposal_timeout
    auto: bool = args.auto_membership
    grace: float = args.grace
    snapshot_entries: int = args.snapshot_entries
    members: list[str] = [] if args.join else args.members
    rng = random.Random()

    class Member(RelayRaft):
        """RelayRaft with the timing chosen on the command line."""

        @property
        def heartbeat_frequency(self) -> float:
            return heartbeat

        @property
        def heartbeat_timeout(self) -> float:
            return 4 * heartbeat

        @property
        def election_timeout(self) -> float:
            return rng.uniform(3 * heartbeat, 6 * heartbeat)

        @property
        def proposal_timeout(self) -> float:
            return proposal_timeout

        @property
        def auto_membership(self) -> bool:
            return auto

        @property
        def member_grace(self) -> float:
            return grace

        @property
        def snapshot_entries(self) -> int:
            return snapshot_entries

        @property
        def snapshot_tail(self) -> int:
            return min(super().snapshot_tail, snapshot_entries)

    # Check every argument before touching the data directory.
    if members and args.address not in members:
        return _fail(f"--address {args.address!r} is not one of --members {members}", 2)
    try:
        check_name(args.room, "--room")
        for member in members:
            check_name(member, "each of --members")
        relay_url(args.relay)
    except ValueError as exc:
        return _fail(str(exc), 2)
    try:
        args.data.mkdir(parents=True, exist_ok=True)
        storage = SQLiteStorage(args.data / DATABASE_FILE, threaded=True)
    except (StorageError, OSError) as exc:
        return _fail(str(exc))
    try:
        session = load_session(args.data)
        kv = KVStore()
        node = Member(args.address, url=args.relay, room=args.room, members=members,
                      storage=storage, token=args.token, session=session)
    except (ValueError, StorageError, OSError) as exc:
        storage.close()
        return _fail(str(exc))
    kv.attach(node)
    stop = asyncio.Event()
    exit_code = 0

    def on_error(exc: BaseException) -> None:
        nonlocal exit_code
        if isinstance(exc, RelayClosed):
            print(f"{PROG}: {exc}", file=sys.stderr, flush=True)
            exit_code = 1
            stop.set()

    node.listen("error", on_error)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows loops
            loop.add_signal_handler(sig, stop.set)
    host, port = args.control
    control = ControlServer(node, kv, host, port)
    try:
        try:
            await control.start()
        except OSError as exc:
            return _fail(f"cannot listen on {host}:{port}: {exc}")
        node.start()
        print(f"webraft node {args.address} control on {control.url}", flush=True)
        await stop.wait()
    finally:
        await control.close()
        await node.close()
        storage.close()
    return exit_code


def _fail(message: str, code: int = 1) -> int:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)
    return code


# ------------------------------------------------------------------ client commands


def client_main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog=f"{PROG} {argv[0]}",
                                description="Talk to a running member's control server.")
    p.add_argument("command", choices=CLIENT_COMMANDS)
    if argv[0] in ("put", "get", "del"):
        p.add_argument("key")
    if argv[0] == "put":
        p.add_argument("value", help="a JSON value; anything that is not JSON is a string")
    p.add_argument("--control", required=True, metavar="URL",
                   help="the URL the node printed, e.g. http://127.0.0.1:40123")
    p.add_argument("--timeout", type=_positive, default=30.0, metavar="S")
    args = p.parse_args(argv)
    method, path, body = "GET", "/status", None
    if args.command in ("put", "get", "del"):
        path = key_path(args.key)
    if args.command == "put":
        method, body = "PUT", _value(args.value)
    elif args.command == "del":
        method = "DELETE"
    try:
        status, answer = request(args.control, method, path, body, timeout=args.timeout)
    except (OSError, ValueError) as exc:
        return _fail(f"cannot reach {args.control}: {exc}")
    ok = 200 <= status < 300
    if args.command == "get" and ok:
        print(json.dumps(answer.get("value")))
    else:
        print(json.dumps(answer), file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


# ------------------------------------------------------------------ entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m webraft.member`` and of the ``webraft-node`` script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in CLIENT_COMMANDS:
        return client_main(argv)
    if argv[:1] == ["run"]:
        argv = argv[1:]
    args = node_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    try:
        return asyncio.run(run_node(args))
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return 130


if __name__ == "__main__":
    sys.exit(main())
