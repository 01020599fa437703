"""The fault proxy on plain sockets: a stand-in acceptor that records the lines it gets.

Faults act on the messages after the dialer's first line (its hello), never on the hello, the
acceptor's lines, or the bytes of a message; delays keep the order.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator

import pytest

from .proxy import HOST, Faults, LinkProxy


class Acceptor:
    """Sends a challenge line to each connection and records every line it reads."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.port = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, HOST, 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b'{"challenge":"00"}\n')
        while line := await reader.readline():
            self.lines.append(line)
        writer.close()


@pytest.fixture
async def link() -> AsyncIterator[tuple[LinkProxy, Acceptor]]:
    acceptor = Acceptor()
    await acceptor.start()
    proxy = LinkProxy("a", "b", acceptor.port, random.Random(1))
    await proxy.start()
    yield proxy, acceptor
    await proxy.close()
    assert acceptor.server is not None
    acceptor.server.close()


async def dial(proxy: LinkProxy, count: int) -> tuple[asyncio.StreamReader,
                                                     asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(HOST, proxy.port)
    assert await reader.readline() == b'{"challenge":"00"}\n'
    writer.write(b'{"hello":1}\n' + b"".join(b'{"m":%d}\n' % i for i in range(count)))
    await writer.drain()
    return reader, writer


async def settle(acceptor: Acceptor, count: int) -> None:
    for _ in range(200):
        if len(acceptor.lines) >= count:
            return
        await asyncio.sleep(0.01)


async def test_messages_pass_whole_and_in_order(link: tuple[LinkProxy, Acceptor]) -> None:
    proxy, acceptor = link
    proxy.faults = Faults(delay=0.01, jitter=0.02)
    _, writer = await dial(proxy, 20)
    await settle(acceptor, 21)
    assert acceptor.lines == [b'{"hello":1}\n'] + [b'{"m":%d}\n' % i for i in range(20)]
    assert proxy.counts.passed == 20
    writer.close()


async def test_a_cut_link_passes_the_hello_only(link: tuple[LinkProxy, Acceptor]) -> None:
    proxy, acceptor = link
    proxy.faults = Faults(cut=True)
    _, writer = await dial(proxy, 5)
    await settle(acceptor, 1)
    await asyncio.sleep(0.1)
    assert acceptor.lines == [b'{"hello":1}\n']
    assert proxy.counts.dropped == 5
    proxy.faults = Faults()  # healed: later messages pass on the same connection
    writer.write(b'{"m":9}\n')
    await settle(acceptor, 2)
    assert acceptor.lines[1:] == [b'{"m":9}\n']
    writer.close()


async def test_drop_loses_some_messages(link: tuple[LinkProxy, Acceptor]) -> None:
    proxy, acceptor = link
    proxy.faults = Faults(drop=0.5)
    _, writer = await dial(proxy, 100)
    await settle(acceptor, 1 + 100 - proxy.counts.dropped)
    assert 0 < proxy.counts.dropped < 100
    assert len(acceptor.lines) == 1 + 100 - proxy.counts.dropped
    writer.close()


async def test_reset_closes_the_connection(link: tuple[LinkProxy, Acceptor]) -> None:
    proxy, _ = link
    reader, writer = await dial(proxy, 0)
    proxy.reset()
    async with asyncio.timeout(5):
        with contextlib.suppress(ConnectionResetError):  # or an orderly end
            assert await reader.read() == b""
    writer.close()
