"""The cluster view (``webraft/browser/view.py``) on nodes of one event loop: what it says
about roles, presence, progress, configuration entries and messages."""

from __future__ import annotations

import random

import pytest
from support import stable_leader, until

from webraft import NodeConfig, RaftInterface
from webraft.browser.view import HEARTBEATS, ClusterView, _message_label, describe_config
from webraft.core.messages import (
    _SCHEMA,
    AppendRequest,
    AppendResponse,
    CommitNotice,
    Entry,
    Message,
    ProposeRequest,
    ProposeResponse,
    ReadIndexRequest,
    ReadIndexResponse,
    SnapshotChunk,
    SnapshotResponse,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
    encode,
)
from webraft.core.state import ClusterConfig
from webraft.transport.memory import MemoryHub

FAST = NodeConfig(heartbeat_frequency=0.01, heartbeat_timeout=0.05,
                  election_timeout=(0.05, 0.10), proposal_timeout=3.0)


def member(view: ClusterView, address: str) -> dict:
    return next(m for m in view.snapshot()["members"] if m["id"] == address)


def test_configuration_changes_are_described_in_words() -> None:
    before = ClusterConfig(("a", "b"), ("c",))
    assert describe_config(before, ClusterConfig(("a", "b"), ("c", "d"))) == "add d as learner"
    assert describe_config(before, ClusterConfig(("a", "b", "c"))) == "promote c"
    assert describe_config(before, ClusterConfig(("a",), ("c",))) == "remove b"
    assert describe_config(before, ClusterConfig(("a", "c"), ("b",))) == (
        "demote b to learner; promote c")
    assert describe_config(before, before) == "configuration unchanged"


async def test_the_view_shows_roles_progress_presence_and_config_entries() -> None:
    hub = MemoryHub()
    names = ["a", "b", "c"]
    nodes = {n: RaftInterface(n, members=names, transport=hub.transport(n),
                              config=FAST.replace(rng=random.Random(i)))
             for i, n in enumerate(names)}
    nodes["d"] = RaftInterface("d", members=(), transport=hub.transport("d"),
                               config=FAST.replace(rng=random.Random(9)))
    views = {n: ClusterView(node) for n, node in nodes.items()}  # before they start
    for node in nodes.values():
        node.start()
    leader = await until(lambda: stable_leader(nodes[n] for n in names))
    view = views[leader.address]
    followers = [n for n in names if n != leader.address]

    # A node in no configuration waits to be added, in its own view and in the leader's.
    assert views["d"].snapshot()["member"] is False
    assert member(views["d"], "d")["role"] == "waiting"
    assert member(view, "d")["role"] == "waiting"

    index = await leader.propose({"op": "put", "key": "k", "value": 1})
    await until(lambda: all(member(view, f)["match"] == index for f in followers))
    snap = view.snapshot()
    roles = {m["id"]: m["role"] for m in snap["members"]}
    assert roles == {leader.address: "leader", **dict.fromkeys(followers, "follower"),
                     "d": "waiting"}
    me = member(view, leader.address)
    assert me["self"] and me["term"] == leader.term and me["timer"] is None
    assert snap["log"][-1]["label"] == '{"op":"put","key":"k","value":1}'
    assert snap["log"][-1]["committed"]
    # A follower's own election timer is exact; it estimates the others' (the leader has none).
    own = member(views[followers[0]], followers[0])["timer"]
    assert own["exact"] and own["total"] == 60
    assert member(views[followers[0]], leader.address)["timer"] is None
    assert member(views[followers[0]], leader.address)["presence"] == "online"

    # Heartbeats are counted per link, never listed one by one.
    await until(lambda: view.snapshot()["heartbeats"])
    snap = view.snapshot()
    assert {(b["from"], b["to"]) for b in snap["heartbeats"]} <= {
        (leader.address, f) for f in followers} | {(f, leader.address) for f in followers}
    assert not [m for m in snap["messages"] if m["type"].startswith("heartbeat")]

    # Adding d: it joins as a learner and is promoted; both entries say so.
    await leader.add_member("d")
    await until(lambda: "d" in leader.core.status().config.voters)
    labels = [e["label"] for e in view.snapshot()["log"] if e["kind"] == "config"]
    assert labels[-2:] == ["add d as learner", "promote d"]
    # d joined with an empty bootstrap configuration, and still reads its addition so.
    await until(lambda: [e["label"] for e in views["d"].snapshot()["log"]
                         if e["kind"] == "config"] == labels)
    assert member(view, "d")["role"] == "follower"

    # A follower the leader no longer hears, yet present, is paused; a gone one is offline.
    hub.cut(leader.address, followers[0])
    await until(lambda: member(view, followers[0])["presence"] == "paused", timeout=3.0)
    hub.heal()
    await until(lambda: member(view, followers[0])["presence"] == "online")
    await nodes[followers[1]].close()
    await until(lambda: member(view, followers[1])["presence"] == "offline")
    await leader.remove_member(followers[1])
    assert [e["label"] for e in view.snapshot()["log"]][-1] == f"remove {followers[1]}"
    for n, node in nodes.items():
        if n != followers[1]:
            await node.close()


#: A message of every kind but heartbeats, and its label.
LABELS = [
    (VoteRequest(term=3, last_index=5, last_term=2, pre=True), "pre-vote, term 3"),
    (VoteRequest(term=3, last_index=5, last_term=2), "vote for me, term 3"),
    (VoteResponse(term=3, granted=True), "vote yes"),
    (VoteResponse(term=3, granted=False, pre=True), "pre-vote no"),
    (AppendRequest(term=3, prev_index=5, prev_term=2, commit=4,
                   entries=(Entry(3, 6, command="x"),)), "append 1 entry after 5"),
    (AppendRequest(term=3, prev_index=5, prev_term=2, commit=4), "append (empty), commit 4"),
    (AppendResponse(term=3, index=6, success=True), "ok, have 6"),
    (AppendResponse(term=3, index=2, success=False), "no, retry from 2"),
    (CommitNotice(term=3, commit=6), "commit 6"),
    (TimeoutNow(term=3), "take over now"),
    (SnapshotChunk(term=3, index=90, snap_term=2, config=["a"], offset=0, size=2, crc=0,
                   data="{}"), "snapshot up to 90"),
    (SnapshotResponse(term=3, index=90, offset=4096), "snapshot 90: resume at byte 4096"),
    (ProposeRequest(term=3, id=1, commands=("a", "b")), "forward 2 command(s)"),
    (ProposeResponse(term=3, id=1, index=7), "appended at 7"),
    (ProposeResponse(term=3, id=1, index=0, leader="b"), "not appended"),
    (ReadIndexRequest(term=3, id=1), "ask for a read index"),
    (ReadIndexResponse(term=3, id=1, index=7), "read at 7"),
    (ReadIndexResponse(term=3, id=1, index=0), "read refused"),
]


@pytest.mark.parametrize(("message", "label"), LABELS)
def test_every_message_kind_is_labelled_in_words(message: Message, label: str) -> None:
    """The diagram and the message list label each message from its wire form."""
    payload = encode(message)
    assert _message_label(payload["type"], payload) == label


def test_the_labelled_kinds_and_the_counted_heartbeats_are_every_kind_on_the_wire() -> None:
    """A new message kind must get a label (above) or be counted as a heartbeat."""
    assert {message.TYPE for message, _ in LABELS} | HEARTBEATS == set(_SCHEMA)


def test_a_boolean_is_not_an_index() -> None:
    assert _message_label("propose_resp", {"index": True}) == "not appended"
    assert _message_label("read_resp", {"index": True}) == "read refused"


def test_a_malformed_payload_still_gets_a_label() -> None:
    """Payloads are untrusted: wrong types give a label with gaps, never an exception."""
    for kind in ("append", "append_resp", "vote", "vote_resp", "snapshot", "snapshot_resp",
                 "propose", "propose_resp", "read_resp", "commit", "odd_kind"):
        assert isinstance(_message_label(kind, {"index": "x", "entries": 3, "commands": {}}),
                          str)
