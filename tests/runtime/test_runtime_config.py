"""NodeConfig (configuration as data) and the transport port a node holds."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from typing import Any

import pytest
from support import stable_leader, until

import webraft
from webraft import NodeConfig, RaftInterface
from webraft.browser.transport import LAZY_INTERVAL, browser_config
from webraft.transport.memory import MemoryHub, MemoryTransport

FAST = NodeConfig(heartbeat_frequency=0.01, heartbeat_timeout=0.05,
                  election_timeout=(0.05, 0.10), proposal_timeout=3.0)


@pytest.mark.parametrize("changes", [
    {"election_timeout": (0.3, 0.2)},
    {"election_timeout": (0.0, 0.2)},
    {"heartbeat_frequency": 0.3},  # not shorter than heartbeat_timeout
    {"heartbeat_timeout": -1.0},
    {"proposal_timeout": True},
    {"snapshot_entries": 0},
    {"max_command_bytes": 1.5},
    {"snapshot_tail": -1},
    {"member_grace": -0.1},
    {"lazy_interval": -0.01},
    {"lazy_interval": "0.01"},
    {"lazy_interval": True},
    {"rng": 7},
])
def test_invalid_settings_are_refused_once_at_construction(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        NodeConfig(**changes)
    with pytest.raises(ValueError):
        NodeConfig().replace(**changes)


def test_lazy_followers_are_off_except_in_a_tab_where_they_fit_a_heartbeat() -> None:
    assert NodeConfig().lazy_interval == 0
    assert NodeConfig().core_config("a", float, float, False).lazy_interval == 0
    tab = browser_config()
    assert tab.lazy_interval == LAZY_INTERVAL > 0
    assert tab.core_config("a", float, float, False).lazy_interval == LAZY_INTERVAL
    assert browser_config(lazy_interval=0).core_config("a", float, float,
                                                       False).lazy_interval == 0


@pytest.mark.parametrize("shorten", [
    lambda: browser_config(heartbeat_frequency=0.01),
    lambda: browser_config().replace(heartbeat_frequency=0.01),
    lambda: NodeConfig(heartbeat_frequency=0.01, lazy_interval=0.5),
])
def test_a_lazy_interval_is_capped_at_a_heartbeat(shorten: Any) -> None:
    """Shortening a tab configuration's heartbeat must not make it invalid: the interval
    the core gets is capped instead, so a lazy follower still hears within a heartbeat."""
    assert shorten().core_config("a", float, float, False).lazy_interval == 0.01


def test_a_config_is_frozen_and_its_rng_takes_no_part_in_equality() -> None:
    config = NodeConfig(rng=random.Random(1))
    assert config == NodeConfig(rng=random.Random(2))
    with pytest.raises(AttributeError):
        config.heartbeat_timeout = 1.0  # type: ignore[misc]


async def test_a_seeded_rng_makes_a_node_draw_the_same_timeouts() -> None:
    draws = []
    for _ in range(2):
        node = webraft.RaftInterface("a", config=NodeConfig(rng=random.Random(42)))
        draws.append([node.election_timeout for _ in range(5)])
    assert draws[0] == draws[1]
    low, high = NodeConfig().election_timeout
    assert all(low <= d <= high for d in draws[0])


def test_the_seed_style_property_overrides_are_folded_into_the_config() -> None:
    class Tuned(RaftInterface):
        @property
        def heartbeat_timeout(self) -> float:
            return 2 * super().heartbeat_timeout

        @property
        def snapshot_entries(self) -> int:
            return 10

    node = Tuned("a", config=NodeConfig(heartbeat_timeout=0.4))
    assert node.config.heartbeat_timeout == 0.8 == node.heartbeat_timeout
    assert node.config.snapshot_entries == 10
    assert node.config.proposal_timeout == NodeConfig().proposal_timeout
    assert node.core.cfg.quorum_timeout == 0.8  # the core got the folded value


def test_a_transport_with_a_frame_limit_lowers_the_command_limit() -> None:
    transport = MemoryHub().transport("a")
    transport.max_command_bytes = 1000
    node = RaftInterface("a", transport=transport)
    assert node.max_command_bytes == 1000
    assert RaftInterface("b", transport=MemoryHub().transport("b")).max_command_bytes == (
        NodeConfig().max_command_bytes)


def test_without_a_transport_the_seed_way_needs_create_instance() -> None:
    node = RaftInterface("a", members=["a", "b"])
    with pytest.raises(NotImplementedError):
        node.join("b")


async def test_nodes_holding_memory_transports_elect_replicate_and_fail_over() -> None:
    hub = MemoryHub()
    addresses = ["a", "b", "c"]
    nodes = {a: RaftInterface(a, members=addresses, transport=hub.transport(a),
                              config=FAST.replace(rng=random.Random(i)))
             for i, a in enumerate(addresses)}
    applied: dict[str, list[Any]] = {a: [] for a in addresses}
    for a, node in nodes.items():
        node.listen("apply", lambda entry, index, cb, a=a: (applied[a].append(entry.command), cb()))
        node.start()
    assert set(nodes["a"].nodes) == {"b", "c"}  # the transport's joins made the peers
    leader = await until(lambda: stable_leader(nodes.values()))
    follower = next(n for n in nodes.values() if n is not leader)
    index = await follower.propose({"put": 1})  # forwarded through the transport
    await until(lambda: all(applied[a] == [{"put": 1}] for a in addresses))
    assert index >= 1

    await leader.close()  # its transport detaches: the others see it leave
    rest = [n for n in nodes.values() if n is not leader]
    await until(lambda: all(leader.address not in n.nodes for n in rest))
    new = await until(lambda: stable_leader(rest))
    assert new is not leader
    await new.propose("after")
    await until(lambda: all(applied[n.address][-1] == "after" for n in rest))
    for node in rest:
        await node.close()


async def test_transport_errors_become_error_events_and_close_closes_the_transport() -> None:
    closed = asyncio.Event()

    class Recording:
        max_command_bytes = None

        def start(self, handler: Any) -> None:
            self.handler = handler

        def send(self, to: str, payload: dict[str, Any]) -> None:
            pass

        async def close(self) -> None:
            closed.set()

    transport = Recording()
    node = RaftInterface("a", transport=transport)
    errors: list[BaseException] = []
    node.listen("error", errors.append)
    node.start()
    assert transport.handler is node
    problem = webraft.MessageError("bad frame")
    transport.handler.transport_error(problem)
    assert errors == [problem]
    await node.close()
    assert closed.is_set()


async def test_a_closed_node_ignores_joins_and_leaves_its_transport_still_reports() -> None:
    hub = MemoryHub()
    node = RaftInterface("a", members=["a", "b"], transport=hub.transport("a"))
    events: list[tuple[str, str]] = []
    node.listen("join", lambda who: events.append(("join", who)))
    node.listen("leave", lambda who: events.append(("leave", who)))
    node.start()
    node.join("b")
    closing = asyncio.ensure_future(node.close())
    await asyncio.sleep(0)  # close() began (a transport may report until it is closed)
    node.join("c")
    node.leave("b")
    await closing
    assert events == [("join", "b")]
    assert "c" not in node.nodes


async def test_drive_now_sends_a_transfer_before_it_returns() -> None:
    """What a tab going away relies on (``BrowserRaft.hand_over_now``): no further loop turn
    is guaranteed, so the TimeoutNow must be handed to the transport synchronously."""
    sent: list[tuple[str, dict[str, Any]]] = []

    class Recording(MemoryTransport):
        def send(self, to: str, payload: dict[str, Any]) -> None:
            sent.append((to, payload))
            super().send(to, payload)

    hub = MemoryHub()
    nodes = [RaftInterface(a, members=["a", "b"], transport=Recording(hub, a),
                           config=FAST.replace(rng=random.Random(i)))
             for i, a in enumerate("ab")]
    for node in nodes:
        node.start()
    leader = await until(lambda: stable_leader(nodes))
    follower = next(n for n in nodes if n is not leader)

    def caught_up() -> bool:  # the no-op acknowledged: the transfer needs no append first
        status = leader.core.status()
        peer = status.progress.get(follower.address)
        return status.last_index > 0 and peer is not None and peer.match == status.last_index

    await until(caught_up)
    target = leader.transfer_leadership()
    assert target == follower.address
    sent.clear()
    leader.drive_now()
    assert (target, {"type": "timeout_now", "term": leader.term}) in [
        (to, {k: v for k, v in p.items() if k in ("type", "term")}) for to, p in sent]
    for node in nodes:
        await node.close()


HANDOVER = """
import asyncio, random
from webraft import NodeConfig, RaftInterface
from webraft.transport.memory import MemoryHub

async def main():
    hub = MemoryHub()
    config = NodeConfig(heartbeat_frequency=0.01, heartbeat_timeout=0.05,
                        election_timeout=(0.05, 0.10))
    nodes = [RaftInterface(a, members=["a", "b", "c"], transport=hub.transport(a),
                           config=config.replace(rng=random.Random(i)))
             for i, a in enumerate("abc")]
    for node in nodes:
        node.start()
    while not any(n.is_leader for n in nodes):
        await asyncio.sleep(0.01)
    leader = next(n for n in nodes if n.is_leader)
    hub.cut(leader.address, "b")  # the transfer cannot complete at once
    hub.cut(leader.address, "c")
    assert leader.transfer_leadership() is not None
    fut = leader.propose("x")  # refused while handing over: parked, then retried
    await asyncio.wait([fut], timeout=1.0)
    for node in nodes:
        await node.close()
    print("done")

asyncio.run(main())
"""


def test_a_proposal_to_a_leader_handing_over_does_not_freeze_the_loop() -> None:
    """The leader refuses proposals while it hands over; retrying the parked batch in the
    same Ready round was refused again, forever, and froze the event loop (found by the
    simulator). Run in a subprocess so that a regression fails instead of hanging."""
    try:
        out = subprocess.run([sys.executable, "-c", HANDOVER], capture_output=True,
                             text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("the event loop froze")
    assert out.stdout.strip() == "done", out.stderr[-2000:]
