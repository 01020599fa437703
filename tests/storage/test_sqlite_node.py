"""A real node on SQLiteStorage: what it saved is what a new node on the same file starts from."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import until

import webraft
from webraft.storage import SQLiteStorage


class SoloRaft(webraft.RaftInterface):
    """A one-member cluster with short timeouts that records what it applies."""

    def __init__(self, address: str, **kwargs: Any) -> None:
        super().__init__(address, **kwargs)
        self.applied: list[tuple[int, Any]] = []
        self.listen("apply", self._record_apply)

    def _record_apply(self, entry: webraft.Entry, index: int, cb: Callable[..., None]) -> None:
        self.applied.append((index, entry.command))
        cb()

    def create_instance(self, address: str) -> webraft.NodeInstance:
        raise AssertionError(f"a one-member cluster has no peer {address!r}")

    @property
    def election_timeout(self) -> float:
        return 0.02

    @property
    def heartbeat_frequency(self) -> float:
        return 0.005

    @property
    def heartbeat_timeout(self) -> float:
        return 0.02


COMMANDS = [{"set": "x", "to": 1}, "two", [3, {"nested": [None, True, 2.5]}], 4, None]


@pytest.mark.parametrize("threaded", [False, True])
async def test_node_recovers_term_vote_and_log(tmp_path: Path, threaded: bool) -> None:
    path = tmp_path / "node" / "raft.db"
    storage = SQLiteStorage(path, threaded=threaded)
    node = SoloRaft("a", members=["a"], storage=storage)
    node.start()
    indexes = [await asyncio.wait_for(node.propose(c), 10) for c in COMMANDS]
    assert node.applied == list(zip(indexes, COMMANDS, strict=True))
    term, vote = node.term, node.core.vote
    log = [(e.index, e.term, e.kind, e.command) for e in node.core.log.entries]
    assert term >= 1 and vote == "a" and len(log) > len(COMMANDS)  # plus the leader's no-op
    await node.close()
    storage.close()

    storage = SQLiteStorage(path, threaded=threaded)
    again = SoloRaft("a", members=["someone", "else"], storage=storage)  # members ignored
    try:
        assert again.members == ("a",)
        assert (again.term, again.core.vote) == (term, vote)
        assert [(e.index, e.term, e.kind, e.command) for e in again.core.log.entries] == log
        again.start()
        # No refresh handler: every committed entry is applied again, exactly once.
        await until(lambda: again.is_leader and again.last_applied >= indexes[-1],
                    what="the restarted node leads and re-applied its log")
        index = await asyncio.wait_for(again.propose("after"), 10)
        assert again.term > term
        assert again.applied == [*zip(indexes, COMMANDS, strict=True), (index, "after")]
    finally:
        await again.close()
        storage.close()
    with SQLiteStorage(path) as check:
        state = check.load()
    assert state is not None and state.hard.term == again.term
    # [its implicit session, seq, ack, command]: plain proposals are in a session
    assert state.entries[-1].command == "after" and state.hard.commit >= index
