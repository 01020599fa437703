"""The acceptance test: three ``python -m webraft.member`` processes and a ``webraft-relay``.

Writes go through every node; the leader is killed with SIGKILL and a new one takes over; the
killed node restarts from its data directory and catches up; then the relay itself restarts on
the same port and the cluster commits again. Every acknowledged write must be on every node.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from member_support import Cluster, Member, Relay, join_three, leader_of, poll
from test_direct_tls import Certs, make_certs


class RelayCluster(Cluster):
    """Members of one room on a relay process of their own."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.relay = Relay(self.logs)

    def start(self, address: str, members: str | None = "a,b,c",
              extra: tuple[str, ...] = ("--snapshot-entries", "5"),
              links: tuple[str, ...] = ()) -> Member:
        member = Member(address, self.relay.ws_url, self.tmp / f"node-{address}", self.logs,
                        members, list(extra), links=list(links))
        self.members[address] = member
        return member

    def stop(self) -> dict[str, int]:
        codes = super().stop()
        self.relay.proc.signal(signal.SIGTERM)
        assert self.relay.proc.wait() == 0
        return codes

    def kill_all(self) -> None:
        super().kill_all()
        self.relay.proc.kill()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RelayCluster]:
    with RelayCluster(tmp_path) as c:
        yield c


def test_three_members_survive_a_killed_leader_and_a_relay_restart(cluster: RelayCluster):
    for address in "abc":
        cluster.start(address)
    members = cluster.members
    leader = poll(lambda: leader_of(list(members.values())), what="a leader")
    for i, address in enumerate("abcabc"):  # through the leader and both followers
        cluster.write(members[address], f"k{i}", {"n": i, "via": address})
    cluster.converge()

    # SIGKILL the leader: no goodbye to the relay, no chance to flush anything.
    leader.proc.kill()
    survivors = [m for m in members.values() if m is not leader]
    new_leader = poll(lambda: leader_of(survivors), what="a new leader among the survivors")
    assert new_leader is not leader
    for i, member in enumerate(survivors * 2, start=6):
        cluster.write(member, f"k{i}", i)

    # Restart the killed node from its data directory: it must come back with its log.
    restarted = cluster.start(leader.address)
    state = cluster.converge()
    assert restarted.status()["commit_index"] == state["commit_index"]
    # Every member compacted its log (a snapshot every 5 entries) along the way.
    assert all(m.status()["snapshot_index"] > 0 for m in members.values())
    cluster.write(restarted, "after-restart", True)
    cluster.converge()

    # Restart the relay on the same port: every node reconnects and the cluster commits.
    port = cluster.relay.port
    cluster.relay.proc.signal(signal.SIGTERM)
    assert cluster.relay.proc.wait() == 0
    cluster.relay = Relay(cluster.logs, port=port)
    poll(lambda: all(m.status()["connected"] and len(m.status()["peers"]) == 2
                     for m in members.values()), what="every node back in the room")
    for member in members.values():
        cluster.write(member, f"after-relay-{member.address}", member.address)
    state = cluster.converge()
    assert len(state["data"]) == len(cluster.acked)
    cluster.stop()


def test_members_join_a_room_with_automatic_membership(cluster: RelayCluster):
    a, b, c = join_three(cluster, ("--auto-membership", "--grace", "1",
                                   "--snapshot-entries", "5"))
    # c leaves for good: after the grace period it is removed; a and b commit on as two voters.
    c.proc.signal(signal.SIGTERM)
    assert c.proc.wait() == 0
    del cluster.members["c"]
    leader = poll(lambda: leader_of([a, b]), what="a leader of a and b")
    poll(lambda: sorted(leader.status()["members"]) == ["a", "b"], what="c removed")
    cluster.write(b, "after", 2)
    cluster.converge()
    cluster.stop()


def test_relay_members_that_listen_link_to_each_other_and_the_rest_still_works(
        cluster: RelayCluster):
    """a and b also accept direct links (--listen): they link to each other once the relay
    carried their offers; c does not listen and talks to both through the relay."""
    a = cluster.start("a", links=("--listen", "127.0.0.1:0"))
    b = cluster.start("b", links=("--listen", "127.0.0.1:0"))
    c = cluster.start("c")
    poll(lambda: a.status()["links"] == {"b": {"up": True}, "c": {"up": False}},
         what="a linked to b, not to c")
    poll(lambda: b.status()["links"]["a"] == {"up": True}, what="b linked to a")
    assert a.status()["listen"] == f"127.0.0.1:{a.link_port}"
    assert "links" not in c.status()
    for via, key in ((c, "from-c"), (a, "from-a"), (b, "from-b")):
        cluster.write(via, key, {"via": via.address})
    cluster.converge()
    assert a.status()["link_error"] is None
    cluster.stop()


def test_relay_members_link_to_each_other_over_mutual_tls(cluster: RelayCluster,
                                                         tmp_path: Path):
    """--tls-* with --relay and --listen: the offered links run over TLS; a member whose
    certificate another CA signed cannot link, and the relay carries its messages."""
    ours, theirs = make_certs(tmp_path / "ours"), make_certs(tmp_path / "theirs", "other")

    def tls(certs: Certs) -> tuple[str, ...]:
        return ("--listen", "127.0.0.1:0", "--tls-cert", str(certs.cert), "--tls-key",
                str(certs.key), "--tls-ca", str(certs.ca))
    a, b, c = (cluster.start("a", links=tls(ours)), cluster.start("b", links=tls(ours)),
               cluster.start("c", links=tls(theirs)))
    poll(lambda: a.status()["links"] == {"b": {"up": True}, "c": {"up": False}},
         what="a linked to b over TLS, not to c")
    poll(lambda: str(c.status()["link_error"]).startswith("tls"), what="c's links refused")
    for via, key in ((c, "from-c"), (a, "from-a"), (b, "from-b")):
        cluster.write(via, key, {"via": via.address})
    cluster.converge()
    assert b.status()["links"] == {"a": {"up": True}, "c": {"up": False}}
    assert str(a.status()["link_error"]).startswith("tls")  # a dialed c, and refused it
    cluster.stop()
