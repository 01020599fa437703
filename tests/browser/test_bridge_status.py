"""The bridge's ``status()`` (``webraft/browser/bridge.py``): its log tail shows commands as
they were proposed, with the session wrapper taken off as the cluster view does."""

from __future__ import annotations

import json
import random

from support import stable_leader, until

from webraft import MemoryStorage, NodeConfig, RaftInterface
from webraft.browser.bridge import JsNode
from webraft.browser.transport import BrowserConnection, BrowserRaft
from webraft.browser.view import ClusterView
from webraft.core.messages import SESSION
from webraft.transport.memory import MemoryHub
from webraft.transport.relay import RelayClient

FAST = NodeConfig(heartbeat_frequency=0.01, heartbeat_timeout=0.05,
                  election_timeout=(0.05, 0.10), proposal_timeout=3.0)


async def test_the_status_log_shows_commands_not_session_wrappers() -> None:
    hub = MemoryHub()
    names = ["a", "b", "c"]
    storages = {n: MemoryStorage() for n in names}
    nodes = [RaftInterface(n, members=names, transport=hub.transport(n), storage=storages[n],
                           config=FAST.replace(rng=random.Random(i)))
             for i, n in enumerate(names)]
    for node in nodes:
        node.start()
    try:
        leader = await until(lambda: stable_leader(nodes))
        await leader.propose({"op": "put", "key": "plain"})
        session = await leader.open_session()
        await session.propose({"op": "put", "key": "in a session"})
        raw = [e.data for e in leader.core.last_entries(12) if e.kind == SESSION]
        assert raw and all(isinstance(c, list) and len(c) == 4 for c in raw)  # wrapped
        storage = storages[leader.address]
    finally:
        for node in nodes:
            await node.close()

    # The same log in a tab's node, built (not started: no page, no relay) on that storage.
    client = RelayClient("room", leader.address)
    tab = BrowserRaft(client, BrowserConnection("ws://127.0.0.1:1/ws", client, None),
                      members=names, storage=storage, config=FAST, broadcast=False)
    log = json.loads(JsNode(tab).status_json())["log"]
    commands = [e["command"] for e in log if e["kind"] == SESSION]
    assert {"op": "put", "key": "plain"} in commands
    assert {"op": "put", "key": "in a session"} in commands
    assert not any(isinstance(c, list) for c in commands)
    # The cluster view labels the same entries.
    labels = [e["label"] for e in ClusterView(tab).snapshot()["log"] if e["kind"] == "session"]
    assert '{"op":"put","key":"plain"}' in labels
    assert any(label.endswith(': {"op":"put","key":"in a session"}') for label in labels)


def test_the_status_shows_the_stalls_the_page_counted_since_the_last_frame() -> None:
    """The stall watch counts in JavaScript; a node takes the count before each frame and
    tick, and the status takes it too, so an idle tab's dashboard is not behind."""
    client = RelayClient("room", "a")
    tab = BrowserRaft(client, BrowserConnection("ws://127.0.0.1:1/ws", client, None),
                      members=["a", "b", "c"], storage=MemoryStorage(), config=FAST,
                      broadcast=False)
    counted = [0]
    tab._stall_watch = (lambda: counted[0], lambda: None)  # as start() sets it in a page
    page = JsNode(tab)
    assert json.loads(page.status_json())["stalls"] == 0
    counted[0] = 2  # the page saw two stalls; no frame or tick came since
    assert json.loads(page.status_json())["stalls"] == 2
