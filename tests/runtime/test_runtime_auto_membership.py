"""Automatic membership: presence (join/leave) drives the configuration, tabs come and go."""

from __future__ import annotations

import asyncio
from typing import Any

from cluster import Cluster, FastRaft
from support import stable_leader, until

GRACE = 0.4
NAMES = ["a", "b", "c", "d", "e"]


class Room:
    """Nodes that appear and disappear like tabs in a relay room: each one present sees
    ``join`` for every other one present, and ``leave`` when one goes."""

    def __init__(self, make_cluster: Any) -> None:
        self.c: Cluster = make_cluster(names=NAMES, auto_membership=True, member_grace=GRACE)

    @property
    def present(self) -> dict[str, FastRaft]:
        return self.c.net.nodes  # type: ignore[return-value]

    def open(self, name: str, *, found: bool = False) -> FastRaft:
        node = FastRaft(name, self.c.net, members=[name] if found else [],
                        storage=self.c.storages[name], timing=self.c.timing)
        for other in self.present.values():
            other.join(name)
            node.join(other.address)
        self.c.nodes[name] = node
        self.present[name] = node
        self.c.closed.discard(name)
        node.start()
        return node

    async def close(self, name: str) -> None:
        node = self.present.pop(name)
        for other in self.present.values():
            other.leave(name)
        self.c.closed.add(name)
        self.c.retired.append(node)
        await node.close()

    async def applied(self, index: int) -> None:
        await until(lambda: all(n.last_applied >= index for n in self.present.values()), 5,
                    f"every node present applied {index}")

    async def leader(self) -> FastRaft:
        return await until(lambda: stable_leader(self.present.values()), 5, "a leader")

    async def config(self, voters: set[str], learners: set[str] = frozenset()) -> FastRaft:
        def check() -> FastRaft | None:
            lead = stable_leader(self.present.values())
            if lead is None or lead.core.config_index > lead.commit_index:
                return None
            ok = set(lead.members) == voters and set(lead.learners) == set(learners)
            return lead if ok else None

        return await until(check, 10, f"voters {sorted(voters)}, learners {sorted(learners)}")


async def test_tabs_opened_one_by_one_become_voters_up_to_five(make_cluster: Any) -> None:
    room = Room(make_cluster)
    room.open("a", found=True)
    await room.config({"a"})
    room.open("b")
    # Two voters tolerate no more failures than one: "b" waits as a learner for a third.
    lead = await room.config({"a"}, {"b"})
    await until(lambda: room.present["b"].last_applied == lead.commit_index, 5, "b caught up")
    await asyncio.sleep(5 * GRACE)
    assert set(lead.members) == {"a"}
    room.open("c")
    await room.config({"a", "b", "c"})
    room.open("d")
    await room.config({"a", "b", "c"}, {"d"})
    room.open("e")
    lead = await room.config(set(NAMES))
    await room.applied(await lead.propose("five"))


async def test_closing_two_of_five_keeps_the_cluster_committing(make_cluster: Any) -> None:
    room = Room(make_cluster)
    room.open("a", found=True)
    await room.config({"a"})
    for name in NAMES[1:]:
        room.open(name)
        await until(lambda name=name: name in room.present["a"].core.cluster.members, 10,
                    f"{name} added")  # a member; its log has the newest configuration
    lead = await room.config(set(NAMES))
    await room.close(lead.address)
    gone = next(n for n in room.present if n != lead.address)
    await room.close(gone)
    left = set(NAMES) - {lead.address, gone}
    lead = await room.config(left)  # both removed after the grace period
    await room.applied(await lead.propose("three"))


async def test_a_tab_back_within_the_grace_period_keeps_its_seat(make_cluster: Any) -> None:
    room = Room(make_cluster)
    room.open("a", found=True)
    for name in ("b", "c"):
        room.open(name)
    lead = await room.config({"a", "b", "c"})
    reloaded = next(n for n in room.present if n != lead.address)
    changes = len(lead.named("membership changed"))
    await room.close(reloaded)
    await asyncio.sleep(GRACE / 4)
    room.open(reloaded)  # same storage: the same node
    await asyncio.sleep(2 * GRACE)
    lead = await room.config({"a", "b", "c"})
    assert len(lead.named("membership changed")) == changes


async def test_a_node_outside_any_cluster_never_campaigns(make_cluster: Any) -> None:
    room = Room(make_cluster)
    loner = room.open("b")  # not a founder: waits to be added
    await asyncio.sleep(10 * room.c.timing.heartbeat_timeout)
    assert loner.state == "follower" and loner.term == 0 and loner.leader is None
    room.open("a", found=True)
    await room.config({"a"}, {"b"})
    assert loner.leader == "a"
