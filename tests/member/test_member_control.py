"""The control server and its command-line client, in process, on one- and three-node
clusters."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from member_support import serve

import webraft
from webraft.member import kv as kv_module
from webraft.member.__main__ import main
from webraft.member.control import ControlServer, key_path, request
from webraft.member.kv import KVStore
from webraft_relay import Relay, RelayConfig

GUARD = 10.0


#: Small timeouts, and a proposal timeout short enough for the tests of timeouts.
QUICK = webraft.NodeConfig(heartbeat_frequency=0.02, heartbeat_timeout=0.1,
                           election_timeout=(0.1, 0.1), proposal_timeout=0.3)


@dataclass
class Setup:
    relay: Relay
    node: webraft.RaftInterface
    kv: KVStore
    server: ControlServer

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return await asyncio.to_thread(request, self.server.url, method, path, body, GUARD)

    async def raw(self, data: bytes) -> tuple[int, Any]:
        """Send raw bytes as a request; the status and JSON of the answer."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.server.port)
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(GUARD):
            answer = await reader.read()
        writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        return int(head.split()[1]), json.loads(body)


async def make(members: list[str]) -> Setup:
    relay = Relay(RelayConfig(port=0, static_dir=None, pyodide_dir=None, dist_dir=None))
    await relay.start()
    return Setup(relay, *await serve(relay.ws_url, "a", members, QUICK))


@pytest.fixture
async def solo() -> AsyncIterator[Setup]:
    """Node a alone in a one-member cluster: it leads at once."""
    s = await make(["a"])
    async with asyncio.timeout(GUARD):
        while not (s.node.is_leader and s.server.transport.connected):
            await asyncio.sleep(0.01)
    yield s
    await s.server.close()
    await s.node.close()
    await s.relay.stop()


@pytest.fixture
async def lonely() -> AsyncIterator[Setup]:
    """Node a of a three-member cluster whose peers never come: no leader, ever."""
    s = await make(["a", "b", "c"])
    yield s
    await s.server.close()
    await s.node.close()
    await s.relay.stop()


async def test_status_reports_the_node(solo: Setup):
    status, answer = await solo.call("GET", "/status")
    assert status == 200
    assert answer == {"address": "a", "room": "demo", "state": "leader", "term": solo.node.term,
                      "leader": "a", "commit_index": solo.node.commit_index,
                      "last_applied": solo.node.last_applied, "members": ["a"],
                      "learners": [], "snapshot_index": 0, "peers": [], "connected": True}


async def test_put_get_delete_round_trip(solo: Setup):
    status, answer = await solo.call("PUT", "/kv/x", {"deep": [1, None, "é"]})
    assert status == 200 and answer["index"] == solo.node.last_applied
    assert await solo.call("GET", "/kv/x") == (200, {"key": "x", "value": {"deep": [1, None,
                                                                                  "é"]}})
    status, deleted = await solo.call("DELETE", "/kv/x")
    assert status == 200 and deleted["index"] > answer["index"]
    status, missing = await solo.call("GET", "/kv/x")
    assert status == 404 and missing["error"] == "KeyNotFound"
    assert missing["may_have_committed"] is False


async def test_any_key_survives_the_url(solo: Setup):
    key = "a/b c?d#e%f&é"
    assert (await solo.call("PUT", key_path(key), 1))[0] == 200
    assert await solo.call("GET", key_path(key)) == (200, {"key": key, "value": 1})
    assert await solo.call("GET", "/kv") == (200, {"data": {key: 1},
                                                   "last_applied": solo.kv.last_applied})


@pytest.mark.parametrize(("method", "path", "body", "status", "error"), [
    ("PUT", "/kv/x", b"not json", 400, "BadRequest"),
    ("PUT", "/kv/x", b"NaN", 400, "BadRequest"),
    ("PUT", "/kv/x", b"", 400, "BadRequest"),
    ("POST", "/status", b"", 405, "BadRequest"),
    ("PUT", "/kv", b"1", 405, "BadRequest"),
    ("POST", "/kv/x", b"1", 405, "BadRequest"),
    ("GET", "/nothing", b"", 404, "NotFound"),
    ("GET", "/kv/", b"", 404, "NotFound"),
    ("GET", "/kv/%ff", b"", 400, "BadRequest"),
    ("PUT", "/kv/" + "k" * 1100, b"1", 400, "InvalidCommand"),
    ("GET", "/kv/x?linearizable=maybe", b"", 400, "BadRequest"),
    ("GET", "/kv?linearizable=%ff", b"", 400, "BadRequest"),
    ("PUT", "/kv/x?request_id=", b"1", 400, "BadRequest"),
    ("DELETE", "/kv/x?request_id=" + "r" * 129, b"", 400, "BadRequest"),
    ("PUT", "/cas/x", b'{"value": 1}', 405, "BadRequest"),
    ("POST", "/cas/x", b"1", 400, "BadRequest"),
    ("POST", "/cas/x", b'{"expected": 1}', 400, "BadRequest"),
    ("POST", "/cas/x", b'{"value": 1, "expect": 1}', 400, "BadRequest"),
    ("POST", "/cas/", b'{"value": 1}', 404, "NotFound"),
])
async def test_bad_requests_get_json_errors(solo: Setup, method: str, path: str, body: bytes,
                                            status: int, error: str):
    got, answer = await solo.raw(f"{method} {path} HTTP/1.1\r\nHost: x\r\n"
                                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    assert (got, answer["error"], answer["may_have_committed"]) == (status, error, False)


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"garbage\r\n\r\n", 400),
    (b"PUT /kv/x HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413),
    (b"PUT /kv/x HTTP/1.1\r\nContent-Length: nope\r\n\r\n", 400),
    (b"PUT /kv/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n1\r\n0\r\n\r\n", 501),
    (b"GET /status HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n", 431),
    (b"GET /status HTTP/1.1\r\nX: " + b"y" * 100_000 + b"\r\n\r\n", 431),
])
async def test_malformed_http_is_refused_and_the_server_carries_on(solo: Setup,
                                                                    request_bytes: bytes,
                                                                    status: int):
    got, answer = await solo.raw(request_bytes)
    assert got == status and answer["error"] == "BadRequest"
    assert (await solo.call("GET", "/status"))[0] == 200


async def test_a_proposal_without_a_leader_fails_and_says_it_did_not_commit(lonely: Setup):
    status, answer = await lonely.call("PUT", "/kv/x", 1)
    assert status == 503
    assert answer["error"] == "NoLeaderError" and answer["may_have_committed"] is False
    assert "x" not in lonely.kv


async def test_linearizable_reads_carry_the_read_index(solo: Setup):
    _, written = await solo.call("PUT", "/kv/x?request_id=w1", 1)
    status, answer = await solo.call("GET", "/kv/x?linearizable=1")
    assert status == 200 and answer["value"] == 1 and answer["index"] >= written["index"]
    status, answer = await solo.call("GET", "/kv?linearizable")
    assert status == 200 and answer["data"] == {"x": 1} and answer["index"] >= written["index"]
    status, missing = await solo.call("GET", "/kv/y?linearizable=true")
    assert status == 404 and missing["error"] == "KeyNotFound" and "index" in missing
    assert await solo.call("GET", "/kv/x?linearizable=0") == (200, {"key": "x", "value": 1})


async def test_a_linearizable_read_without_a_leader_fails_but_a_local_one_answers(
        lonely: Setup):
    status, answer = await lonely.call("GET", "/kv/x?linearizable=1")
    assert status == 503
    assert answer["error"] == "NoLeaderError" and answer["may_have_committed"] is False
    assert (await lonely.call("GET", "/kv/x"))[0] == 404, "a local read needs no leader"


async def test_compare_and_set_and_delete_answer_their_outcomes(solo: Setup):
    status, made = await solo.call("POST", "/cas/x", {"value": "v1"})
    assert status == 200 and made["swapped"] is True and made["index"] > 0
    assert (await solo.call("POST", "/cas/x", {"value": "v2"}))[1]["swapped"] is False
    status, lost = await solo.call("POST", "/cas/x", {"value": "v2", "expected": "v0"})
    assert status == 200 and lost["swapped"] is False and lost["index"] > made["index"]
    status, won = await solo.call("POST", "/cas/x", {"value": None, "expected": "v1"})
    assert status == 200 and won["swapped"] is True
    assert solo.kv.data == {"x": None}
    assert (await solo.call("POST", "/cas/x", {"value": 1, "expected": None}))[1]["swapped"]
    status, deleted = await solo.call("DELETE", "/kv/x")
    assert status == 200 and deleted["deleted"] is True
    assert (await solo.call("DELETE", "/kv/x"))[1]["deleted"] is False
    assert solo.kv.data == {}


async def test_a_request_id_applies_once_and_answers_its_first_outcome(solo: Setup):
    status, first = await solo.call("POST", "/cas/x?request_id=r-1", {"value": 1})
    assert status == 200 and first["swapped"] is True
    await solo.call("PUT", "/kv/x", 2)
    # The retry of an answer we lost: the same outcome, and not applied again.
    assert await solo.call("POST", "/cas/x?request_id=r-1", {"value": 1}) == (200, first)
    assert solo.kv.data == {"x": 2}
    _, put_first = await solo.call("PUT", "/kv/y?request_id=r-2", "once")
    assert await solo.call("PUT", "/kv/y?request_id=r-2", "twice") == (200, put_first)
    assert solo.kv.data["y"] == "once"


async def test_a_write_whose_outcome_was_forgotten_says_it_committed(
        solo: Setup, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(kv_module, "REMEMBERED_REQUESTS", 0)
    status, answer = await solo.call("PUT", "/kv/x", 1)
    assert status == 500 and answer["error"] == "OutcomeForgotten"
    assert answer["may_have_committed"] is True and answer["index"] == solo.kv.last_applied
    assert solo.kv.data == {"x": 1}


@dataclass
class Trio:
    relay: Relay
    nodes: list[webraft.RaftInterface]
    servers: list[ControlServer]

    async def call(self, i: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return await asyncio.to_thread(request, self.servers[i].url, method, path, body, GUARD)


@pytest.fixture
async def trio() -> AsyncIterator[Trio]:
    """Three members, each with a control server, once one of them leads."""
    relay = Relay(RelayConfig(port=0, static_dir=None, pyodide_dir=None, dist_dir=None))
    await relay.start()
    names = ["a", "b", "c"]
    t = Trio(relay, [], [])
    for name in names:
        node, _, server = await serve(relay.ws_url, name, names, QUICK)
        t.nodes.append(node)
        t.servers.append(server)
    async with asyncio.timeout(GUARD):
        while not any(n.is_leader for n in t.nodes) or not all(n.leader for n in t.nodes):
            await asyncio.sleep(0.01)
    yield t
    for server, node in zip(t.servers, t.nodes, strict=True):
        await server.close()
        await node.close()
    await relay.stop()


async def test_a_retry_through_another_member_applies_once(trio: Trio):
    lead = next(i for i, n in enumerate(trio.nodes) if n.is_leader)
    follower = (lead + 1) % 3
    status, first = await trio.call(follower, "POST", "/cas/k?request_id=client-7",
                                    {"value": "mine"})
    assert status == 200 and first["swapped"] is True
    await trio.call(lead, "PUT", "/kv/k", "theirs")
    # The client lost its answer and retries through the leader, then another follower.
    for other in (lead, (lead + 2) % 3):
        assert await trio.call(other, "POST", "/cas/k?request_id=client-7",
                               {"value": "mine"}) == (200, first)
    _, last = await trio.call(lead, "PUT", "/kv/done", 1)
    async with asyncio.timeout(GUARD):
        while not all(s.kv.last_applied >= last["index"] for s in trio.servers):
            await asyncio.sleep(0.01)
    for server in trio.servers:
        assert server.kv.data["k"] == "theirs", "the retries were not applied"
        assert server.kv.outcome("client-7") == first
    # Reads through a follower, linearizable, see the last write at once.
    assert (await trio.call(follower, "GET", "/kv/done?linearizable=1"))[1]["value"] == 1


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_client_commands(solo: Setup, capsys: pytest.CaptureFixture[str]):
    url = solo.server.url
    code, out, _ = await cli(capsys, "put", "x", '{"n": [1, 2]}', "--control", url)
    assert code == 0 and isinstance(json.loads(out)["index"], int)
    code, out, _ = await cli(capsys, "put", "y", "just words", "--control", url)
    assert code == 0
    assert await cli(capsys, "get", "x", "--control", url) == (0, '{"n": [1, 2]}\n', "")
    assert await cli(capsys, "get", "y", "--control", url) == (0, '"just words"\n', "")
    code, out, _ = await cli(capsys, "status", "--control", url.removeprefix("http://"))
    assert code == 0 and json.loads(out)["leader"] == "a"
    assert (await cli(capsys, "del", "x", "--control", url))[0] == 0
    code, out, err = await cli(capsys, "get", "x", "--control", url)
    assert (code, out) == (1, "") and json.loads(err)["error"] == "KeyNotFound"


async def test_client_linearizable_get_cas_delete_and_request_ids(
        solo: Setup, capsys: pytest.CaptureFixture[str]):
    url = solo.server.url
    code, out, _ = await cli(capsys, "cas", "x", "1", "--absent", "--control", url)
    assert code == 0 and json.loads(out)["swapped"] is True
    code, out, _ = await cli(capsys, "cas", "x", "2", "--expect", "5", "--control", url)
    assert code == 1 and json.loads(out)["swapped"] is False, "not swapped: exit 1"
    code, out, _ = await cli(capsys, "cas", "x", "two words", "--expect", "1",
                             "--request-id", "c1", "--control", url)
    assert code == 0 and solo.kv.data == {"x": "two words"}
    assert (await cli(capsys, "cas", "x", "3", "--expect", "1", "--request-id", "c1",
                      "--control", url))[:2] == (0, out), "the retry: the first outcome"
    assert await cli(capsys, "get", "x", "--linearizable", "--control", url) == (
        0, '"two words"\n', "")
    code, out, _ = await cli(capsys, "put", "y", "1", "--request-id", "p1", "--control", url)
    assert code == 0
    assert (await cli(capsys, "put", "y", "2", "--request-id", "p1", "--control", url))[1] == out
    code, out, _ = await cli(capsys, "delete", "y", "--request-id", "d1", "--control", url)
    assert code == 0 and json.loads(out)["deleted"] is True
    assert solo.kv.data == {"x": "two words"}


@pytest.mark.parametrize("argv", [
    ["cas", "x", "1"], ["cas", "x", "1", "--absent", "--expect", "1"],
    ["get", "x", "--request-id", "r"], ["status", "--linearizable"],
])
def test_client_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--control", "http://127.0.0.1:9"])
    assert exc.value.code == 2


@pytest.mark.parametrize("command", ["get", "cas", "delete", "put"])
def test_client_help_tells_the_options(command: str, capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0
    wanted = {"get": ["--linearizable"], "cas": ["--expect", "--absent", "--request-id"],
              "delete": ["--request-id"], "put": ["--request-id"]}[command]
    assert all(flag in out for flag in wanted), out


async def test_client_reports_an_unreachable_node(capsys: pytest.CaptureFixture[str]):
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    code, _, err = await cli(capsys, "status", "--control", f"http://127.0.0.1:{port}")
    assert code == 1 and "cannot reach" in err
