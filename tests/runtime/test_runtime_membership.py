"""add_member / remove_member through the asyncio runtime."""

from __future__ import annotations

import pytest
from cluster import Cluster, FastRaft
from support import stable_leader, until

import webraft


def newcomer(cluster: Cluster, name: str) -> FastRaft:
    """A fresh node that bootstraps with the cluster's initial members (so it is not one)."""
    node = FastRaft(name, cluster.net, members=cluster.names, storage=webraft.MemoryStorage(),
                    timing=cluster.timing)
    cluster.net.nodes[name] = node
    for peer in cluster.live():
        peer.join(name)
        node.join(peer.address)
    cluster.retired.append(node)  # closed at teardown
    node.start()
    return node


async def test_a_new_member_learns_then_votes_and_the_old_leader_can_leave(
        cluster: Cluster) -> None:
    lead = await cluster.leader()
    await lead.propose("before")
    d = newcomer(cluster, "d")
    changes: list[tuple[list[str], list[str]]] = []
    lead.listen("membership changed", lambda voters, learners: changes.append((voters, learners)))
    index = await lead.add_member("d")
    assert lead.last_applied >= index
    assert changes[0] == (["a", "b", "c"], ["d"])
    # Caught up, d is promoted by the leader, and it has the whole log.
    # Promoted, and the promotion committed: a second change is refused until then.
    await until(lambda: lead.members == ("a", "b", "c", "d")
                and lead.core.config_index <= lead.commit_index, what="d promoted")
    await until(lambda: d.last_applied == lead.commit_index and d.members == lead.members)
    assert [c for _, c in d.applied] == [c for _, c in lead.applied]
    # The leader removes itself; the rest elect a new leader and keep committing.
    await lead.remove_member(lead.address)
    rest = [n for n in [*cluster.live(), d] if n is not lead]
    new = await until(lambda: stable_leader(rest), what="a leader among the rest")
    assert lead.address not in new.members
    index = await new.propose("after")
    await until(lambda: all(n.last_applied >= index for n in rest))
    assert not lead.is_leader


async def test_membership_changes_are_refused_clearly(cluster: Cluster) -> None:
    lead = await cluster.leader()
    follower = next(n for n in cluster.live() if n is not lead)
    with pytest.raises(webraft.NotLeaderError):
        await follower.add_member("x")
    with pytest.raises(webraft.MembershipChangeError, match="already a member"):
        await lead.add_member("b")
    with pytest.raises(webraft.MembershipChangeError, match="not a member"):
        await lead.remove_member("zz")
    first = lead.add_member("x")  # x never answers: the change commits without it anyway
    second = lead.add_member("y")
    with pytest.raises(webraft.MembershipChangeError, match="in progress"):
        await second
    await first
    assert lead.learners == ("x",)
