"""A RelayConnection given several relay URLs: it uses one at a time and moves on after a
failure, so members of a relay that goes away come back through another one."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from support import until
from transport_support import FastRelayRaft

import webraft

if TYPE_CHECKING:
    from transport_support import Net


async def test_the_next_relay_is_tried_after_a_failure_and_after_a_loss(net: Net):
    first, second = await net.fake(), await net.fake()
    node = FastRelayRaft("a", url=[first.ws_url, second.ws_url], room="demo", members=["a"],
                         storage=webraft.MemoryStorage())
    net.nodes.append(node)
    assert node.connection.urls == (first.ws_url, second.ws_url)
    node.start()
    conn = await first.next()
    await conn.welcome()
    await until(lambda: node.connected and node.connection.url == first.ws_url)
    await first.stop()  # the first relay goes away: 1001, then refused connections
    conn = await second.next()
    assert conn.hello["session"] == node.client.session  # the same member, elsewhere
    await conn.welcome()
    await until(lambda: node.connected and node.connection.url == second.ws_url)


def test_an_empty_list_of_relays_is_refused():
    with pytest.raises(ValueError, match="at least one relay URL"):
        FastRelayRaft("a", url=[], room="demo", members=["a"], storage=webraft.MemoryStorage())
