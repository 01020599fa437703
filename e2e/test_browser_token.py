"""A tab whose token is a function: an expired token (4002) is renewed, not the end."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any
from urllib.request import Request, urlopen

from browser_support import Relay, Tab, unique_room

from webraft_relay import issue_token
from webraft_relay.protocol import stats_token

SECRET = "e2e-token-secret"


def test_a_token_function_is_asked_again_after_4002(context: Any,
                                                     start_relay: Callable[..., Relay]) -> None:
    relay = start_relay("--secret", SECRET)
    room = unique_room("token")
    now = int(time.time())
    tokens = [issue_token(SECRET, room, expires=now - 1),
              issue_token(SECRET, room, expires=now + 600)]
    tab = Tab(context.new_page(), "token")
    tab.goto(f"{relay.url}/healthz")
    tab.eval("(tokens) => { window.tokens = tokens; window.asked = 0; }", tokens)
    # An async function: the relay refuses the first (expired) token with 4002, and the tab
    # asks again instead of giving up.
    index = tab.connect_alone(
        room, "async () => window.tokens[Math.min(window.asked++, window.tokens.length - 1)]")
    assert isinstance(index, int) and index > 0
    assert tab.eval("window.asked") == 2
    request = Request(f"{relay.url}/stats",
                      headers={"Authorization": f"Bearer {stats_token(SECRET)}"})
    with urlopen(request, timeout=10) as response:
        stats = json.load(response)
    assert stats["refused"] == {"token_expired": 1}
    assert not tab.page_errors
