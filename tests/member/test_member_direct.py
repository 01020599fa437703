"""``webraft-node`` with direct links (``--listen``/``--peer``): no relay process at all.

Argument checks run in process (argparse exits before anything starts); the clusters are real
processes on ports picked free beforehand, since every member must be told the others' ports.
Like the relay cluster test: the leader is killed with SIGKILL, the survivors commit on, the
killed node restarts from its data directory and catches up; every acknowledged write must be
on every node. A member with the wrong token is refused by the others and never joins.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from member_support import (
    GUARD,
    ROOT,
    Cluster,
    Member,
    Relay,
    free_ports,
    join_three,
    leader_of,
    poll,
)
from test_direct_tls import make_certs

from webraft.member.__main__ import main
from webraft.member.control import key_path, request

NAMES = "abc"


# ------------------------------------------------------------------ arguments


def base(tmp: Path, *links: str) -> list[str]:
    return [*links, "--data", str(tmp / "d"), "--address", "a", "--members", "a,b,c"]


BOTH_PEERS = ("--peer", "b=127.0.0.1:7002", "--peer", "c=127.0.0.1:7003")


@pytest.mark.parametrize(("links", "message"), [
    ((), "one of --relay or --listen is required"),
    (("--relay", "ws://127.0.0.1:9/ws", "--room", "r", *BOTH_PEERS),
     "--peer is for --listen without --relay"),
    (("--relay", "ws://127.0.0.1:9/ws", "--room", "r", "--listen", "127.0.0.1:7001",
      *BOTH_PEERS), "--peer is for --listen without --relay"),
    (("--listen", "127.0.0.1:7001", *BOTH_PEERS, "--advertise", "10.0.0.1"),
     "--advertise is for --relay with --listen"),
    (("--relay", "ws://127.0.0.1:9/ws", "--room", "r", "--listen", "0.0.0.0:7001"),
     "needs --advertise HOST"),
    (("--relay", "ws://127.0.0.1:9/ws", "--room", "r", "--listen", "0:0:0:0:0:0:0:0:7001"),
     "needs --advertise HOST"),
    (("--relay", "ws://127.0.0.1:9/ws", "--room", "r", "--listen", "0.0.0.0:7001",
      "--advertise", "10.0.0.1:7001"), "--advertise takes a host"),
    (("--relay", "ws://127.0.0.1:9/ws"), "--relay needs --room"),
    (("--listen", "127.0.0.1", *BOTH_PEERS), "HOST:PORT"),
    (("--listen", "127.0.0.1:7001", "--peer", "b", "--peer", "c=127.0.0.1:7003"),
     "NAME=HOST:PORT"),
    (("--listen", "127.0.0.1:7001", "--peer", "b=127.0.0.1", "--peer", "c=127.0.0.1:7003"),
     "NAME=HOST:PORT"),
    (("--listen", "127.0.0.1:7001", "--peer", "b=127.0.0.1:0", "--peer", "c=127.0.0.1:7003"),
     "NAME=HOST:PORT"),
    (("--listen", "127.0.0.1:7001", "--peer", "b/x=127.0.0.1:7002"), "NAME=HOST:PORT"),
    (("--listen", "127.0.0.1:7001", "--peer", "=127.0.0.1:7002"), "NAME=HOST:PORT"),
    (("--listen", "127.0.0.1:7001", *BOTH_PEERS, "--peer", "b=127.0.0.1:7004"),
     "--peer b given more than once"),
    (("--listen", "127.0.0.1:7001", *BOTH_PEERS, "--peer", "a=127.0.0.1:7001"),
     "--peer a names this node"),
    (("--listen", "127.0.0.1:7001", "--peer", "b=127.0.0.1:7002"),
     "--members c without --peer"),
    (("--relay", "ws://127.0.0.1:9/ws", "--room", "r", "--tls-cert", "a.pem", "--tls-key",
      "a.key"), "are for the links of --listen"),
    (("--listen", "127.0.0.1:7001", *BOTH_PEERS, "--tls-cert", "a.pem"), "TLS needs both"),
    (("--listen", "127.0.0.1:7001", *BOTH_PEERS, "--tls-key", "a.key"), "TLS needs both"),
    (("--listen", "127.0.0.1:7001", *BOTH_PEERS, "--tls-ca", "ca.pem"), "TLS needs both"),
])
def test_bad_link_arguments_exit_2_before_touching_the_disk(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], links: tuple[str, ...],
        message: str):
    with pytest.raises(SystemExit) as exit_info:
        main(base(tmp_path, *links))
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_a_bad_room_exits_2_in_direct_mode_too(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]):
    code = main(base(tmp_path, "--listen", "127.0.0.1:0", *BOTH_PEERS, "--room", "no room"))
    assert code == 2
    assert "--room must be" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_unusable_tls_files_end_the_node_with_status_1(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]):
    missing = str(tmp_path / "missing.pem")
    code = main(base(tmp_path, "--listen", "127.0.0.1:0", *BOTH_PEERS, "--tls-cert", missing,
                     "--tls-key", missing))
    assert code == 1
    assert "cannot use --tls-cert, --tls-key or --tls-ca" in capsys.readouterr().err


def test_a_taken_link_port_ends_the_node_with_status_1_and_needs_no_websockets(
        tmp_path: Path):
    # websockets made unimportable: a direct member runs on the standard library alone.
    code = ("import sys; sys.modules['websockets'] = None\n"
            "from webraft.member.__main__ import main\n"
            "sys.exit(main(sys.argv[1:]))")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-c", code, *base(tmp_path, "--listen", f"127.0.0.1:{port}",
                                               *BOTH_PEERS)],
            cwd=ROOT, capture_output=True, text=True, timeout=GUARD)
    assert result.returncode == 1, result
    assert f"cannot listen for links on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
    assert "control on" not in result.stdout  # no start-up line for a node that never ran


# ------------------------------------------------------------------ clusters


class DirectCluster(Cluster):
    """Members on 127.0.0.1 ports chosen before any starts; each is told every other's."""

    def __init__(self, tmp: Path, names: str = NAMES) -> None:
        super().__init__(tmp)
        self.ports = dict(zip(names, free_ports(len(names)), strict=True))

    def links(self, name: str) -> list[str]:
        flags = ["--listen", f"127.0.0.1:{self.ports[name]}"]
        for other, port in self.ports.items():
            if other != name:
                flags += ["--peer", f"{other}=127.0.0.1:{port}"]
        return flags

    def start(self, name: str, members: str | None = ",".join(NAMES),
              extra: tuple[str, ...] = ("--snapshot-entries", "5"),
              env: dict[str, str] | None = None) -> Member:
        member = Member(name, None, self.tmp / f"node-{name}", self.logs, members, list(extra),
                        links=self.links(name), env=env)
        assert member.link_port == self.ports[name]
        self.members[name] = member
        return member


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[DirectCluster]:
    with DirectCluster(tmp_path) as c:
        yield c


def all_linked(member: Member, peers: list[str]) -> bool:
    status = member.status()
    return status["peers"] == peers and all(status["links"][p]["up"] for p in peers)


def test_three_direct_members_survive_a_killed_leader(cluster: DirectCluster):
    for name in NAMES:
        cluster.start(name)
    members = cluster.members
    for name, member in members.items():
        others = [n for n in NAMES if n != name]
        poll(lambda m=member, o=others: all_linked(m, o), what=f"{name} linked to {others}")
    leader = poll(lambda: leader_of(list(members.values())), what="a leader")
    follower = next(m for m in members.values() if m is not leader)

    # Status tells where the node listens and how its links are.
    status = follower.status()
    assert status["room"] == "webraft" and status["connected"] is True
    assert status["listen"] == f"127.0.0.1:{cluster.ports[follower.address]}"
    assert status["links"] == {n: {"address": f"127.0.0.1:{cluster.ports[n]}", "up": True}
                               for n in NAMES if n != follower.address}
    assert status["link_error"] is None

    # put, get and del through a follower's control URL (forwarded to the leader).
    cluster.write(follower, "greeting", "hello")
    assert follower.get(key_path("greeting")) == {"key": "greeting", "value": "hello"}
    cluster.write(follower, "doomed", 1)
    status_code, answer = request(follower.control, "DELETE", key_path("doomed"), timeout=10)
    assert status_code == 200, answer
    del cluster.acked["doomed"]
    assert request(follower.control, "GET", key_path("doomed"), timeout=5)[0] == 404
    for i, name in enumerate("abcabc"):
        cluster.write(members[name], f"k{i}", {"n": i, "via": name})
    before = cluster.converge()
    assert "doomed" not in before["data"]

    # SIGKILL the leader: its links drop without a word; the survivors elect and commit.
    leader.proc.kill()
    survivors = [m for m in members.values() if m is not leader]
    new_leader = poll(lambda: leader_of(survivors), what="a new leader among the survivors")
    assert new_leader is not leader
    for survivor in survivors:
        poll(lambda s=survivor: not s.status()["links"][leader.address]["up"],
             what=f"{survivor.address} saw its link to the killed leader drop")
    # Its metrics say so too, and that it saw a second leader.
    lines = survivors[0].metrics()
    other = survivors[1].address
    assert f'webraft_link_up{{peer="{leader.address}"}} 0' in lines
    assert f'webraft_link_up{{peer="{other}"}} 1' in lines
    changes = next(line for line in lines
                   if line.startswith("webraft_server_leader_changes_seen_total "))
    assert int(changes.split()[1]) >= 2, "the first leader, then its successor"
    for i, member in enumerate(survivors * 2, start=6):
        cluster.write(member, f"k{i}", i)
    cluster.converge(survivors)

    # Restart it from its data directory, on the same link port: it catches up.
    restarted = cluster.start(leader.address)
    state = cluster.converge()
    assert restarted.kv() == state["data"]
    assert before["data"].items() <= state["data"].items()  # what it had is still there
    assert all(m.status()["snapshot_index"] > 0 for m in members.values())
    cluster.write(restarted, "after-restart", True)
    linearizable = f"{key_path('after-restart')}?linearizable=1"
    assert restarted.get(linearizable)["value"] is True
    state = cluster.converge()
    assert len(state["data"]) == len(cluster.acked)
    cluster.stop()


def test_a_member_with_the_wrong_token_never_joins(cluster: DirectCluster):
    # The token comes from the environment, as with a relay; c's --token overrides it.
    env = {"WEBRAFT_RELAY_TOKEN": "the-right-secret"}
    a = cluster.start("a", env=env)
    b = cluster.start("b", env=env)
    c = cluster.start("c", extra=("--token", "a-wrong-secret"), env=env)
    for member in (a, b, c):
        poll(lambda m=member: "unauthorized" in (m.status()["link_error"] or ""),
             what=f"{member.address} saw a link refused for its token")
    poll(lambda: "unauthorized" in c.proc.stderr(), what="c logged a refusal")

    leader = poll(lambda: leader_of([a, b]), what="a leader of a and b")
    for i, member in enumerate((a, b, a, b)):
        cluster.write(member, f"k{i}", i)
    cluster.converge([a, b])
    for member in (a, b):
        status = member.status()
        assert status["peers"] == [n for n in "ab" if n != member.address]
        assert status["links"]["c"]["up"] is False
    status = c.status()
    assert status["peers"] == [] and status["state"] != "leader"
    assert not any(link["up"] for link in status["links"].values())
    assert status["commit_index"] == 0 and c.kv() == {}
    assert leader.status()["members"] == ["a", "b", "c"]
    cluster.stop()


def test_direct_members_link_over_mutual_tls(cluster: DirectCluster, tmp_path: Path):
    certs = make_certs(tmp_path / "certs")
    tls = ("--tls-cert", str(certs.cert), "--tls-key", str(certs.key), "--tls-ca",
           str(certs.ca))
    members = [cluster.start(name, extra=tls) for name in NAMES]
    for member in members:
        others = [n for n in NAMES if n != member.address]
        poll(partial(all_linked, member, others), what=f"{member.address} linked")
    cluster.write(members[1], "over", "tls")
    cluster.converge()
    assert all(m.status()["link_error"] is None for m in members)
    cluster.stop()


def test_a_node_joins_direct_members_with_automatic_membership(cluster: DirectCluster):
    # Every node has a --peer for every other, joiners included: the leader adds a joiner
    # once its link to it is up.
    join_three(cluster, ("--auto-membership", "--snapshot-entries", "5"))
    cluster.stop()


def test_a_relay_member_ended_by_the_relay_before_it_listens_exits_1_cleanly(
        tmp_path: Path):
    """The relay's refusal (here 4008: the address is taken) closes the links; if that comes
    before they listen, the node still ends with status 1 and the relay's reason."""
    relay = Relay(tmp_path)
    try:
        holder = Member("a", relay.ws_url, tmp_path / "a1", tmp_path)
        poll(lambda: holder.status()["connected"], what="the first a joined")
        code = ("import asyncio, sys\n"
                "from webraft.transport import tcp\n"
                "listen = tcp.DirectLinks.listen\n"
                "async def late(self, host, port):  # after the relay's refusal\n"
                "    while not self._closed:\n"
                "        await asyncio.sleep(0.01)\n"
                "    return await listen(self, host, port)\n"
                "tcp.DirectLinks.listen = late\n"
                "from webraft.member.__main__ import main\n"
                "sys.exit(main(sys.argv[1:]))")
        result = subprocess.run(
            [sys.executable, "-c", code, "--relay", relay.ws_url, "--room", "demo",
             "--listen", "127.0.0.1:0", "--data", str(tmp_path / "a2"), "--address", "a",
             "--members", "a,b,c"], cwd=ROOT, capture_output=True, text=True, timeout=GUARD)
        assert result.returncode == 1, result
        assert "4008" in result.stderr and "Traceback" not in result.stderr, result.stderr
        holder.proc.signal(signal.SIGTERM)
        assert holder.proc.wait() == 0
    finally:
        relay.proc.kill()
