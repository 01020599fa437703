"""``python -m webraft.member`` (console script ``webraft-node``): run a durable member, or talk
to one.

Owns the member's command line and its node's wiring. Imports the runtime, storages and
transports; never ``js`` or the simulator, and nothing imports it.

Run a node whose peers are reached through a relay::

    python -m webraft.member --relay ws://127.0.0.1:8765/ws --room demo --data ./node-a \\
        --address a --members a,b,c [--token T | --token-file PATH] [--control 127.0.0.1:0]

(``--token-file`` is read again before each connection, so a token that expires can be
renewed by rewriting the file) or one of a cluster of servers linked directly over TCP,
with no relay (every member is given every other member's link address), its links over
TLS if asked (mutual with ``--tls-ca``; see ``docs/direct-links.md``)::

    python -m webraft.member --listen 127.0.0.1:7001 --peer b=127.0.0.1:7002 \\
        --peer c=127.0.0.1:7003 --data ./node-a --address a --members a,b,c [--token T] \\
        [--tls-cert a.pem --tls-key a.key [--tls-ca ca.pem]]

or a relay member that also links directly to the room's members that listen too (servers
in a browser cluster: their messages to each other skip the relay)::

    python -m webraft.member --relay ws://127.0.0.1:8765/ws --room demo --listen 10.0.0.5:7001 \
        --data ./node-a --address a --join --auto-membership [--tls-cert a.pem ...]

It keeps term, vote, snapshot and log in ``DATA/raft.sqlite3`` (and, with a relay, its relay
session in ``DATA/session``), prints one line ``webraft node a control on
http://127.0.0.1:PORT`` (flushed) once it runs, with ``--listen`` followed by a second line
``webraft node a links on HOST:PORT`` (the bound port if PORT was 0), and stops cleanly on
SIGINT or SIGTERM (exit 0). ``--members`` only matters the first time a data directory is
used: afterwards the stored configuration wins. ``--join`` instead starts outside any cluster
and waits to be added, e.g. by a browser cluster whose leader adds every peer of the room
(``--auto-membership`` gives this node the same policy while it leads); with direct links the
leader adds a joiner once it links to it, so the members need a ``--peer`` for the joiner and
the joiner one for each member. The key-value store is restored on start from the snapshot
plus the log after it. A relay that refuses the node for good (wrong token, address held by
another node) ends it with exit status 1; a refused direct link does not (either side's token
may be the wrong one): it is logged, retried, and shown by ``status`` (``link_error``, next
to ``listen`` and each peer's ``links`` entry: its address and whether our link is up). Bad
arguments exit with 2.

Talk to a running node (``--control`` is the URL it printed)::

    python -m webraft.member put KEY VALUE --control URL   # VALUE: JSON, or else a string
    python -m webraft.member get KEY [--linearizable] --control URL
    python -m webraft.member delete KEY --control URL      # or: del KEY
    python -m webraft.member cas KEY VALUE (--expect OLD | --absent) --control URL
    python -m webraft.member status --control URL

``get`` reads this node's state (which may lag the leader) unless ``--linearizable``: then the
node confirms a read index with the leader first (see :mod:`webraft.member.control`). ``cas``
sets KEY to VALUE only if it holds OLD (or, with ``--absent``, nothing): the comparison is
made in the state machine, when the command is applied. ``put``, ``delete`` and ``cas`` take
``--request-id ID``: a retry with the same ID, through any member, applies once and prints the
first outcome. Each prints the node's JSON answer (``get``: the value) and exits 0 on success,
1 otherwise (a ``cas`` that did not swap included).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import sys
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from ..errors import StorageError
from ..runtime import NodeConfig, RaftInterface
from ..storage import Storage
from ..transport.direct_raft import DirectTransport
from ..transport.node import host_port, is_wildcard, link_host
from ..transport.relay import RelayClosed
from ..transport.tcp import TLS
from ..transport.wire import check_name
from .control import ControlServer, Reachable, key_path, request
from .kv import KVStore
from .metrics import Metrics

__all__ = ["main"]

PROG = "webraft-node"
TOKEN_ENV = "WEBRAFT_RELAY_TOKEN"
CLIENT_COMMANDS = ("put", "get", "del", "delete", "cas", "status")
SESSION_FILE = "session"
DATABASE_FILE = "raft.sqlite3"
#: ``--room`` with ``--listen`` when none is given (DirectTransport's own default).
DIRECT_ROOM = "webraft"


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


def _peer(value: str) -> tuple[str, tuple[str, int]]:
    """``NAME=HOST:PORT``: a member's address and where it accepts links (a real port)."""
    name, sep, where = value.partition("=")
    try:
        check_name(name.strip(), "NAME")
        host, port = _host_port(where)
    except (ValueError, argparse.ArgumentTypeError):
        host, port = "", 0
    if not sep or not host or port == 0:
        raise argparse.ArgumentTypeError("NAME=HOST:PORT, e.g. b=10.0.0.2:7001")
    return name.strip(), (host, port)


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
        "to its peers through a relay (--relay), over direct TCP links (--listen, --peer), or "
        "both (--relay with --listen).",
        epilog="Client commands, each with --control URL: put KEY VALUE [--request-id ID] | "
        "get KEY [--linearizable] | delete KEY [--request-id ID] | cas KEY VALUE (--expect OLD "
        "| --absent) [--request-id ID] | status. 'webraft-node COMMAND --help' tells more.",
    )
    links = p.add_argument_group("how peers are reached (--relay, --listen, or both)")
    links.add_argument("--relay", metavar="URL", help="ws://HOST:PORT/ws")
    links.add_argument("--listen", type=_host_port, metavar="HOST:PORT",
                       help="accept direct links from peers here; without --relay, the "
                       "--peer members are the peers; with it, the room's members that "
                       "listen too link to each other and skip the relay")
    links.add_argument("--peer", type=_peer, action="append", default=[],
                       metavar="NAME=HOST:PORT",
                       help="with --listen and no --relay: another member and its --listen "
                       "address; repeat for every other member (and for nodes that will "
                       "--join)")
    links.add_argument("--tls-cert", type=Path, metavar="PEM",
                       help="with --listen (with or without --relay): encrypt the direct "
                       "links with TLS, presenting this certificate (chain) on both sides of "
                       "each; needs --tls-key")
    links.add_argument("--tls-key", type=Path, metavar="PEM",
                       help="the private key of --tls-cert")
    links.add_argument("--tls-ca", type=Path, metavar="PEM",
                       help="mutual TLS: accept only certificates this CA signed, and ask "
                       "dialers for theirs (default: check acceptors against the system's "
                       "CAs, ask dialers for nothing); the token's proof is made either way")
    links.add_argument("--advertise", metavar="HOST",
                       help="with --relay and --listen: the host peers dial (needed when "
                       "--listen is a wildcard such as 0.0.0.0)")
    p.add_argument("--room", help="the cluster's name, the same on every member: its room on "
                   "the relay (required with --relay); with --listen, links from another room "
                   "are refused, which keeps clusters sharing machines apart (default: "
                   f"{DIRECT_ROOM})")
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
                   help="room token if the relay has a secret; with --listen, the secret "
                   f"every link proves (default: ${TOKEN_ENV})")
    p.add_argument("--token-file", type=Path, metavar="PATH",
                   help="with --relay, instead of --token: a file holding the room token, "
                   "read again before each connection, so that whatever renews an expiring "
                   "token (webraft-relay token --ttl) only has to rewrite it")
    p.add_argument("--control", type=_host_port, default=("127.0.0.1", 0),
                   metavar="HOST:PORT", help="control HTTP server (default: 127.0.0.1:0)")
    p.add_argument("--heartbeat", type=_positive, default=0.05, metavar="S",
                   help="leader heartbeat interval; the follower timeout is 4x, the election "
                   "timeout 3x-6x (default: %(default)s)")
    p.add_argument("--snapshot-entries", type=_count, default=4096, metavar="N",
                   help="snapshot the store and compact the log every N applied entries "
                   "(default: %(default)s)")
    p.add_argument("--proposal-timeout", type=_positive, default=5.0, metavar="S",
                   help="longest a PUT waits for its outcome while the member knows a "
                   "leader or has never known one; a member cut off from the others "
                   "answers sooner (default: %(default)s)")
    p.add_argument("--log-format", default="text", choices=["text", "json"],
                   help="json: one JSON object per line on stderr (time, level, logger, "
                   "message, and exc if any), for log collectors (default: %(default)s)")
    p.add_argument("--log-level", default="WARNING",
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def check_links(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject (exit 2) combinations of the link flags argparse cannot express on its own.

    Three ways to reach peers: ``--relay`` (the room's members), ``--listen`` with ``--peer``s
    (direct links, no relay), or both ``--relay`` and ``--listen`` (the room's members, over
    direct links with those that listen too).
    """
    if args.relay is None and args.listen is None:
        parser.error("one of --relay or --listen is required")
    if args.token_file is not None and args.relay is None:
        parser.error("--token-file is for --relay (the relay's tokens are the ones that expire)")
    if args.peer and (args.listen is None or args.relay is not None):
        parser.error("--peer is for --listen without --relay (with a relay, the room's "
                     "members are the peers and offer their links themselves)")
    if args.advertise is not None and (args.relay is None or args.listen is None):
        parser.error("--advertise is for --relay with --listen: the host peers dial")
    if args.advertise is not None and link_host(args.advertise) is None:
        parser.error(f"--advertise takes a host name or an address, without a port: "
                     f"{args.advertise!r}")
    if args.relay is not None and args.room is None:
        parser.error("--relay needs --room")
    if (args.relay is not None and args.listen is not None and args.advertise is None
            and is_wildcard(args.listen[0])):
        parser.error(f"--listen {args.listen[0] or '(any)'} needs --advertise HOST: the "
                     "address peers can dial")
    tls = (args.tls_cert, args.tls_key, args.tls_ca)
    if any(f is not None for f in tls) and args.listen is None:
        parser.error("--tls-cert, --tls-key and --tls-ca are for the links of --listen")
    if (args.tls_cert is None) != (args.tls_key is None) or (
            args.tls_ca is not None and args.tls_cert is None):
        parser.error("TLS needs both --tls-cert and --tls-key (and --tls-ca is for them)")
    names = [name for name, _ in args.peer]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        parser.error(f"--peer {', '.join(duplicates)} given more than once")
    if args.address in names:
        parser.error(f"--peer {args.address} names this node (--address): give it --listen")
    if args.listen is not None and args.relay is None:
        if args.room is None:
            args.room = DIRECT_ROOM
        # A voter we have no address for could never receive a vote request or an append.
        unknown = [m for m in args.members or [] if m != args.address and m not in names]
        if unknown:
            parser.error(f"--members {', '.join(unknown)} without --peer: direct links "
                         "need every other member's address")


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


@dataclass(frozen=True)
class Tuning:
    """The timing and membership policy chosen on the command line."""

    heartbeat: float
    proposal_timeout: float
    auto_membership: bool
    grace: float
    snapshot_entries: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Tuning:
        return cls(args.heartbeat, args.proposal_timeout, args.auto_membership, args.grace,
                   args.snapshot_entries)

    def config(self) -> NodeConfig:
        """The node's configuration: the follower timeout is 4 heartbeats, the election
        timeout 3 to 6, and a snapshot keeps no more entries than it is taken after."""
        beat = self.heartbeat
        return NodeConfig(
            heartbeat_frequency=beat, heartbeat_timeout=4 * beat,
            election_timeout=(3 * beat, 6 * beat), proposal_timeout=self.proposal_timeout,
            auto_membership=self.auto_membership, member_grace=self.grace,
            snapshot_entries=self.snapshot_entries,
            snapshot_tail=min(NodeConfig().snapshot_tail, self.snapshot_entries))


class Links(Protocol):
    """What a member that listens for direct links shows and waits for."""

    async def listening(self) -> tuple[str, int]: ...

    def status(self) -> dict[str, Any]: ...


class Built(NamedTuple):
    """A member as :func:`build_node` made it."""

    node: RaftInterface
    #: What ``status`` says about how peers are reached (room, connected).
    transport: Reachable
    #: The direct links, with ``--listen``.
    links: Links | None
    #: With direct links and no relay: the ``--peer``\ s, to warn about members without one.
    direct: DirectTransport | None


def read_token(path: Path) -> str:
    """The token in ``path`` (``--token-file``), read before each relay connection; an
    unreadable file fails that attempt, which is retried after the back-off."""
    return path.read_text(encoding="utf-8").strip()


def build_node(args: argparse.Namespace, members: list[str], storage: Storage,
               metrics: Metrics) -> Built:
    """The node the arguments ask for: the one place that picks a transport (``metrics``
    time its storage and count what its transport sends)."""
    config = Tuning.from_args(args).config()
    tls = None
    if args.tls_cert is not None:
        try:
            tls = TLS.from_files(args.tls_cert, args.tls_key, args.tls_ca)
        except OSError as exc:  # ssl.SSLError too
            raise ValueError(f"cannot use --tls-cert, --tls-key or --tls-ca: {exc}") from exc
    if args.relay is not None:
        from ..transport.websocket import relay_transport

        relay, offered, transport = relay_transport(
            args.address, url=args.relay, room=args.room,
            token=args.token if args.token_file is None else partial(read_token, args.token_file),
            session=load_session(args.data), listen=args.listen, advertise=args.advertise,
            tls=tls)
        node = RaftInterface(args.address, members=members, storage=metrics.timed(storage),
                             transport=metrics.counted(transport), config=config)
        return Built(node, relay, offered, None)
    direct = DirectTransport(args.address, listen=args.listen, peers=dict(args.peer),
                             room=args.room, token=args.token, tls=tls)
    node = RaftInterface(args.address, members=members, storage=metrics.timed(storage),
                         transport=metrics.counted(direct), config=config)
    return Built(node, direct, direct, direct)


def _warn_unreachable(node: RaftInterface, direct: DirectTransport, warned: set[str]) -> None:
    """Say so (once per member) when the configuration holds a member we have no ``--peer``
    for: the stored configuration or a membership change may name members the command line
    did not, and such a member can never hear from this node."""
    unknown = sorted((set(node.members) | set(node.learners))
                     - set(direct.peers) - {node.address} - warned)
    if unknown:
        warned.update(unknown)
        print(f"{PROG}: warning: no --peer for member(s) {', '.join(unknown)}: this node "
              "cannot reach them", file=sys.stderr, flush=True)


async def run_node(args: argparse.Namespace) -> int:
    """Run one member until a signal (0) or a final refusal by the relay (1)."""
    from ..storage.sqlite import SQLiteStorage

    members: list[str] = [] if args.join else args.members

    # Check every argument before touching the data directory.
    if members and args.address not in members:
        return _fail(f"--address {args.address!r} is not one of --members {members}", 2)
    try:
        check_name(args.room, "--room")
        for member in members:
            check_name(member, "each of --members")
        check_name(args.address, "--address")
        if args.relay is not None:
            from ..transport.websocket import relay_url

            relay_url(args.relay)
    except ValueError as exc:
        return _fail(str(exc), 2)
    try:
        args.data.mkdir(parents=True, exist_ok=True)
        storage = SQLiteStorage(args.data / DATABASE_FILE, threaded=True)
    except (StorageError, OSError) as exc:
        return _fail(str(exc))
    metrics = Metrics()
    try:
        kv = KVStore()
        node, transport, links, direct = build_node(args, members, storage, metrics)
    except (ValueError, StorageError, OSError) as exc:
        storage.close()
        return _fail(str(exc))
    kv.attach(node)
    metrics.watch(node, kv, transport, links.status if links is not None else None)
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
    control = ControlServer(node, kv, host, port, transport=transport,
                            details=links.status if links is not None else None,
                            metrics=metrics)
    try:
        try:
            await control.start()
        except OSError as exc:
            return _fail(f"cannot listen on {host}:{port}: {exc}")
        node.start()
        bound = None
        if links is not None:
            try:
                bound = await links.listening()
            except OSError as exc:
                return _fail(f"cannot listen for links on {host_port(*args.listen)}: "
                             f"{exc}")
            except RuntimeError as exc:  # the links closed first: the relay ended this node
                return exit_code or _fail(f"cannot listen for links: {exc}")
        if direct is not None:
            warned: set[str] = set()
            _warn_unreachable(node, direct, warned)
            node.listen("membership changed",
                        lambda *_: _warn_unreachable(node, direct, warned))
        # The first line stays exactly this: scripts and tests read the control URL from it.
        print(f"webraft node {args.address} control on {control.url}", flush=True)
        if bound is not None:
            print(f"webraft node {args.address} links on {host_port(*bound)}", flush=True)
        await stop.wait()
    finally:
        await control.close()
        await node.close()
        storage.close()
    return exit_code


class JSONLines(logging.Formatter):
    """Structured logs: each record as one line of JSON, its time in UTC."""

    def format(self, record: logging.LogRecord) -> str:
        when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = {"time": f"{when}.{int(record.msecs):03d}Z",
                "level": record.levelname, "logger": record.name,
                "message": record.getMessage()}
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def _fail(message: str, code: int = 1) -> int:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)
    return code


# ------------------------------------------------------------------ client commands


def client_parser(command: str) -> argparse.ArgumentParser:
    """The arguments of one client command."""
    p = argparse.ArgumentParser(
        prog=f"{PROG} {command}", description="Talk to a running member's control server.",
        epilog="Values are JSON; anything that is not JSON is a string. Exit status: 0 on "
        "success, 1 otherwise (a cas that did not swap included).")
    p.add_argument("command", choices=CLIENT_COMMANDS)
    if command in ("put", "get", "del", "delete", "cas"):
        p.add_argument("key")
    if command in ("put", "cas"):
        p.add_argument("value", help="the new value")
    if command == "cas":
        old = p.add_mutually_exclusive_group(required=True)
        old.add_argument("--expect", metavar="OLD",
                         help="set the value only if the key holds OLD")
        old.add_argument("--absent", action="store_true",
                         help="set the value only if the key is absent")
    if command == "get":
        p.add_argument("--linearizable", action="store_true",
                       help="read after the leader confirmed a read index, so the answer "
                       "reflects every write completed before (default: this node's state, "
                       "which may lag)")
    if command in ("put", "del", "delete", "cas"):
        p.add_argument("--request-id", metavar="ID",
                       help="1-128 characters naming this request: a retry with the same ID, "
                       "through any member, applies once and answers the first outcome")
    p.add_argument("--control", required=True, metavar="URL",
                   help="the URL the node printed, e.g. http://127.0.0.1:40123")
    p.add_argument("--timeout", type=_positive, default=30.0, metavar="S")
    return p


def client_main(argv: Sequence[str]) -> int:
    args = client_parser(argv[0]).parse_args(argv)
    method, path, body = "GET", "/status", None
    query: dict[str, str] = {}
    if args.command in ("put", "get", "del", "delete"):
        path = key_path(args.key)
    if args.command == "put":
        method, body = "PUT", _value(args.value)
    elif args.command in ("del", "delete"):
        method = "DELETE"
    elif args.command == "cas":
        method, path = "POST", key_path(args.key, "/cas/")
        body = {"value": _value(args.value)}
        if not args.absent:
            body["expected"] = _value(args.expect)
    elif args.command == "get" and args.linearizable:
        query["linearizable"] = "1"
    if getattr(args, "request_id", None) is not None:
        query["request_id"] = args.request_id
    if query:
        path += "?" + urllib.parse.urlencode(query)
    try:
        status, answer = request(args.control, method, path, body, timeout=args.timeout)
    except (OSError, ValueError) as exc:
        return _fail(f"cannot reach {args.control}: {exc}")
    ok = 200 <= status < 300
    if args.command == "get" and ok:
        print(json.dumps(answer.get("value")))
    else:
        print(json.dumps(answer), file=sys.stdout if ok else sys.stderr)
    if args.command == "cas" and ok:
        return 0 if answer.get("swapped") is True else 1
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
    parser = node_parser()
    args = parser.parse_args(argv)
    check_links(parser, args)
    handler = logging.StreamHandler()
    handler.setFormatter(JSONLines() if args.log_format == "json" else
                         logging.Formatter("%(asctime)s %(name)s %(message)s"))
    logging.basicConfig(level=args.log_level, handlers=[handler])
    try:
        return asyncio.run(run_node(args))
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return 130


if __name__ == "__main__":
    sys.exit(main())
