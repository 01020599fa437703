"""A real node on LocalStorage: propose, close, and a new node on the same store recovers."""

from __future__ import annotations

import asyncio

from lsfake import FakeWebStorage, JsNull

import webraft
from webraft.core.messages import COMMAND
from webraft.storage import LocalStorage

NS = "webraft/room/a/"


class Node(webraft.RaftInterface):
    def create_instance(self, address: str) -> webraft.NodeInstance:
        raise AssertionError("a single-member cluster has no peers")

    @property
    def heartbeat_frequency(self) -> float:
        return 0.01

    @property
    def heartbeat_timeout(self) -> float:
        return 0.03

    @property
    def election_timeout(self) -> float:
        return 0.05


async def test_single_member_node_recovers_term_vote_and_log() -> None:
    store = FakeWebStorage({"unrelated": "keep me"}, null=JsNull())
    applied: list[object] = []
    node = Node("a", members=["a"], storage=LocalStorage(NS, store))
    node.listen("apply", lambda entry, index, cb: (applied.append(entry.command), cb()))
    node.start()
    indexes = [await asyncio.wait_for(node.propose({"n": i}), 5) for i in range(5)]
    indexes += await asyncio.wait_for(asyncio.gather(*(node.propose(f"c{i}")
                                                       for i in range(20))), 5)
    assert node.is_leader and applied == [{"n": i} for i in range(5)] + [f"c{i}"
                                                                          for i in range(20)]
    term, log = node.term, list(node.core.log.entries)
    assert node.core.vote == "a" and term >= 1
    await node.close()

    again = Node("a", members=["x", "y"], storage=LocalStorage(NS, store))
    assert again.term == term and again.core.vote == "a"
    assert again.members == ("a",)  # from storage, not from members=
    assert list(again.core.log.entries) == log
    commands = [e.command for e in log if e.kind == COMMAND]
    assert commands == applied
    assert [log[i - 1].command for i in indexes] == applied
    assert again.commit_index >= indexes[-1]  # the commit index was persisted too
    replayed: list[object] = []
    again.listen("apply", lambda entry, index, cb: (replayed.append(entry.command), cb()))
    again.start()
    assert await asyncio.wait_for(again.propose("after restart"), 5) > indexes[-1]
    assert replayed == [*applied, "after restart"]
    assert again.term > term  # it had to win an election again
    await again.close()
    assert store.data["unrelated"] == "keep me"
    assert len([k for k in store.data if k.startswith(NS)]) == 1 + len(again.core.log.entries)
