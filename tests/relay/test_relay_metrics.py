"""``/metrics`` in Prometheus text format, ``/stats`` behind a token with a secret, JSON logs."""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import TYPE_CHECKING

import pytest

from webraft_relay.__main__ import JsonFormatter, main
from webraft_relay.metrics import close_label
from webraft_relay.protocol import room_token, stats_token

if TYPE_CHECKING:
    from conftest import Harness, ManualClock

    from webraft_relay import Relay

SECRET = "s3cret"
SAMPLE = re.compile(r'([a-z_]+)(?:\{([a-z_]+)="([^"]*)"\})? (-?[0-9.e+]+)')


def parse(text: str) -> dict[str, float]:
    """Every sample as ``name`` or ``name{label=value}`` -> value; checks each line's syntax
    and that each series is declared (HELP and TYPE) before its samples."""
    samples: dict[str, float] = {}
    declared: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            assert kind in ("counter", "gauge")
            declared.add(name)
            continue
        if line.startswith("# HELP "):
            continue
        match = SAMPLE.fullmatch(line)
        assert match, line
        name, label, value, number = match.groups()
        assert name in declared, name
        samples[name if label is None else f"{name}{{{label}={value}}}"] = float(number)
    return samples


async def metrics(harness: Harness, relay: Relay, **headers: str) -> dict[str, float]:
    status, got, body = await harness.http(relay, "/metrics", headers=headers)
    assert status == 200
    assert got["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(body.decode())


async def test_metrics_count_traffic_drops_refusals_and_closes(harness: Harness):
    relay = await harness.start(max_room_size=2)
    before = await metrics(harness, relay)
    assert before["webraft_relay_connections"] == 0
    assert before["webraft_relay_messages_routed_total"] == 0
    assert before["process_resident_memory_bytes"] > 0
    a, b = await harness.members(relay, "demo", "a", "b")
    await a.send(type="send", to="b", data="x")
    await b.expect("msg")
    await a.send(type="send", to="nobody", data="y")
    await a.expect("error")
    full = await harness.connect(relay)
    await full.hello("demo", "c")
    assert (await full.closed())[0] == 4013
    m = await metrics(harness, relay)
    assert m["webraft_relay_connections"] == 2
    assert m["webraft_relay_rooms"] == 1
    assert m["webraft_relay_messages_routed_total"] == 1
    assert m["webraft_relay_bytes_routed_total"] == len('{"type":"msg","from":"a","data":"x"}')
    assert m["webraft_relay_messages_dropped_total{reason=unknown_peer}"] == 1
    assert m["webraft_relay_connections_refused_total{reason=room_full}"] == 1
    assert m["webraft_relay_connections_closed_total{code=4013}"] == 1
    assert m["webraft_relay_buffered_bytes"] >= 0
    assert m["webraft_relay_rate_limited_clients_total"] == 0


async def test_rate_limited_clients_are_counted_once_each(harness: Harness, clock: ManualClock):
    relay = await harness.start(clock=clock, rate=1, burst=1, max_batch=1)
    a, b = await harness.members(relay, "demo", "a", "b")
    for i in range(5):
        await a.send(type="send", to="b", data=i)
    await a.send(type="ping")  # after every send: marks the end of a's frames
    await a.expect("error", code="rate_limited")
    await a.expect("pong")
    await b.expect("msg", data=0)
    m = await metrics(harness, relay)
    assert m["webraft_relay_rate_limited_clients_total"] == 1
    assert m["webraft_relay_messages_dropped_total{reason=rate_limited}"] == 4


def test_close_codes_are_few_labels():
    assert close_label(1000) == "1000"
    assert close_label(4013) == "4013"
    assert close_label(None) == "none"
    assert {close_label(code) for code in range(3000, 5000)} <= {
        "other", "4000", "4001", "4002", "4008", "4009", "4013"
    }


@pytest.mark.parametrize("path", ["/stats", "/metrics"])
async def test_counters_are_private_with_a_secret(harness: Harness, path: str):
    relay = await harness.start(secret=SECRET)
    status, headers, _ = await harness.http(relay, path)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")
    for wrong in (room_token(SECRET, "demo"), stats_token("other"), ""):
        status, _, _ = await harness.http(relay, path, headers={"Authorization": f"Bearer {wrong}"})
        assert status == 401
    token = stats_token(SECRET)
    status, _, body = await harness.http(relay, path, headers={"Authorization": f"Bearer {token}"})
    assert status == 200 and body
    status, _, _ = await harness.http(relay, "/healthz")  # health stays public
    assert status == 200


def test_token_command_prints_the_stats_token(capsys: pytest.CaptureFixture[str]):
    assert main(["token", "--secret", SECRET, "--stats"]) == 0
    assert capsys.readouterr().out.strip() == stats_token(SECRET)
    assert stats_token(SECRET) != room_token(SECRET, "stats")


def test_json_log_lines():
    try:
        raise ValueError("boom")
    except ValueError:
        info = sys.exc_info()
    record = logging.LogRecord("relay", logging.WARNING, "", 0, "cap %d", (5,), info)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "WARNING" and entry["logger"] == "relay"
    assert entry["message"] == "cap 5"
    assert "ValueError: boom" in entry["exc"]
