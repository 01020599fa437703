"""The control server and its command-line client, in process, on a one-node cluster."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

import webraft
from webraft.member.__main__ import main
from webraft.member.control import ControlServer, key_path, request
from webraft.member.kv import KVStore
from webraft.transport import RelayRaft
from webraft_relay import Relay, RelayConfig

GUARD = 10.0


#: Small timeouts, and a proposal timeout short enough for the tests of timeouts.
QUICK = webraft.NodeConfig(heartbeat_frequency=0.02, heartbeat_timeout=0.1,
                           election_timeout=(0.1, 0.1), proposal_timeout=0.3)


@dataclass
class Setup:
    relay: Relay
    node: RelayRaft
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
    node = RelayRaft("a", url=relay.ws_url, room="demo", members=members, config=QUICK,
                     storage=webraft.MemoryStorage())
    kv = KVStore()
    kv.attach(node)
    server = ControlServer(node, kv, transport=node.relay)
    await server.start()
    node.start()
    return Setup(relay, node, kv, server)


@pytest.fixture
async def solo() -> AsyncIterator[Setup]:
    """Node a alone in a one-member cluster: it leads at once."""
    s = await make(["a"])
    async with asyncio.timeout(GUARD):
        while not (s.node.is_leader and s.node.connected):
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


async def test_client_reports_an_unreachable_node(capsys: pytest.CaptureFixture[str]):
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    code, _, err = await cli(capsys, "status", "--control", f"http://127.0.0.1:{port}")
    assert code == 1 and "cannot reach" in err
