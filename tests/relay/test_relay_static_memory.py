"""Static files are streamed: clients that request a large file and never read it cost the
relay a chunk each, not the file (issue 13, defect 2).

Memory is measured with tracemalloc inside this process, where the relay runs; kernel socket
buffers are not the relay's memory and are kept small on the client side.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import tracemalloc
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Harness

MiB = 1024 * 1024
CLIENTS = 10
FILE_SIZE = 4 * MiB


async def test_clients_that_never_read_do_not_hold_the_file(harness: Harness, tmp_path: Path):
    content = hashlib.sha256(b"seed").digest() * (FILE_SIZE // 32)  # incompressible, exact size
    (tmp_path / "big.wasm").write_bytes(content)
    relay = await harness.start(static_dir=tmp_path)
    loop = asyncio.get_running_loop()
    socks: list[socket.socket] = []
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(CLIENTS):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", relay.port))
            await loop.sock_sendall(sock, b"GET /big.wasm HTTP/1.1\r\nHost: x\r\n\r\n")
            socks.append(sock)
        for _ in range(200):  # until every download is under way (bounded: 2 s)
            if relay.site.streaming == CLIENTS:
                break
            await asyncio.sleep(0.01)
        assert relay.site.streaming == CLIENTS
        await asyncio.sleep(0.2)  # let the relay send what the sockets will take
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        for sock in socks:
            sock.close()
    # Buffering whole responses held CLIENTS * FILE_SIZE (40 MiB) here.
    assert grown < FILE_SIZE, f"{grown} bytes for {CLIENTS} stalled downloads"
    for _ in range(200):
        if relay.site.streaming == 0:
            break
        await asyncio.sleep(0.01)
    assert relay.site.streaming == 0  # the closed clients' downloads ended

    status, headers, body = await harness.http(relay, "/big.wasm")  # a reader gets it all
    assert status == 200
    assert headers["Content-Length"] == str(FILE_SIZE)
    assert body == content
