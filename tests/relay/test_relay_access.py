"""Access control: room tokens and browser origins."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from websockets.exceptions import InvalidStatus

from webraft_relay import room_token

if TYPE_CHECKING:
    from conftest import Harness

    from webraft_relay import Relay

SECRET = "correct horse battery staple"


async def test_good_token_is_welcome(harness: Harness):
    relay = await harness.start(secret=SECRET)
    _, welcome = await harness.join(relay, "demo", "a", token=room_token(SECRET, "demo"))
    assert welcome["peers"] == []


@pytest.mark.parametrize(
    "token",
    [
        None,  # missing
        room_token(SECRET, "other-room"),  # valid for another room
        room_token("wrong secret", "demo"),
        "",
        "é" * 64,  # non-ASCII must not crash the constant-time comparison
    ],
)
async def test_bad_or_missing_token_closes_4001(harness: Harness, token: str | None):
    relay = await harness.start(secret=SECRET)
    client = await harness.connect(relay)
    extra = {} if token is None else {"token": token}
    await client.hello("demo", "a", **extra)
    assert await client.closed() == (4001, "unauthorized")
    assert (await harness.stats(relay))["refused"] == {"unauthorized": 1}


async def test_token_is_ignored_without_secret(harness: Harness, relay: Relay):
    await harness.join(relay, "demo", "a", token="anything")


def test_room_token_is_hex_hmac_sha256():
    # Known answer, computed independently: HMAC-SHA256(key="k", msg="demo").
    import hashlib
    import hmac

    expected = hmac.new(b"k", b"demo", hashlib.sha256).hexdigest()
    assert room_token("k", "demo") == expected == room_token(b"k", "demo")
    assert len(expected) == 64


async def test_allowed_origin_connects(harness: Harness):
    relay = await harness.start(allow_origins=("http://127.0.0.1:9999",))
    client = await harness.connect(relay, origin="http://127.0.0.1:9999")
    await client.hello("demo", "a")
    await client.expect("welcome")


async def test_other_origin_is_refused_with_403(harness: Harness):
    relay = await harness.start(allow_origins=("http://127.0.0.1:9999",))
    with pytest.raises(InvalidStatus) as caught:
        await harness.connect(relay, origin="http://evil.example")
    assert caught.value.response.status_code == 403


async def test_no_origin_header_is_allowed(harness: Harness):
    relay = await harness.start(allow_origins=("http://127.0.0.1:9999",))
    client = await harness.connect(relay)  # non-browser clients send no Origin
    await client.hello("demo", "a")
    await client.expect("welcome")


async def test_expiring_tokens(harness: Harness):
    import time

    from webraft_relay import issue_token

    relay = await harness.start(secret=SECRET)
    now = int(time.time())
    fresh = issue_token(SECRET, "demo", expires=now + 60)
    _, welcome = await harness.join(relay, "demo", "a", token=fresh)
    assert welcome["address"] == "a"
    cases = [
        (issue_token(SECRET, "demo", expires=now - 1), (4002, "token expired")),
        (issue_token(SECRET, "other", expires=now + 60), (4001, "unauthorized")),
        (fresh.replace(f"~{now + 60}~", f"~{now + 6000}~"), (4001, "unauthorized")),  # extended
        (issue_token("wrong", "demo", expires=now - 1), (4001, "unauthorized")),  # no leak
    ]
    for token, close in cases:
        client = await harness.connect(relay)
        await client.hello("demo", "b", token=token)
        assert await client.closed() == close, token
    assert (await harness.stats(relay))["refused"] == {"token_expired": 1, "unauthorized": 3}


async def test_tokens_bound_to_an_address(harness: Harness):
    from webraft_relay import issue_token

    relay = await harness.start(secret=SECRET)
    token = issue_token(SECRET, "demo", address="a")
    await harness.join(relay, "demo", "a", token=token)
    thief = await harness.connect(relay)
    await thief.hello("demo", "b", token=token)
    assert await thief.closed() == (4001, "unauthorized")
