"""DirectRaft and DirectLinks over real sockets on 127.0.0.1: clusters linked without a relay.

Ports are always picked by the kernel (port 0, then ``bound``). Waits are for conditions,
with hang guards only. Every test runs with a loop exception handler that records what
escaped into the event loop (a protocol callback that raised, a task destroyed while
pending) and fails the test if anything did: nothing a peer sends may get that far.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import socket
import warnings
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import pytest
from support import stable_leader, until
from transport_support import Recorded

import webraft
from webraft.errors import MessageError
from webraft.transport import tcp
from webraft.transport.direct import LinkBroken, LinkRejected, encode_line, proof
from webraft.transport.direct_raft import DirectRaft
from webraft.transport.relay import Backoff, FrameError
from webraft.transport.tcp import DirectLinks

TOKEN = "cluster-token"
HOST = "127.0.0.1"
GUARD = 10.0  # seconds; a hang guard, not a timing expectation


def fast_backoff() -> Backoff:
    """Re-dial quickly: the tests wait for reconnections, not for production back-off."""
    return Backoff(0.01, 0.1)


class Patient(Backoff):
    """One quick retry, then an hour: only a link the peer makes to us can end that wait
    within a test. Counts the delays asked for and the resets."""

    def __init__(self) -> None:
        super().__init__(0.01, 3600.0, factor=360000.0, jitter=0.0)
        self.delays = 0
        self.resets = 0

    def next(self) -> float:
        self.delays += 1
        return super().next()

    def reset(self) -> None:
        self.resets += 1
        super().reset()


class FastDirectRaft(Recorded, DirectRaft):
    """A recorded DirectRaft that re-dials quickly."""

    def __init__(self, address: str, **kwargs: Any) -> None:
        kwargs.setdefault("backoff", fast_backoff)
        super().__init__(address, **kwargs)

    def commands(self) -> list[Any]:
        return [c for _, c in self.applied]


async def link_all(nodes: list[FastDirectRaft]) -> None:
    """Make every node a peer of every other; return once every link is up both ways."""
    for node in nodes:
        for other in nodes:
            if other is not node:
                assert other.bound is not None
                node.add_peer(other.address, *other.bound)
    await until(lambda: all(len(n.nodes) == len(nodes) - 1 for n in nodes),
                what="every node joined every peer")


class Stub:
    """A DirectListener that records everything, for tests of DirectLinks alone."""

    def __init__(self) -> None:
        self.up: list[str] = []
        self.down: list[str] = []
        self.data: list[tuple[str, dict[str, Any]]] = []
        self.errors: list[Exception] = []

    def direct_up(self, peer: str) -> None:
        self.up.append(peer)

    def direct_down(self, peer: str) -> None:
        self.down.append(peer)

    def direct_data(self, peer: str, payloads: list[dict[str, Any]]) -> None:
        self.data.extend((peer, p) for p in payloads)

    def direct_error(self, exc: Exception) -> None:
        self.errors.append(exc)


class Net:
    """The nodes, links and raw sockets of one test; :meth:`aclose` ends them all."""

    def __init__(self) -> None:
        self.nodes: list[FastDirectRaft] = []
        self.links: list[DirectLinks] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.servers: list[asyncio.Server] = []
        self.handlers: set[asyncio.Task[Any]] = set()  # the raw servers' connections
        self.sockets: list[socket.socket] = []  # blocking raw clients

    async def node(self, name: str, *, members: Iterable[str] = ("a", "b", "c"),
                   port: int = 0, peers: dict[str, tuple[str, int]] | None = None,
                   token: str | None = TOKEN, **kwargs: Any) -> FastDirectRaft:
        """A started node listening on ``port`` (0: a free one)."""
        kwargs.setdefault("storage", webraft.MemoryStorage())
        node = FastDirectRaft(name, listen=(HOST, port), peers=peers or {}, token=token,
                              members=list(members), **kwargs)
        self.nodes.append(node)
        async with asyncio.timeout(GUARD):
            await node.__aenter__()
        return node

    async def cluster(self, names: str = "abc") -> list[FastDirectRaft]:
        """Nodes that all link to each other, once every link is up both ways."""
        nodes = [await self.node(n, members=list(names)) for n in names]
        await link_all(nodes)
        return nodes

    def links_for(self, address: str, **kwargs: Any) -> tuple[DirectLinks, Stub]:
        stub = Stub()
        kwargs.setdefault("backoff", fast_backoff)
        links = DirectLinks(address, stub, room="webraft", **kwargs)
        self.links.append(links)
        return links, stub

    async def raw(self, node: DirectRaft | DirectLinks) -> tuple[asyncio.StreamReader,
                                                                 asyncio.StreamWriter, str]:
        """A raw TCP client of ``node``'s listener; returns it and the challenge it got."""
        assert node.bound is not None
        async with asyncio.timeout(GUARD):
            reader, writer = await asyncio.open_connection(*node.bound, limit=1 << 20)
            self.writers.append(writer)
            challenge = json.loads(await reader.readline())
        assert challenge["v"] == 1
        return reader, writer, challenge["challenge"]

    async def server(self, handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                             Any]) -> int:
        """A raw TCP server playing a misbehaving peer; returns its port."""
        async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self.handlers.add(task)
            try:
                await handler(reader, writer)
            except ConnectionError:
                writer.close()  # the dialer went away rudely: fine for a test server

        server = await asyncio.start_server(guarded, HOST, 0)
        self.servers.append(server)
        return server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        for writer in self.writers:
            writer.close()
        for sock in self.sockets:
            sock.close()
        for node in self.nodes:
            await node.close()
        for links in self.links:
            await links.close()
        for server in self.servers:
            server.close()
            await server.wait_closed()
        if self.handlers:  # they end once the links that dialed them are closed
            async with asyncio.timeout(GUARD):
                await asyncio.wait(self.handlers)


@pytest.fixture
async def net() -> AsyncIterator[Net]:
    """A Net, and the check that nothing escaped into the loop or was left running."""
    loop = asyncio.get_running_loop()
    escaped: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: escaped.append(context))
    n = Net()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            try:
                yield n
            finally:
                await n.aclose()
            me = asyncio.current_task()
            left = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
            assert not left, f"tasks left running after close: {left}"
            gc.collect()  # a pending task or an unclosed transport reports itself here
        assert not escaped, escaped
        assert not [w for w in caught if issubclass(w.category, ResourceWarning)], \
            [str(w.message) for w in caught]
    finally:
        loop.set_exception_handler(previous)


def free_port() -> int:
    """A port nothing listens on (the kernel just handed it out and it was closed)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


async def expect_closed(reader: asyncio.StreamReader) -> bytes:
    """Read until the node closes the connection; returns what it still sent."""
    async with asyncio.timeout(GUARD):
        return await reader.read()


def codes(errors: Iterable[BaseException], kind: type = LinkBroken) -> list[str]:
    return [e.code for e in errors if isinstance(e, kind)]  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- clusters


async def test_three_nodes_elect_a_leader_and_replicate_a_follower_proposal(net: Net):
    nodes = await net.cluster()
    assert all(n.connected and n.bound is not None and n.bound[1] != 0 for n in nodes)
    for node in nodes:
        assert sorted(a for kind, a in node.seen if kind == "join") == \
            sorted(n.address for n in nodes if n is not node)
    lead = await until(lambda: stable_leader(nodes), what="a stable leader")
    follower = next(n for n in nodes if n is not lead)
    command = {"op": "put", "key": "x", "value": 1}
    index = await asyncio.wait_for(follower.propose(command), GUARD)
    assert (index, command) in follower.applied
    await until(lambda: all(n.last_applied >= index for n in nodes), what="applied everywhere")
    assert all(n.commands() == lead.commands() for n in nodes)
    assert not [e for n in nodes for e in n.errors], "no error events on a healthy cluster"


async def test_a_closed_node_leaves_the_rest_commit_and_it_rejoins_from_its_storage(net: Net):
    storages = {name: webraft.MemoryStorage() for name in "abc"}
    nodes = [await net.node(n, storage=storages[n]) for n in "abc"]
    await link_all(nodes)
    lead = await until(lambda: stable_leader(nodes), what="a stable leader")
    await asyncio.wait_for(lead.propose("before"), GUARD)

    victim = lead  # the hardest case: the others must also elect a new leader
    rest = [n for n in nodes if n is not victim]
    assert victim.bound is not None
    port = victim.bound[1]
    await victim.close()
    await until(lambda: all(("leave", victim.address) in n.seen and victim.address not in n.nodes
                            for n in rest), what="the others saw the victim leave")
    new_lead = await until(lambda: stable_leader(rest), what="a leader among the rest")
    index = await asyncio.wait_for(new_lead.propose("during"), GUARD)
    await until(lambda: all(n.last_applied >= index for n in rest))

    peers = {n.address: n.bound for n in rest}
    back = await net.node(victim.address, port=port, storage=storages[victim.address],
                          peers=peers)  # type: ignore[arg-type]
    assert back.bound == (HOST, port)
    await until(lambda: all(victim.address in n.nodes for n in rest) and len(back.nodes) == 2,
                what="the restarted node linked both ways again")
    index = await asyncio.wait_for(new_lead.propose("after"), GUARD)
    everyone = [*rest, back]
    await until(lambda: all(n.last_applied >= index for n in everyone), what="caught up")
    assert back.commands() == new_lead.commands() == ["before", "during", "after"]
    assert not [e for n in everyone for e in n.errors]


async def test_a_restarted_node_is_redialed_at_once_and_catches_up(net: Net):
    storages = {name: webraft.MemoryStorage() for name in "abc"}
    nodes = [await net.node(n, storage=storages[n], backoff=Patient) for n in "abc"]
    await link_all(nodes)
    lead = await until(lambda: stable_leader(nodes), what="a stable leader")
    victim = next(n for n in nodes if n is not lead)
    rest = [n for n in nodes if n is not victim]
    assert victim.bound is not None
    port = victim.bound[1]
    await victim.close()

    def waiting_an_hour(node: FastDirectRaft) -> bool:
        backoff = node.links.redialing(victim.address)
        assert isinstance(backoff, Patient)
        return backoff.delays >= 2  # the quick retry failed: now the hour-long pause
    await until(lambda: all(waiting_an_hour(n) for n in rest), what="the others back off")
    index = await asyncio.wait_for(lead.propose("missed"), GUARD)
    backoffs = [n.links.redialing(victim.address) for n in rest]
    before = [(b.delays, b.resets) for b in backoffs if isinstance(b, Patient)]

    peers = {n.address: n.bound for n in rest}
    back = await net.node(victim.address, port=port, storage=storages[victim.address],
                          peers=peers, backoff=Patient)  # type: ignore[arg-type]
    await until(lambda: back.last_applied >= index, what="the restarted node caught up")
    assert back.commands() == lead.commands() == ["missed"]
    # Each of the others was woken by the victim's link to it (a reset), not by its timer.
    assert [(b.delays, b.resets - 1) for b in backoffs if isinstance(b, Patient)] == before
    assert all(n.links.is_up(victim.address) for n in rest)


async def test_a_fourth_node_added_as_peer_and_member_becomes_a_voter(net: Net):
    nodes = await net.cluster()
    lead = await until(lambda: stable_leader(nodes), what="a stable leader")
    for i in range(3):
        await asyncio.wait_for(lead.propose(f"old-{i}"), GUARD)
    # The newcomer starts with the founding members: it is not one, so it waits to be added.
    d = await net.node("d", peers={n.address: n.bound for n in nodes})  # type: ignore[misc]
    for node in nodes:
        assert d.bound is not None
        node.add_peer("d", *d.bound)
    await until(lambda: len(d.nodes) == 3 and all("d" in n.nodes for n in nodes),
                what="d linked both ways")
    await asyncio.wait_for(lead.add_member("d"), GUARD)
    await until(lambda: lead.members == ("a", "b", "c", "d"), what="d promoted to voter")
    index = await asyncio.wait_for(lead.propose("new"), GUARD)
    everyone = [*nodes, d]
    await until(lambda: all(n.last_applied >= index for n in everyone), what="applied by all")
    assert d.commands() == lead.commands() == ["old-0", "old-1", "old-2", "new"]
    assert d.members == lead.members


async def test_remove_peer_closes_the_link_and_stops_dialing(net: Net):
    a, b, _ = await net.cluster()
    a.remove_peer("b")
    await until(lambda: ("leave", "b") in a.seen and "b" not in a.nodes, what="a left b")
    assert not a.links.is_up("b") and "b" not in a.peers
    # The acceptor side saw the link end too; b still links to a (links are one-way).
    await until(lambda: not any(i.peer == "a" for i in b.links._incoming),
                what="b's end of the link closed")
    assert "a" in b.nodes and "c" in a.nodes
    a.add_peer("b", *b.bound)  # type: ignore[misc]
    await until(lambda: "b" in a.nodes, what="a links to b again")
    assert [s for s in a.seen if s[1] == "b"] == [("join", "b"), ("leave", "b"), ("join", "b")]


async def test_moving_a_peer_to_another_endpoint_links_there(net: Net):
    a = await net.node("a", members="ab")
    b = await net.node("b", members="ab")
    a.add_peer("b", HOST, free_port())  # wrong: nothing listens there
    assert b.bound is not None
    a.add_peer("b", *b.bound)
    await until(lambda: "b" in a.nodes, what="a linked to b at its real endpoint")
    assert a.peers["b"] == b.bound
    assert not a.errors, "a refused connection is not an error worth an event"


async def test_close_is_clean_and_idempotent(net: Net, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG, logger="webraft")
    nodes = await net.cluster()
    lead = await until(lambda: stable_leader(nodes), what="a stable leader")
    await asyncio.wait_for(lead.propose("x"), GUARD)
    for node in nodes:
        await node.close()
        await node.close()
    assert all(not n.connected for n in nodes)
    assert all(n.links._dialers == {} and n.links._attempts == {} for n in nodes)
    # The net fixture checks no task is left and nothing escaped; here: nothing logged badly.
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], \
        [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_node_that_cannot_listen_says_so(net: Net):
    a = await net.node("a", members="ab")
    assert a.bound is not None
    clash = FastDirectRaft("b", listen=a.bound, peers={"a": a.bound}, members=["a", "b"])
    net.nodes.append(clash)
    clash.start()
    with pytest.raises(OSError):
        await asyncio.wait_for(clash.listening(), GUARD)
    await until(lambda: any(isinstance(e, OSError) for e in clash.errors),
                what="an error event for the port in use")
    assert not clash.connected


async def test_async_with_stops_a_node_that_cannot_listen(net: Net):
    a = await net.node("a", members="ab")
    assert a.bound is not None
    clash = FastDirectRaft("b", listen=a.bound, peers={"a": a.bound}, members=["a", "b"])
    with pytest.raises(OSError):
        async with clash:
            raise AssertionError("the body must not run")
    # The fixture checks that nothing it started (Raft timers, the dial loop) still runs.
    assert clash.links._dialers == {}


@pytest.mark.parametrize("kwargs", [
    {"peers": {"b": (HOST, 0)}}, {"peers": {"b": ("", 80)}}, {"peers": {"b c": (HOST, 80)}},
    {"token": 5}, {"max_line_bytes": 1000}, {"room": "no spaces"},
], ids=["port-0", "no-host", "bad-name", "token-number", "tiny-lines", "bad-room"])
def test_a_misconfigured_node_fails_at_construction(kwargs: dict[str, Any]):
    kwargs.setdefault("peers", {})
    with pytest.raises(ValueError):
        DirectRaft("a", listen=(HOST, 0), **kwargs)


# ---------------------------------------------------------------------------- refusals


async def test_a_node_with_the_wrong_token_is_refused_and_reports_it_once(net: Net):
    a, b = await net.cluster("ab")
    intruder = await net.node("x", members="abx", token="wrong",
                              peers={"a": a.bound, "b": b.bound})  # type: ignore[dict-item]
    # Many attempts are refused ...
    await until(lambda: a.links._refusals.get((HOST, "unauthorized"), 0) >= 3
                and b.links._refusals.get((HOST, "unauthorized"), 0) >= 3,
                what="several refused attempts on both acceptors")
    # ... each side reports the refusal once, not once per retry.
    assert codes(a.errors) == codes(b.errors) == ["unauthorized"]
    rejected = [e for e in intruder.errors if isinstance(e, LinkRejected)]
    assert sorted(e.code for e in rejected) == ["unauthorized", "unauthorized"]
    assert len(intruder.errors) == 2
    assert intruder.nodes == {} and not [s for s in intruder.seen if s[0] == "join"]
    assert "x" not in a.nodes and "x" not in b.nodes
    assert all(isinstance(e, LinkBroken) for e in [*a.errors, *b.errors])
    lead = await until(lambda: stable_leader([a, b]), what="a stable leader")
    index = await asyncio.wait_for(lead.propose("still fine"), GUARD)
    await until(lambda: a.last_applied >= index and b.last_applied >= index)


async def test_raw_clients_sending_garbage_too_much_or_nothing_are_closed(
        net: Net, monkeypatch: pytest.MonkeyPatch):
    nodes = await net.cluster()
    a = nodes[0]
    monkeypatch.setattr(tcp, "HANDSHAKE_TIMEOUT", 0.2)  # read at each new connection

    garbage_r, garbage_w, _ = await net.raw(a)
    garbage_w.write(b"GET / HTTP/1.1\r\n\r\n")
    long_r, long_w, _ = await net.raw(a)
    long_w.write(b"{" * 5000)  # no newline: the handshake limit is what stops it
    silent_r, _, _ = await net.raw(a)

    answer = json.loads(await expect_closed(garbage_r))
    assert answer["error"] == "bad_hello"
    assert json.loads(await expect_closed(long_r))["error"] == "line_too_long"
    assert await expect_closed(silent_r) == b"", "a silent client is closed without a word"
    await until(lambda: not [i for i in a.links._incoming if not i.peer],
                what="no half-open connection left")
    assert sorted(codes(a.errors)) == ["bad_hello", "line_too_long"]

    lead = await until(lambda: stable_leader(nodes), what="a stable leader")
    index = await asyncio.wait_for(lead.propose("after the intruders"), GUARD)
    await until(lambda: all(n.last_applied >= index for n in nodes))


async def test_a_proven_client_sending_junk_causes_errors_not_damage(net: Net):
    nodes = await net.cluster()
    target = nodes[1]
    reader, writer, challenge = await net.raw(target)
    writer.write(encode_line({"v": 1, "room": "webraft", "from": "spy", "to": target.address,
                              "proof": proof(TOKEN, "webraft", "spy", target.address,
                                             challenge)}))
    async with asyncio.timeout(GUARD):
        assert json.loads(await reader.readline()) == {"welcome": True}
    before = len(target.errors)
    writer.write(b"not json\n[1,2]\n{\"x\":NaN}\n" + encode_line({"type": "bogus"})
                 + encode_line({}) + encode_line({"hello": "raft"}) + b"\xff\n")
    await until(lambda: len(target.errors) - before >= 7, what="an error per bad line")
    new = target.errors[before:]
    assert sorted(e.code for e in new if isinstance(e, FrameError)) == \
        ["bad_json", "bad_json", "bad_json", "not_object"]
    assert len([e for e in new if isinstance(e, MessageError)
                and not isinstance(e, FrameError)]) == 3
    assert not reader.at_eof(), "bad messages do not break a proven link"

    lead = await until(lambda: stable_leader(nodes), what="a stable leader")
    index = await asyncio.wait_for(lead.propose("unharmed"), GUARD)
    await until(lambda: all(n.last_applied >= index for n in nodes))
    assert all(n.commands() == ["unharmed"] for n in nodes)
    assert "spy" not in target.nodes, "an incoming link alone does not make a peer"


# ---------------------------------------------------------------------------- DirectLinks


async def test_links_deliver_messages_both_ways_and_report_up_and_down(net: Net):
    a, a_seen = net.links_for("a", token=TOKEN)
    b, b_seen = net.links_for("b", token=TOKEN)
    await a.listen(HOST, 0)
    await b.listen(HOST, 0)
    a.dial("b", *b.bound)  # type: ignore[misc]
    b.dial("a", *a.bound)  # type: ignore[misc]
    await until(lambda: a.is_up("b") and b.is_up("a"), what="both links up")
    assert a_seen.up == ["b"] and b_seen.up == ["a"]
    assert not a.send("nobody", {"x": 1}), "no link: not sent"
    assert a.send("b", {"n": 1}) and a.send("b", {"n": 2}) and b.send("a", {"n": 3})
    await until(lambda: len(b_seen.data) == 2 and len(a_seen.data) == 1)
    assert b_seen.data == [("a", {"n": 1}), ("a", {"n": 2})]
    assert a_seen.data == [("b", {"n": 3})]
    with pytest.raises(ValueError):
        a.send("b", {"x": object()})
    await b.close()
    await until(lambda: a_seen.down == ["b"], what="a lost its link to the closed b")
    assert not a.is_up("b")
    assert not a_seen.errors and not b_seen.errors


async def test_a_link_from_a_restarted_peer_resets_our_back_off_and_redials_it(net: Net):
    a, a_seen = net.links_for("a", token=TOKEN, backoff=Patient)
    b, _ = net.links_for("b", token=TOKEN)
    await a.listen(HOST, 0)
    port = (await b.listen(HOST, 0))[1]
    a.dial("b", HOST, port)
    await until(lambda: a.is_up("b"), what="a linked to b")
    backoff = a.redialing("b")
    assert isinstance(backoff, Patient) and backoff.resets == 0
    await b.close()
    await until(lambda: backoff.delays >= 2, what="a's quick retry failed: an hour to wait")
    assert a_seen.down == ["b"] and backoff.resets == 1  # once, when the link ended

    b_again, _ = net.links_for("b", token=TOKEN)
    await b_again.listen(HOST, port)
    assert a.bound is not None
    b_again.dial("a", *a.bound)
    await until(lambda: a.is_up("b"), what="a linked to the restarted b")
    assert backoff.resets == 2 and backoff.delays == 2, "woken, not timed out"
    assert a_seen.up == ["b", "b"] and not a_seen.errors
    assert a.redialing("nobody") is None


async def test_per_peer_keys_let_in_only_the_peer_holding_its_key(net: Net):
    keys = {"a": "11" * 16}
    b, b_seen = net.links_for("b", token=keys.get)
    await b.listen(HOST, 0)
    assert b.bound is not None
    a, a_seen = net.links_for("a")
    a.dial("b", *b.bound, token=keys["a"])
    c, c_seen = net.links_for("c")
    c.dial("b", *b.bound, token=keys["a"])  # a's key does not let c in
    await until(lambda: a.is_up("b"), what="a linked with its key")
    await until(lambda: codes(c_seen.errors) == ["unauthorized"], what="c refused")
    a.dial("b", *b.bound, token="22" * 16)  # the same endpoint with another key: re-dial
    await until(lambda: codes(a_seen.errors) == ["unauthorized"], what="a wrong key refused")
    assert a_seen.down == ["b"] and not a.is_up("b")
    assert set(codes(b_seen.errors)) == {"unauthorized"}
    with pytest.raises(ValueError):
        DirectLinks("z", Stub(), token=5)  # type: ignore[arg-type]


async def test_dial_checks_its_endpoint(net: Net):
    a, _ = net.links_for("a")
    for host, port in [(HOST, 0), (HOST, 70000), (HOST, "80"), ("", 80), (None, 80)]:
        with pytest.raises(ValueError):
            a.dial("b", host, port)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        a.dial("b c", HOST, 80)
    a.dial("a", HOST, 80)  # ourselves: nothing to do
    assert a._dialers == {}


async def test_a_full_link_buffer_drops_and_counts_messages(net: Net):
    limit = 256 << 10
    b, b_seen = net.links_for("b")
    await b.listen(HOST, 0)
    a, _ = net.links_for("a", max_buffered_bytes=limit)
    a.dial("b", *b.bound)  # type: ignore[misc]
    await until(lambda: a.is_up("b"), what="a linked to b")
    await until(lambda: any(i.peer == "a" for i in b._incoming), what="b accepted a")
    incoming = next(i for i in b._incoming if i.peer == "a")
    assert incoming.transport is not None
    incoming.transport.pause_reading()  # b stops reading: the kernel buffers fill, then ours

    pad = "p" * (64 << 10)
    sent: list[int] = []
    for i in range(10_000):  # a guard: the buffers hold a few MiB at most
        if not a.send("b", {"i": i, "pad": pad}):
            break
        sent.append(i)
    else:
        raise AssertionError("the buffer never filled")
    assert a.dropped == 1
    link = a._links["b"]
    assert link.transport is not None
    assert link.transport.get_write_buffer_size() <= limit
    for _ in range(5):
        assert not a.send("b", {"i": -1, "pad": pad})
    assert a.dropped == 6

    incoming.transport.resume_reading()
    await until(lambda: len(b_seen.data) == len(sent), what="everything kept was delivered")
    assert [p["i"] for _, p in b_seen.data] == sent, "nothing torn, lost or reordered"
    assert all(p["pad"] == pad for _, p in b_seen.data)
    assert not b_seen.errors


async def test_a_silent_or_confused_acceptor_is_reported_once(
        net: Net, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(tcp, "HANDSHAKE_TIMEOUT", 0.1)
    attempts = {"silent": 0, "garbage": 0}

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        attempts["silent"] += 1
        await reader.read()  # says nothing until the dialer gives up
        writer.close()

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        attempts["garbage"] += 1
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n")
        await reader.read()
        writer.close()

    silent_port = await net.server(silent)
    garbage_port = await net.server(garbage)
    a, a_seen = net.links_for("a")
    a.dial("s", HOST, silent_port)
    a.dial("g", HOST, garbage_port)
    await until(lambda: attempts["silent"] >= 3 and attempts["garbage"] >= 3,
                what="several attempts at each")
    assert sorted(codes(a_seen.errors)) == ["bad_json", "handshake_timeout"]
    assert not any(isinstance(e, LinkRejected) for e in a_seen.errors)
    assert a_seen.up == [] and not a.is_up("s") and not a.is_up("g")


async def test_a_failing_allow_refuses_the_link_without_escaping(net: Net):
    def allow(peer: str) -> bool:
        raise RuntimeError("allow is broken")

    b, b_seen = net.links_for("b", allow=allow)
    await b.listen(HOST, 0)
    a, _ = net.links_for("a")
    a.dial("b", *b.bound)  # type: ignore[misc]
    await until(lambda: len(b_seen.errors) >= 2, what="refused attempts reported")
    assert all(isinstance(e, RuntimeError) for e in b_seen.errors)
    assert not a.is_up("b")


async def test_closing_while_attempts_are_under_way_leaves_nothing_behind(net: Net):
    """A dial loop cancelled mid-handshake closes its connection (no leaked transport)."""
    started = asyncio.Event()

    async def stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        started.set()
        await reader.read()
        writer.close()

    port = await net.server(stalls)
    a, a_seen = net.links_for("a")
    a.dial("b", HOST, port)
    async with asyncio.timeout(GUARD):
        await started.wait()
    await until(lambda: "b" in a._attempts, what="an attempt under way")
    await a.close()
    assert a._attempts == {} and a._dialers == {}
    assert not a_seen.errors
    a.dial("b", HOST, port)  # closed: nothing happens
    assert a._dialers == {}
    with pytest.raises(RuntimeError):
        await a.listen(HOST, 0)


async def test_a_line_over_the_acceptor_s_limit_breaks_the_link_and_the_dialer_learns_why(
        net: Net):
    """Two members configured with different limits: the link breaks, is re-dialed, and the
    dialer reports the acceptor's reason once instead of a bare disconnect."""
    b, b_seen = net.links_for("b", max_line_bytes=10_000)
    await b.listen(HOST, 0)
    a, a_seen = net.links_for("a")  # the default limit, far above b's
    a.dial("b", *b.bound)  # type: ignore[misc]
    await until(lambda: a.is_up("b"), what="linked")
    assert a.send("b", {"big": "x" * 20_000})
    await until(lambda: a_seen.down == ["b"], what="b broke the link")
    assert codes(b_seen.errors) == ["line_too_long"]
    await until(lambda: codes(a_seen.errors, LinkRejected) == ["line_too_long"],
                what="a learned why")
    await until(lambda: a.is_up("b"), what="re-dialed")
    assert a.send("b", {"small": 1})
    await until(lambda: b_seen.data == [("a", {"small": 1})], what="the next message arrives")


async def test_a_connection_accepted_just_as_the_links_close_is_closed_too(net: Net):
    """asyncio (3.11) drops a connection whose accept is under way when its server closes,
    leaving the socket open forever; close() must let such accepts finish first."""
    links, _ = net.links_for("b")
    await links.listen(HOST, 0)
    assert links.bound is not None
    loop = asyncio.get_running_loop()
    for _ in range(5):  # several connections in one accept batch
        client = socket.create_connection(links.bound)  # the kernel completes it at once
        net.sockets.append(client)
    woken = loop.create_future()
    loop.call_soon(woken.set_result, None)
    await woken  # we run again right after the loop's next accepts, before they attach
    await links.close()
    for client in net.sockets:  # each one gets the challenge perhaps, then its end
        client.setblocking(False)
        with contextlib.suppress(ConnectionResetError):
            async with asyncio.timeout(GUARD):
                while await loop.sock_recv(client, 4096):
                    pass


async def test_closing_a_node_whenever_it_starts_listening_leaves_no_server_behind(
        net: Net, monkeypatch: pytest.MonkeyPatch):
    """close() cancels a listen() under way; asyncio's create_server, cancelled after it
    bound its socket (at its last await), would leave that server accepting for good. Every
    point of the start-up is tried: close after 0, 1, 2, ... loop turns."""
    servers: list[asyncio.base_events.Server] = []
    start_serving = asyncio.base_events.Server._start_serving

    def recording(self: asyncio.base_events.Server) -> None:
        servers.append(self)
        start_serving(self)

    monkeypatch.setattr(asyncio.base_events.Server, "_start_serving", recording)
    for turns in range(12):
        node = FastDirectRaft("a", listen=(HOST, 0), peers={}, token=TOKEN, members=["a"],
                              storage=webraft.MemoryStorage())
        node.start()
        for _ in range(turns):
            await asyncio.sleep(0)
        await node.close()
        assert not [s for s in servers if s.is_serving()], f"a server left after {turns} turns"
    assert len(servers) >= 8, "most starts got as far as a server"


def test_refusals_repeated_from_one_host_are_reported_first_and_then_every_nth(
        monkeypatch: pytest.MonkeyPatch):
    """A misconfigured peer retries forever: its refusals must not flood the error events."""
    monkeypatch.setattr(tcp, "REPORT_EVERY", 3)
    listener = Stub()
    links = DirectLinks("a", listener)
    for _ in range(7):
        links._refused("x", "10.0.0.2", LinkBroken("unauthorized", "wrong room token"))
    links._refused("y", "10.0.0.3", LinkBroken("unauthorized", "wrong room token"))
    links._refused("x", "10.0.0.2", LinkBroken("wrong_room", "room r"))
    # 10.0.0.2/unauthorized at counts 1, 3 and 6; each other (host, code) once.
    assert codes(listener.errors) == ["unauthorized"] * 4 + ["wrong_room"]
