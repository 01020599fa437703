"""A real node on LocalStorage: propose, close, and a new node on the same store recovers;
with snapshots, the namespace stays small and a restart starts from the stored snapshot."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from lsfake import FakeWebStorage, JsNull

import webraft
from webraft.core.messages import SESSION
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
    commands = [e.command for e in log if e.kind == SESSION]  # in the implicit session
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
    # Nothing but the meta and the log's runs (of one entry or more): a new load, which
    # removes every key the meta does not reference, finds nothing to remove.
    kept = dict(store.data)
    assert LocalStorage(NS, store).load() is not None
    assert store.data == kept
    assert 2 <= len([k for k in store.data if k.startswith(NS)]) <= (
        1 + len(again.core.log.entries))


class SnapshottingNode(Node):
    """A key-value member that snapshots every 20 applied entries, keeping a tail of 5."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.kv: dict[str, object] = {}
        self.listen("apply", self._apply_entry)
        self.listen("snapshot", lambda index, term: dict(self.kv))
        self.listen("refresh", self._refresh)

    def _apply_entry(self, entry: webraft.Entry, index: int, cb: Callable[[], None]) -> None:
        self.kv[entry.command["k"]] = entry.command["v"]
        cb()

    def _refresh(self, cb: Callable[..., None]) -> None:
        snap = self.snapshot
        if snap is None:
            self.kv = {}
            cb()
        else:
            self.kv = dict(snap.data)
            cb(snap.term, snap.index)

    @property
    def snapshot_entries(self) -> int:
        return 20

    @property
    def snapshot_tail(self) -> int:
        return 5


async def test_snapshots_keep_the_namespace_small_and_a_restart_loads_them() -> None:
    store = FakeWebStorage(null=JsNull())
    local = LocalStorage(NS, store)
    node = SnapshottingNode("a", members=["a"], storage=local)
    node.start()
    sizes = []
    for round_ in range(10):
        await asyncio.wait_for(asyncio.gather(*(
            node.propose({"k": f"k{i % 7}", "v": "x" * 50 + str(round_ * 30 + i)})
            for i in range(30))), 5)
        sizes.append(local.usage())
    expected = dict(node.kv)
    await node.close()
    state = LocalStorage(NS, store).load()
    assert state is not None and state.snapshot.index > 250
    assert state.snapshot_data is not None and len(state.entries) <= 20 + 5 + 30
    # 300 commands of ~70 characters, yet the namespace holds about one interval's worth.
    assert max(sizes[3:]) < 8000 < 300 * 70
    again = SnapshottingNode("a", members=["a"], storage=LocalStorage(NS, store))
    again.start()
    await asyncio.wait_for(again.propose({"k": "after", "v": 1}), 5)
    assert again.kv == {**expected, "after": 1}
    await again.close()
