"""Relay members that also link to each other directly (``RelayRaft(listen=...)``).

The relay room stays the truth about who is a peer; links only carry messages, and a member
that cannot link (a browser tab, here a plain RelayRaft) keeps using the relay.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any

import pytest
from support import until
from test_direct_tls import make_certs
from transport_support import GUARD, FastRelayRaft, Net

from webraft.errors import MessageError
from webraft.transport import LinkBroken
from webraft.transport.direct import Dialer, encode_line
from webraft.transport.node import LINK_OFFER, parse_link_offer
from webraft.transport.relay import RelayClosed
from webraft.transport.tcp import TLS
from webraft.transport.websocket import relay_transport

LOCAL = ("127.0.0.1", 0)


def linked(nodes: list[FastRelayRaft]) -> bool:
    """Every listening node has its link up to every other listening node."""
    return all(n.links is not None and n.links.is_up(m.address)
               for n in nodes for m in nodes if m is not n)


def relayed(node: FastRelayRaft) -> list[tuple[str, Any]]:
    """Record what ``node`` sends through the relay from now on."""
    sent: list[tuple[str, Any]] = []
    send = node.connection.send

    def spy(to: str, data: Any) -> None:
        sent.append((to, data))
        send(to, data)

    node.connection.send = spy  # type: ignore[method-assign]
    return sent


async def commit_past_the_relay(net: Net, nodes: list[FastRelayRaft], command: str) -> None:
    """Once every pair is linked, a follower's proposal commits everywhere without one
    message through the relay."""
    await until(lambda: linked(nodes), what="every pair linked")
    lead = await net.leader(nodes)
    through_relay = [relayed(n) for n in nodes]
    follower = next(n for n in nodes if n is not lead)
    index = await asyncio.wait_for(follower.propose(command), GUARD)
    await until(lambda: all((index, command) in n.applied for n in nodes))
    assert all(not sent for sent in through_relay), through_relay


async def test_listening_members_link_and_send_raft_messages_over_the_links(net: Net):
    relay = await net.relay()
    nodes = [net.node(a, relay, listen=LOCAL) for a in "abc"]
    await commit_past_the_relay(net, nodes, "over links")
    assert not any(n.errors for n in nodes)


async def test_a_member_that_cannot_link_still_works_through_the_relay(net: Net):
    """A plain RelayRaft plays the browser tab: it drops offers silently."""
    relay = await net.relay()
    a = net.node("a", relay, listen=LOCAL)
    b = net.node("b", relay, listen=LOCAL)
    tab = net.node("c", relay)
    nodes = [a, b, tab]
    await until(lambda: linked([a, b]), what="a and b linked")
    await net.leader(nodes)
    index = await asyncio.wait_for(tab.propose("from the tab"), GUARD)
    await until(lambda: all((index, "from the tab") in n.applied for n in nodes))
    assert not tab.errors and tab.links is None
    offers = [p for s, p in tab.received if isinstance(p, dict) and p.get("type") == LINK_OFFER]
    assert offers == []  # taken out before got_data, never seen as a Raft message
    assert a.links is not None and not a.links.is_up("c")


async def test_a_lost_link_falls_back_to_the_relay_and_is_dialed_again(net: Net):
    relay = await net.relay()
    nodes = [net.node(a, relay, listen=LOCAL) for a in "abc"]
    await until(lambda: linked(nodes), what="every pair linked")
    lead = await net.leader(nodes)
    victim = next(n for n in nodes if n is not lead)
    assert victim.links is not None
    for incoming in list(victim.links._incoming):  # cut every link into the victim
        assert incoming.transport is not None
        incoming.transport.abort()
    index = await asyncio.wait_for(lead.propose("after the cut"), GUARD)
    await until(lambda: all((index, "after the cut") in n.applied for n in nodes))
    await until(lambda: linked(nodes), what="links dialed again")
    assert not any(n.errors for n in nodes)


async def test_the_room_token_does_not_let_a_client_link_as_another_member(net: Net):
    """Link keys are per peer and travel only through the relay: knowing the room's token
    (here the relay has none at all) and a member's name is not enough."""
    relay = await net.relay()
    a = net.node("a", relay, listen=LOCAL)
    await until(lambda: a.links is not None and a.links.bound is not None)
    b = net.node("b", relay, listen=LOCAL)
    await until(lambda: linked([a, b]), what="a and b linked")
    assert a.links is not None and a.links.bound is not None
    host, port = a.links.bound
    reader, writer = await asyncio.open_connection(host, port)
    try:
        forger = Dialer("demo", "b", "a", token=None)
        forger.receive(await reader.readline())
        writer.write(forger.data_to_send())
        answer = json.loads(await asyncio.wait_for(reader.readline(), GUARD))
        assert answer["error"] == "unauthorized"
        assert await asyncio.wait_for(reader.read(), GUARD) == b""  # and closed
    finally:
        writer.close()
    assert [e.code for e in a.errors if isinstance(e, LinkBroken)] == ["unauthorized"]
    assert a.links.is_up("b")  # the real b's link is untouched


async def test_a_malformed_offer_is_an_error_event_and_changes_nothing(net: Net):
    relay = await net.relay()
    a = net.node("a", relay, listen=LOCAL)
    mallory, _ = await net.raw(relay, address="m")
    await until(lambda: "m" in a.nodes)
    for offer in ({"type": LINK_OFFER, "at": "nowhere", "key": "0" * 32},
                  {"type": LINK_OFFER, "at": "127.0.0.1:1", "key": "not hex"},
                  {"type": LINK_OFFER, "at": ["127.0.0.1", 1]}):
        await mallory.send(type="send", to="a", data=offer)
    await until(lambda: len(a.errors) == 3, what="three rejected offers")
    assert a.links is not None and not a.links.is_up("m")
    assert all("link offer" in str(e) for e in a.errors)


async def test_an_offer_is_made_to_every_member_with_a_key_for_it_alone(net: Net):
    relay = await net.relay()
    a = net.node("a", relay, listen=LOCAL)
    watchers = {}
    for name in ("x", "y"):
        raw, _ = await net.raw(relay, address=name)
        watchers[name] = raw
    offers = {}
    for name, raw in watchers.items():
        async with asyncio.timeout(GUARD):
            while name not in offers:  # skip joins and Raft traffic
                frame = await raw.recv()
                data = [frame.get("data")] if frame["type"] == "msg" else frame.get("msgs", [])
                offers.update((name, d) for d in data if d.get("type") == LINK_OFFER)
    assert offers["x"]["at"] == offers["y"]["at"]
    assert offers["x"]["key"] != offers["y"]["key"]
    assert a.links is not None and a.links.bound is not None
    host, port = a.links.bound
    assert offers["x"]["at"] == f"{host}:{port}"
    # The offered key is what a link from x must prove.
    reader, writer = await asyncio.open_connection(host, port)
    try:
        dialer = Dialer("demo", "x", "a", token=offers["x"]["key"])
        dialer.receive(await reader.readline())
        writer.write(dialer.data_to_send())
        events = dialer.receive(await asyncio.wait_for(reader.readline(), GUARD))
        assert dialer.established and events
        writer.write(encode_line({"type": "heartbeat"}))  # malformed Raft: an error event
        await until(lambda: a.errors, what="the malformed message reported")
    finally:
        writer.close()


def test_listening_on_a_wildcard_needs_an_address_to_advertise():
    with pytest.raises(ValueError, match="advertise"):
        FastRelayRaft("a", url="ws://127.0.0.1:1/ws", room="demo", listen=("0.0.0.0", 0))
    node = FastRelayRaft("a", url="ws://127.0.0.1:1/ws", room="demo", listen=("0.0.0.0", 0),
                         advertise="10.1.2.3")
    assert node.links is not None


async def next_offer(raw: Any) -> dict[str, Any]:
    """The next link offer a raw relay client receives (joins and Raft traffic skipped)."""
    async with asyncio.timeout(GUARD):
        while True:
            frame = await raw.recv()
            data = [frame.get("data")] if frame["type"] == "msg" else frame.get("msgs", [])
            for d in data:
                if isinstance(d, dict) and d.get("type") == LINK_OFFER:
                    return d


async def link_as(name: str, to: str, offer: dict[str, Any]) -> tuple[
        asyncio.StreamReader, asyncio.StreamWriter, dict[str, Any]]:
    """Dial ``offer`` as ``name`` with its key; the acceptor's answer to the hello."""
    host, _, port = offer["at"].rpartition(":")
    reader, writer = await asyncio.open_connection(host.strip("[]"), int(port))
    dialer = Dialer("demo", name, to, token=offer["key"])
    dialer.receive(await asyncio.wait_for(reader.readline(), GUARD))
    writer.write(dialer.data_to_send())
    return reader, writer, json.loads(await asyncio.wait_for(reader.readline(), GUARD))


async def test_a_key_dies_with_the_member_that_held_the_name(net: Net):
    """Whoever held a name in the room got that name's key; once the relay says the name
    left, that key and the links proven with it are worth nothing, so a client that held a
    free name for a moment cannot keep linking as that member after the real one is back."""
    relay = await net.relay()
    a = net.node("a", relay, listen=LOCAL)
    await until(lambda: a.links is not None and a.links.bound is not None)
    mallory, _ = await net.raw(relay, address="b")  # b is not there yet: the name is free
    offer = await next_offer(mallory)
    reader, writer, answer = await link_as("b", "a", offer)
    try:
        assert answer == {"welcome": True}
        await mallory.ws.close()  # the relay tells a that b left
        assert await asyncio.wait_for(reader.read(), GUARD) == b""  # its link is closed
    finally:
        writer.close()
    b = net.node("b", relay, listen=LOCAL)
    await until(lambda: linked([a, b]), what="the real b linked")
    reader, writer, answer = await link_as("b", "a", offer)
    writer.close()
    assert answer.get("error") == "unauthorized"


async def test_a_member_gone_while_the_relay_was_away_is_no_longer_dialed(net: Net):
    fake = await net.fake()
    a = net.node("a", fake, listen=LOCAL)
    assert a.links is not None
    conn = await fake.next()
    await conn.welcome("b")
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        await conn.send({"type": "msg", "from": "b",
                         "data": {"type": LINK_OFFER, "at": f"127.0.0.1:{port}",
                                  "key": "0" * 32}})
        await until(lambda: "b" in a.links._dialers, what="a dials b")
        await conn.close(1011)  # a reconnects; b left meanwhile
        conn = await fake.next()
        await conn.welcome()
        await until(lambda: "b" not in a.nodes, what="b left")
        assert "b" not in a.links._dialers
        assert "b" not in a.offered.keys
    finally:
        server.close()

async def test_a_member_restarted_under_its_session_gets_our_offer_again(net: Net):
    """A member replaced by a new process with the same session is no departure for the
    relay (nobody hears leave or join), but the new process knows none of our keys: its own
    offer, new to us, makes us offer ours again."""
    relay = await net.relay()
    a = net.node("a", relay, listen=LOCAL, session="a-session")
    b = net.node("b", relay, listen=LOCAL, session="b-session")
    await until(lambda: linked([a, b]), what="a and b linked")
    b2 = net.node("b", relay, listen=LOCAL, session="b-session")  # b's new process
    await until(lambda: linked([a, b2]), what="a and the new b linked both ways")
    assert ("leave", "b") not in a.seen


async def test_a_member_the_relay_replaced_stops_linking(net: Net):
    """The relay ends a connection for good when another takes its seat (4009): the old
    process is no member any more, and must not go on talking Raft over its links as one."""
    relay = await net.relay()
    a = net.node("a", relay, listen=LOCAL, session="a-session")
    b = net.node("b", relay, listen=LOCAL, session="b-session")
    await until(lambda: linked([a, b]), what="a and b linked")
    assert a.links is not None and b.links is not None
    from_old_b = [i for i in a.links._incoming if i.peer == "b"]
    net.node("b", relay, listen=LOCAL, session="b-session")  # takes b's seat
    await until(lambda: any(isinstance(e, RelayClosed) for e in b.errors), what="b replaced")
    await until(lambda: b.links is not None and b.links.bound is None
                and not b.links.is_up("a"), what="the old b stops linking")
    await until(lambda: all(i.closed.done() for i in from_old_b), what="its links closed")

def test_an_address_to_advertise_must_be_one_peers_can_parse():
    for bad in ("10.0.0.1:7001", "host name", "", "[::1"):
        with pytest.raises(ValueError, match="advertise"):
            FastRelayRaft("a", url="ws://127.0.0.1:1/ws", room="demo",
                          listen=("0.0.0.0", 0), advertise=bad)
    for good in ("10.0.0.1", "::1", "[::1]", "server.example"):
        FastRelayRaft("a", url="ws://127.0.0.1:1/ws", room="demo", listen=("0.0.0.0", 0),
                      advertise=good)


def test_listening_on_any_interface_spelled_otherwise_needs_advertise_too():
    for wildcard in ("0:0:0:0:0:0:0:0", "[::]"):
        with pytest.raises(ValueError, match="advertise"):
            FastRelayRaft("a", url="ws://127.0.0.1:1/ws", room="demo", listen=(wildcard, 0))


async def test_an_ipv6_offer_is_bracketed(net: Net):
    relay = await net.relay()
    a = net.node("a", relay, listen=LOCAL, advertise="::1")
    raw, _ = await net.raw(relay, address="x")
    offer = await next_offer(raw)
    assert a.links is not None and a.links.bound is not None
    assert offer["at"] == f"[::1]:{a.links.bound[1]}"


def test_an_offer_s_host_is_a_name_an_ipv4_or_an_ipv6_address():
    key = "0" * 32
    for at, host in (("[::1]:7001", "::1"), ("::1:7001", "::1"), ("10.0.0.1:7001", "10.0.0.1"),
                     ("server.example:7001", "server.example")):
        assert parse_link_offer({"type": LINK_OFFER, "at": at, "key": key}) == (host, 7001, key)
    for at in ("10.0.0.1:7001:7001", "[::1:7001", "[server.example]:7001", ":7001"):
        with pytest.raises(MessageError):
            parse_link_offer({"type": LINK_OFFER, "at": at, "key": key})



async def test_links_come_back_with_new_keys_after_a_member_s_relay_connection_drops(net: Net):
    """The relay tells a that b left and came back: a voids b's key and links, offers a new
    key, and b links with it (its old link and key are no good any more)."""
    relay = await net.relay()
    a = net.node("a", relay, listen=LOCAL)
    b = net.node("b", relay, listen=LOCAL)
    await until(lambda: linked([a, b]), what="a and b linked")
    key = a.offered.keys["b"]
    ws = b.connection._ws
    assert ws is not None
    ws.transport.abort()  # b's connection to the relay drops; b reconnects
    await until(lambda: ("leave", "b") in a.seen and a.seen[-1] == ("join", "b"),
                what="a saw b leave and come back")
    await until(lambda: linked([a, b]) and a.offered.keys.get("b") not in (None, key),
                what="linked again, with a new key")
    lead = await net.leader([a, b])
    index = await asyncio.wait_for(lead.propose("after the blip"), GUARD)
    await until(lambda: all((index, "after the blip") in n.applied for n in (a, b)))


async def test_offered_links_run_over_mutual_tls(net: Net,
                                                 tmp_path_factory: pytest.TempPathFactory):
    certs = make_certs(tmp_path_factory.mktemp("offered-tls"))
    tls = TLS.from_files(certs.cert, certs.key, certs.ca)
    relay = await net.relay()
    nodes = [net.node(a, relay, listen=LOCAL, tls=tls) for a in "abc"]
    await commit_past_the_relay(net, nodes, "over tls")
    assert all(n.links is not None and n.links.tls is tls for n in nodes)


async def test_a_member_whose_certificate_is_not_trusted_talks_through_the_relay(
        net: Net, tmp_path_factory: pytest.TempPathFactory):
    ours = make_certs(tmp_path_factory.mktemp("ours"))
    theirs = make_certs(tmp_path_factory.mktemp("theirs"), name="other")
    trusted = TLS.from_files(ours.cert, ours.key, ours.ca)
    relay = await net.relay()
    a = net.node("a", relay, listen=LOCAL, tls=trusted)
    b = net.node("b", relay, listen=LOCAL, tls=trusted)
    stranger = net.node("c", relay, listen=LOCAL,
                        tls=TLS.from_files(theirs.cert, theirs.key, theirs.ca))
    nodes = [a, b, stranger]
    await until(lambda: linked([a, b]), what="a and b linked")
    assert stranger.links is not None
    links = stranger.links
    await until(lambda: links.link_error is not None, what="the stranger's links refused")
    assert str(links.link_error).startswith("tls")
    await net.leader(nodes)
    index = await asyncio.wait_for(stranger.propose("through the relay"), GUARD)
    await until(lambda: all((index, "through the relay") in n.applied for n in nodes))
    assert not any(links.is_up(p) for p in "ab")


def test_tls_without_listen_is_refused():
    """TLS is for the links; the relay's own connection takes wss:// instead."""
    tls = TLS(server=ssl.create_default_context(ssl.Purpose.CLIENT_AUTH),
              client=ssl.create_default_context())
    with pytest.raises(ValueError, match="give listen= too"):
        relay_transport("a", url="ws://127.0.0.1:9/ws", room="demo", tls=tls)
