"""The member's metrics: the histogram and the timed storage alone, then ``GET /metrics`` of
in-process members, parsed as Prometheus text."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest
from member_support import serve

import webraft
from webraft.core.state import StorageUpdate
from webraft.member.control import ControlServer, request
from webraft.member.kv import KVStore
from webraft.member.metrics import Histogram, Metrics, TimedStorage
from webraft.prometheus import CONTENT_TYPE, family
from webraft_relay import Relay, RelayConfig

GUARD = 10.0
QUICK = webraft.NodeConfig(heartbeat_frequency=0.02, heartbeat_timeout=0.1,
                           election_timeout=(0.1, 0.2), proposal_timeout=0.3)
SAMPLE = re.compile(r'^([a-z_]+)(\{[^}]*\})? (\S+)$')


def parse(text: str) -> dict[str, float]:
    """``{"name{labels}": value}`` of every sample; checks that each family has its HELP
    and TYPE before its samples."""
    samples: dict[str, float] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("gauge", "counter", "histogram"), line
            typed.add(name)
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample: {line!r}"
        name = match[1]
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in typed or family in typed, f"{name} has no TYPE line"
        samples[name + (match[2] or "")] = float(match[3])
    return samples


def test_a_histogram_counts_into_cumulative_buckets():
    hist = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 7.0):
        hist.observe(value)
    got = parse("\n".join(family("h", "histogram", "A test histogram.", hist.samples())))
    assert got == {'h_bucket{le="0.1"}': 2, 'h_bucket{le="1.0"}': 3, 'h_bucket{le="+Inf"}': 4,
                   "h_sum": pytest.approx(7.65), "h_count": 4}


class Later:
    """A storage whose saves are durable when the test says so."""

    def __init__(self) -> None:
        self.inner = webraft.MemoryStorage()
        self.pending: list[asyncio.Future[None]] = []

    def load(self) -> Any:
        return self.inner.load()

    def save(self, update: StorageUpdate) -> asyncio.Future[None]:
        self.inner.save(update)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append(done)
        return done


async def test_timed_storage_times_saves_until_they_are_durable():
    ticks = iter([1.0, 3.0, 10.0, 10.5])
    hist = Histogram((1.0, 5.0))
    update = StorageUpdate(entries=())
    sync = TimedStorage(webraft.MemoryStorage(), hist, clock=lambda: next(ticks))
    assert sync.save(update) is None
    assert (hist.count, hist.sum) == (1, 2.0)
    later = Later()
    timed = TimedStorage(later, hist, clock=lambda: next(ticks))
    pending = timed.save(update)
    assert pending is later.pending[0], "the storage's own future, not a wrapper"
    assert hist.count == 1, "not durable yet: not timed yet"
    later.pending[0].set_result(None)
    await asyncio.sleep(0)
    assert (hist.count, hist.sum) == (2, 2.5)
    assert timed.load() == later.inner.load()


@dataclasses.dataclass
class Member:
    node: webraft.RaftInterface
    kv: KVStore
    metrics: Metrics
    server: ControlServer

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return await asyncio.to_thread(request, self.server.url, method, path, body, GUARD)

    async def scrape(self) -> dict[str, float]:
        def get() -> tuple[str, str]:
            with urllib.request.urlopen(self.server.url + "/metrics", timeout=GUARD) as resp:
                return resp.headers["Content-Type"], resp.read().decode()
        kind, text = await asyncio.to_thread(get)
        assert kind == CONTENT_TYPE
        return parse(text)


async def member(relay: Relay, name: str, members: list[str], storage: Any = None,
                 config: webraft.NodeConfig = QUICK) -> Member:
    metrics = Metrics()
    node, kv, server = await serve(relay.ws_url, name, members, config, storage, metrics)
    return Member(node, kv, metrics, server)


@pytest.fixture
async def relay() -> AsyncIterator[Relay]:
    r = Relay(RelayConfig(port=0, static_dir=None, pyodide_dir=None, dist_dir=None))
    await r.start()
    yield r
    await r.stop()


async def until(predicate: Any) -> None:
    async with asyncio.timeout(GUARD):
        while not predicate():
            await asyncio.sleep(0.01)


async def close(*members: Member) -> None:
    for m in members:
        await m.server.close()
        await m.node.close()


async def test_a_leader_s_metrics(relay: Relay):
    config = dataclasses.replace(QUICK, snapshot_entries=3, snapshot_tail=1)
    solo = await member(relay, "a", ["a"], config=config)
    try:
        await until(lambda: solo.node.is_leader)
        for i in range(4):
            assert (await solo.call("PUT", f"/kv/k{i}", i))[0] == 200
        await until(lambda: solo.kv.snapshots_taken >= 1)
        got = await solo.scrape()
        assert got["webraft_server_is_leader"] == 1 and got["webraft_server_has_leader"] == 1
        assert got["webraft_server_leader_changes_seen_total"] == 1
        assert got["webraft_server_term"] == solo.node.term
        assert got["webraft_server_applied_index"] == solo.node.last_applied
        assert got["webraft_server_commit_index"] == solo.node.commit_index
        assert got["webraft_server_proposals_committed_total"] == 4
        assert got['webraft_server_proposal_duration_seconds_bucket{le="+Inf"}'] == 4
        assert got["webraft_server_proposal_duration_seconds_count"] == 4
        assert got["webraft_disk_save_duration_seconds_count"] >= 4
        assert got["webraft_snapshot_taken_total"] == solo.kv.snapshots_taken >= 1
        assert got["webraft_snapshot_installed_total"] == 0
        assert got["webraft_snapshot_sent_total"] == 0
        assert got["webraft_transport_connected"] == 1
        assert not any("failed_total{" in name for name in got)
    finally:
        await close(solo)


async def test_failed_proposals_are_counted_by_error(relay: Relay):
    lonely = await member(relay, "a", ["a", "b", "c"])  # its peers never come
    try:
        assert (await lonely.call("PUT", "/kv/x", 1))[0] == 503
        assert (await lonely.call("DELETE", "/kv/x"))[0] == 503
        got = await lonely.scrape()
        assert got['webraft_server_proposals_failed_total{error="NoLeaderError"}'] == 2
        assert got["webraft_server_proposals_committed_total"] == 0
        assert got["webraft_server_proposal_duration_seconds_count"] == 2
        assert got["webraft_server_has_leader"] == 0 and got["webraft_server_is_leader"] == 0
        assert got["webraft_server_leader_changes_seen_total"] == 0
    finally:
        await close(lonely)


async def test_a_follower_sees_leaders_and_counts_a_snapshot_it_installs(relay: Relay):
    config = dataclasses.replace(QUICK, snapshot_entries=2, snapshot_tail=0)
    storages = {n: webraft.MemoryStorage() for n in "abc"}
    members = {n: await member(relay, n, list("abc"), storages[n], config) for n in "abc"}
    try:
        await until(lambda: any(m.node.is_leader for m in members.values())
                    and all(m.node.leader for m in members.values()))
        lead = next(m for m in members.values() if m.node.is_leader)
        behind = next(n for n, m in members.items() if m is not lead)
        await close(members.pop(behind))
        for i in range(6):  # the leader compacts past what the closed member has
            assert (await lead.call("PUT", f"/kv/k{i}", i))[0] == 200
        back = members[behind] = await member(relay, behind, list("abc"), storages[behind],
                                              config)
        await until(lambda: back.node.last_applied >= lead.node.last_applied)
        got = await back.scrape()
        assert got["webraft_snapshot_installed_total"] == 1
        assert got["webraft_server_is_leader"] == 0 and got["webraft_server_has_leader"] == 1
        assert got["webraft_server_leader_changes_seen_total"] == 1
        assert got["webraft_server_proposals_committed_total"] == 0
        assert back.kv.data == lead.kv.data
        assert (await lead.scrape())["webraft_snapshot_sent_total"] >= 1
        assert got["webraft_snapshot_sent_total"] == 0
    finally:
        await close(*members.values())
