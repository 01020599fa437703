"""Tabs and a CPython member connected to two relays that share one Redis form one cluster
(issue 13, point 6). Two tabs, each on its own relay, and one ``webraft-node`` process; the
relays and Redis are this module's own, so the session's relay is not involved."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from browser_support import (
    ROOT,
    SLOTS,
    Relay,
    new_context,
    open_tab,
    summary,
    unique_room,
    wait_applied,
    wait_for,
)
from redis_support import RedisServer


def start_member(relay: Relay, room: str, data: Path) -> tuple[subprocess.Popen[str], str]:
    """``webraft-node`` as the third slot of the room, on ``relay``; returns its control URL."""
    ws = relay.url.replace("http://", "ws://") + "/ws"
    proc = subprocess.Popen(
        [sys.executable, "-m", "webraft.member", "--relay", ws, "--room", room, "--data",
         str(data), "--address", SLOTS[2], "--members", ",".join(SLOTS)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "webraft node n3 control on http://..."
    if "control on" not in line:
        proc.kill()
        raise AssertionError((line, proc.communicate(timeout=30)[1]))
    return proc, line.rsplit(" ", 1)[1].strip()


def test_tabs_and_a_cpython_member_on_two_relays_form_one_cluster(
        browser: Any, start_relay: Callable[..., Relay], tmp_path: Path) -> None:
    from webraft.member.control import key_path, request

    redis = RedisServer(tmp_path)
    redis.start()
    contexts: list[Any] = []
    proc = None
    relays: list[Relay] = []
    try:
        relays += [start_relay("--redis", redis.url) for _ in range(2)]
        room = unique_room("redis")
        # The member first, so it holds its slot before the tabs pick theirs.
        proc, control = start_member(relays[1], room, tmp_path / "n3")
        contexts = [new_context(browser) for _ in relays]
        tabs = [open_tab(ctx, relay.url, room, name=f"{room}#{i}", members=SLOTS, wait=False)
                for i, (ctx, relay) in enumerate(zip(contexts, relays, strict=True))]
        for tab in tabs:
            tab.wait_booted()
        assert sorted(t.address for t in tabs) == list(SLOTS[:2])

        def member_status() -> dict[str, Any]:
            status, body = request(control, "GET", "/status", timeout=10)
            assert status == 200
            return body

        def one_leader() -> tuple[str, int] | None:
            status = member_status()
            views = {(status["leader"], status["term"])}
            views |= {(s["leader"], s["term"]) for s in (t.status() for t in tabs)}
            view = views.pop()
            return view if not views and view[0] in SLOTS else None

        wait_for(one_leader, 60, "the tabs and the member agree on one leader",
                 describe=lambda: summary(tabs))
        index = tabs[0].propose({"op": "put", "key": "from-tab", "value": 1})
        wait_applied(tabs, index)

        def member_has(key: str) -> bool:
            status, body = request(control, "GET", "/kv", timeout=10)
            return status == 200 and key in body["data"]

        wait_for(lambda: member_has("from-tab"), 30, "the member applied the tab's write")

        def put() -> bool:
            status, _ = request(control, "PUT", key_path("from-python"), "hi", timeout=10)
            return status == 200

        wait_for(put, 30, "a put through the CPython member")
        wait_for(lambda: all(t.kv().get("from-python") == "hi" for t in tabs), 30,
                 "both tabs applied the member's write")
        # Each relay routed messages, and some of them crossed Redis both ways.
        for relay in relays:
            stats = relay.stats()
            assert stats["redis"]["up"] and stats["redis"]["published"] > 0, stats
            assert stats["redis"]["received"] > 0, stats
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        for ctx in contexts:
            ctx.close()
        for relay in relays:
            relay.stop()
        redis.stop()
