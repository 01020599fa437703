"""The event API (listen/unlisten/listen_once/emit), peers (join/leave/got_data), elections."""

from __future__ import annotations

import asyncio
from typing import Any

from cluster import Cluster, FastRaft, MemNode, Network, Timing
from support import until

import webraft

# ---------------------------------------------------------------------- listen / emit


def make_node(address: str = "a") -> FastRaft:
    return FastRaft(address, Network(), members=["a", "b", "c"])


def test_listen_returns_unsubscribe_and_emit_passes_args() -> None:
    raft = make_node()
    calls: list[tuple[Any, ...]] = []
    off = raft.listen("custom", lambda *args: calls.append(args))
    raft.emit("custom", 1, "two", None, {"k": [3]})
    assert calls == [(1, "two", None, {"k": [3]})]
    off()
    raft.emit("custom", 4)
    assert calls == [(1, "two", None, {"k": [3]})]
    off()  # a second call is harmless
    raft.emit("custom")
    assert len(calls) == 1


def test_unlisten_removes_only_that_handler() -> None:
    raft = make_node()
    calls: list[str] = []

    def h1() -> None:
        calls.append("h1")

    def h2() -> None:
        calls.append("h2")

    raft.listen("x", h1)
    raft.listen("x", h2)
    raft.emit("x")
    raft.unlisten("x", h1)
    raft.emit("x")
    raft.unlisten("x", h1)  # absent: no-op
    raft.unlisten("never", h1)
    assert calls == ["h1", "h2", "h2"]


def test_listen_once_fires_once() -> None:
    raft = make_node()
    calls: list[int] = []
    raft.listen_once("x", calls.append)
    raft.emit("x", 1)
    raft.emit("x", 2)
    raft.emit("x", 3)
    assert calls == [1]


def test_listen_once_can_be_removed_by_the_original_function_or_by_its_off() -> None:
    raft = make_node()
    calls: list[int] = []

    def handler(v: int) -> None:
        calls.append(v)

    raft.listen_once("x", handler)
    raft.unlisten("x", handler)
    raft.emit("x", 1)
    off = raft.listen_once("y", handler)
    off()
    raft.emit("y", 2)
    assert calls == []


def test_a_raising_handler_is_reported_and_the_others_still_run() -> None:
    raft = make_node()
    boom = RuntimeError("boom")
    errors: list[BaseException] = []
    after: list[int] = []
    raft.listen("error", errors.append)

    def bad(_v: int) -> None:
        raise boom

    raft.listen("x", bad)
    raft.listen("x", after.append)
    raft.emit("x", 7)  # must not raise
    assert after == [7]
    assert errors == [boom]


def test_a_raising_error_handler_does_not_loop() -> None:
    raft = make_node()
    calls: list[BaseException] = []

    def bad(exc: BaseException) -> None:
        calls.append(exc)
        raise RuntimeError("error handler failed")

    raft.listen("error", bad)
    raft.emit("x-without-handlers")
    raft.emit("error", ValueError("v"))  # must not raise nor recurse
    assert len(calls) == 1


async def test_an_async_handler_runs_and_its_failure_is_reported() -> None:
    raft = make_node()
    errors: list[BaseException] = []
    ran: list[int] = []
    boom = RuntimeError("async boom")
    raft.listen("error", errors.append)

    async def ok(v: int) -> None:
        await asyncio.sleep(0)
        ran.append(v)

    async def bad(_v: int) -> None:
        await asyncio.sleep(0)
        raise boom

    raft.listen("x", ok)
    raft.listen("x", bad)
    raft.emit("x", 5)
    await until(lambda: ran and errors, 2, "async handlers finished")
    assert ran == [5]
    assert errors == [boom]


async def test_raising_handlers_do_not_break_a_running_cluster(
        make_cluster: Any) -> None:
    c: Cluster = make_cluster()
    errors: dict[str, list[BaseException]] = {}
    for name in c.names:
        node = c.build(name)
        errors[name] = []
        node.listen("error", errors[name].append)
        for event in ("state changed", "leader", "follower", "candidate", "start election",
                      "updated", "join"):
            def bad(*_args: Any, event: str = event) -> None:
                raise RuntimeError(f"bad {event}")
            node.listen(event, bad)

        async def bad_async(*_args: Any) -> None:
            raise ValueError("bad async updated")
        node.listen("updated", bad_async)
    c.start()
    lead = await c.leader()
    follower = next(n for n in c.nodes.values() if n is not lead)
    i1 = await lead.propose({"n": 1})
    i2 = await follower.propose({"n": 2})
    assert i2 > i1
    await c.converged()
    for node in c.nodes.values():
        assert [cmd for _, cmd in node.applied] == [{"n": 1}, {"n": 2}]
    await until(lambda: all(
        any(isinstance(e, ValueError) and "bad async updated" in str(e) for e in errs)
        for errs in errors.values()), 2, "async handler failures reported")
    for errs in errors.values():
        assert "bad updated" in {str(e) for e in errs}
    assert {"bad state changed", "bad start election", "bad candidate", "bad leader"} <= {
        str(e) for e in errors[lead.address]}


# ---------------------------------------------------------------------- peers


def test_join_and_leave_events_and_the_nodes_dict() -> None:
    raft = make_node("a")
    joined: list[str] = []
    left: list[str] = []
    raft.listen("join", joined.append)
    raft.listen("leave", left.append)
    raft.join("b")
    raft.join("b")  # already there: no second event
    raft.join("a")  # itself: ignored
    raft.join("d")  # not a member: still a peer
    assert joined == ["b", "d"]
    assert set(raft.nodes) == {"b", "d"}
    b = raft.nodes["b"]
    assert isinstance(b, MemNode)
    assert b.address == "b"
    assert b.raft is raft
    raft.leave("b")
    raft.leave("b")  # gone: no second event
    raft.leave("zzz")
    assert left == ["b"]
    assert set(raft.nodes) == {"d"}
    assert b.closed  # the NodeInstance was told to release its connection


def test_node_instance_write_must_be_implemented() -> None:
    raft = make_node("a")
    plain = webraft.NodeInstance("b", raft)
    assert plain.message_timeout == 3.0
    try:
        plain.write({"type": "heartbeat"})
    except NotImplementedError:
        pass
    else:
        raise AssertionError("NodeInstance.write() did not raise NotImplementedError")


async def test_got_data_on_interface_equals_got_data_on_node_instance() -> None:
    """The same heartbeat fed both ways has the same effect and the same answer."""
    results = []
    for via_instance in (False, True):
        net = Network()
        sent: list[tuple[str, str, dict[str, Any]]] = []
        net.drops.append(lambda src, dst, p, sent=sent: bool(sent.append((src, dst, p))))
        # Timeouts far beyond the test: the state is compared after the answer, however slow.
        raft = FastRaft("b", net, members=["a", "b", "c"], timing=Timing(
            heartbeat_timeout=60, election_min=60, election_max=61))
        raft.join("a")
        raft.start()
        hb = {"type": "heartbeat", "term": 5, "commit": 0}
        if via_instance:
            raft.nodes["a"].got_data(hb)
        else:
            raft.got_data("a", hb)
        await until(lambda sent=sent: any(p["type"] == "heartbeat_resp" for _, _, p in sent),
                    2, "heartbeat answered")
        results.append((raft.term, raft.leader, raft.state,
                        [(s, d, p) for s, d, p in sent if p["type"] == "heartbeat_resp"][:1]))
        await raft.close()
    assert results[0] == results[1]
    assert results[0] == (5, "a", "follower", [("b", "a", {"type": "heartbeat_resp",
                                                              "term": 5})])


async def test_got_data_from_a_peer_instance_with_garbage_reports_error() -> None:
    raft = make_node("b")
    raft.join("a")
    raft.start()
    try:
        errors: list[BaseException] = []
        raft.listen("error", errors.append)
        raft.nodes["a"].got_data("not a message")
        raft.got_data("a", {"type": "heartbeat"})
        assert len(errors) == 2
        assert all(isinstance(e, webraft.MessageError) for e in errors)
    finally:
        await raft.close()


# ---------------------------------------------------------------------- elections


async def test_three_nodes_elect_exactly_one_leader_with_events(cluster: Cluster) -> None:
    lead = await cluster.leader()
    nodes = list(cluster.nodes.values())
    assert sum(n.is_leader for n in nodes) == 1
    assert lead.state == "leader"
    for n in nodes:
        assert n.leader == lead.address
        assert n.term == lead.term >= 1
        if n is not lead:
            assert n.state == "follower"
            assert not n.is_leader
    # The winner campaigned, became a candidate and then the leader, in that order.
    names = [e[0] for e in lead.events]
    assert "start election" in names
    first_candidate = names.index("candidate")
    assert names.index("start election") < names.index("leader")
    assert first_candidate < names.index("leader")
    changes = [args[0] for args in lead.named("state changed")]
    assert changes[-1] == "leader"
    assert "candidate" in changes
    assert changes.index("candidate") < len(changes) - 1
    for n in nodes:
        for (state,) in n.named("state changed"):
            assert state in ("follower", "candidate", "leader")
        # every "state changed" comes with the matching role event
        role_events = [e[0] for e in n.events if e[0] in ("follower", "candidate", "leader")]
        assert role_events == [s for (s,) in n.named("state changed")]


async def test_heartbeat_timeout_and_new_election_after_the_leader_is_cut_off(
        cluster: Cluster) -> None:
    lead = await cluster.leader()
    old_term = lead.term
    others = [n for n in cluster.names if n != lead.address]
    for node in cluster.nodes.values():
        node.events.clear()
    cluster.isolate(lead.address)
    new = await cluster.leader(among=others)
    assert new.address != lead.address
    assert new.term > old_term
    for name in others:
        names = [e[0] for e in cluster.nodes[name].events]
        if "heartbeat timeout" in names:
            assert "start election" in names[names.index("heartbeat timeout"):]
    assert any(("heartbeat timeout",) in cluster.nodes[n].events for n in others)
    assert ("start election",) in new.events
    assert ("leader",) in new.events
    # The cut-off leader cannot reach a majority: CheckQuorum makes it step down.
    await until(lambda: ("follower",) in lead.events, 5, "old leader stepped down")
    # Cut off, it campaigns again (pre-votes only: its term does not grow) but never leads.
    assert not lead.is_leader


def test_unlisten_removes_a_bound_method_listened_to_earlier() -> None:
    """``obj.method`` is a new object on every access: matching by identity made
    ``unlisten(event, obj.method)`` a silent no-op."""

    class App:
        def __init__(self) -> None:
            self.seen: list[int] = []

        def on_updated(self, index: int) -> None:
            self.seen.append(index)

    emitter = webraft.EventEmitter()
    app = App()
    emitter.listen("updated", app.on_updated)
    emitter.listen_once("updated", app.on_updated)
    emitter.unlisten("updated", app.on_updated)
    emitter.unlisten("updated", app.on_updated)
    emitter.emit("updated", 1)
    assert app.seen == [] and emitter.listeners("updated") == []
