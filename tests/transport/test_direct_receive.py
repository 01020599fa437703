"""``RaftInterface.got_messages``: the messages of one read (a link's read, a relay frame),
handled at once in one Ready round, as the direct links and relay members deliver them.

A hand-held wire: every ``write`` lands in :attr:`Wire.outbox` and the test (or a pump task)
delivers it, so the order of events is the test's, not the scheduler's. Waits are for
conditions, with hang guards only.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from support import until

import webraft

GUARD = 10.0  # seconds; a hang guard, not a timing expectation


class Wire:
    """Messages written by the nodes, delivered by :meth:`pump` with ``got_messages``."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.outbox: list[tuple[str, str, Any]] = []  # (from, to, payload)
        self.hold: Callable[[str, str, Any], bool] = lambda src, dst, payload: False
        self.held: list[tuple[str, str, Any]] = []

    def deliver(self) -> None:
        out, self.outbox = self.outbox, []
        for src, dst, payload in out:
            if self.hold(src, dst, payload):
                self.held.append((src, dst, payload))
            else:
                self.nodes[dst].got_messages(src, [payload])

    async def pump(self) -> None:
        while True:
            self.deliver()
            await asyncio.sleep(0.001)


class Peer(webraft.NodeInstance):
    raft: Node

    def write(self, payload: dict[str, Any]) -> None:
        self.raft.wire.outbox.append((self.raft.address, self.address, json.loads(
            json.dumps(payload))))


class Node(webraft.RaftInterface):
    def __init__(self, address: str, wire: Wire, *, campaigns: bool,
                 storage: webraft.MemoryStorage | None = None) -> None:
        self.wire = wire
        self.campaigns = campaigns  # before the runtime's __init__ reads the timeouts
        super().__init__(address, members=["l", "f"],
                         storage=storage if storage is not None else webraft.MemoryStorage())
        wire.nodes[address] = self

    def create_instance(self, address: str) -> Peer:
        return Peer(address, self)

    @property
    def heartbeat_frequency(self) -> float:
        return 0.01

    @property
    def heartbeat_timeout(self) -> float:
        # Long for the leader too: CheckQuorum must not depose it while messages are held.
        return 0.3 if self.campaigns else 1000.0

    @property
    def election_timeout(self) -> float:
        return 0.05 if self.campaigns else 1000.0


class SlowStorage(webraft.MemoryStorage):
    """Saves a term or vote only when the test opens :attr:`gate`."""

    def __init__(self) -> None:
        super().__init__()
        self.gate: asyncio.Event | None = None

    def save(self, update: Any) -> Any:
        if update.hard is None or self.gate is None:
            return super().save(update)
        gate = self.gate

        async def later() -> None:
            await gate.wait()
            super(SlowStorage, self).save(update)
        return later()


VOTE = {"type": "vote", "term": 5, "last_index": 0, "last_term": 0}


def sent(wire: Wire, kind: str) -> list[dict[str, Any]]:
    return [p for _, _, p in wire.outbox if p["type"] == kind]


async def started_follower(storage: webraft.MemoryStorage | None = None) -> tuple[Wire, Node]:
    wire = Wire()
    follower = Node("f", wire, campaigns=False, storage=storage)
    follower.join("l")
    follower.start()
    await until(lambda: not follower.driver.driving and not follower.driver.kicked, what="settled")
    return wire, follower


async def test_the_answers_to_messages_leave_before_got_messages_returns():
    """The point of got_messages: one round now, not a loop turn later (got_data's way)."""
    wire, follower = await started_follower()
    try:
        follower.got_data("l", VOTE)
        assert sent(wire, "vote_resp") == []  # got_data: the round waits for the next turn
        await until(lambda: sent(wire, "vote_resp"), what="got_data's answer")
        wire.outbox.clear()
        follower.got_messages("l", [{**VOTE, "term": 6}, {**VOTE, "term": 7}])
        answers = sent(wire, "vote_resp")
        assert [(a["term"], a["granted"]) for a in answers] == [(6, True), (7, True)]
    finally:
        await follower.close()


async def test_got_messages_sends_nothing_before_storage_saved_what_it_answers():
    """A vote is granted only once it is saved, also when the round runs inside
    got_messages and storage answers later; messages arriving meanwhile wait for that round."""
    storage = SlowStorage()
    wire, follower = await started_follower(storage)
    try:
        storage.gate = gate = asyncio.Event()
        follower.got_messages("l", [VOTE])
        assert follower.driver.driving  # the round awaits storage
        follower.got_messages("l", [{**VOTE, "term": 6}])  # arrives meanwhile
        for _ in range(5):
            await asyncio.sleep(0)
        assert sent(wire, "vote_resp") == []
        assert storage.hard is None or storage.hard.term < 5
        gate.set()
        await until(lambda: any(a["term"] == 6 for a in sent(wire, "vote_resp")),
                    what="the answers, once saved")
        assert storage.hard is not None and storage.hard.term == 6 and storage.hard.vote == "l"
        assert all(a["granted"] for a in sent(wire, "vote_resp"))
    finally:
        await follower.close()


async def test_messages_handled_inside_an_apply_handler_do_not_apply_entries_out_of_order():
    """An apply handler that hands the node messages (a synchronous in-process transport
    does that) while the node applies outside a Ready round: the round those messages start
    may commit more entries, which must wait until the current one is applied by every
    handler, not be applied in the middle of it."""
    wire = Wire()
    lead, follower = Node("l", wire, campaigns=True), Node("f", wire, campaigns=False)
    gate = asyncio.Event()
    first: list[int] = []  # what each of the follower's two handlers saw, in order
    second: list[int] = []

    def on_apply(entry: webraft.Entry, index: int, cb: Callable[..., None]) -> Any:
        first.append(index)
        if entry.command == "slow":  # applied by a task: the next ones outside any round
            async def later() -> None:
                await gate.wait()
            return later()
        if entry.command == "reenter":
            held, wire.held = wire.held, []
            wire.hold = lambda src, dst, payload: False
            for src, _, payload in held:
                follower.got_messages(src, [payload])
        cb()
        return None

    follower.listen("apply", on_apply)
    follower.listen("apply", lambda entry, index, cb: (second.append(index), cb()))
    for node in (lead, follower):
        node.join("f" if node is lead else "l")
        node.start()
    pump = asyncio.get_running_loop().create_task(wire.pump())
    try:
        await until(lambda: lead.is_leader and follower.leader == "l", what="l leads")
        slow = await asyncio.wait_for(lead.propose("slow"), GUARD)
        reenter = await asyncio.wait_for(lead.propose("reenter"), GUARD)
        await until(lambda: slow in first, what="the follower applies the slow entry")
        # The follower has "reenter" committed, queued behind "slow". "after" commits with
        # the follower's vote, but whatever tells the follower so is held back.
        after_future = lead.propose("after")
        await until(lambda: follower.core.log.last_index > reenter, what="after appended")
        wire.hold = lambda src, dst, payload: dst == "f"
        after = await asyncio.wait_for(after_future, GUARD)
        await until(lambda: wire.held, what="a message telling the follower of the commit")
        gate.set()  # "slow" done: "reenter" is applied by the task, outside any round
        await until(lambda: follower.last_applied >= after, what="the follower applies all")
        assert first == second == [slow, reenter, after]
        assert follower.last_applied == after
    finally:
        pump.cancel()
        await lead.close()
        await follower.close()
