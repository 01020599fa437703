"""``--tls-cert``/``--tls-key``: the same port serves ``wss://`` and ``https://``.

The certificate is a throwaway self-signed one made with the ``openssl`` command line, which
the test needs on the PATH.
"""

from __future__ import annotations

import asyncio
import http.client
import ssl
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support import RawClient
from websockets.asyncio.client import connect

if TYPE_CHECKING:
    from conftest import Harness

@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


async def test_wss_and_https_on_one_port(harness: Harness, certificate: tuple[Path, Path]):
    cert, key = certificate
    relay = await harness.start(tls_cert=cert, tls_key=key, static_dir=cert.parent)
    assert relay.url.startswith("https://") and relay.ws_url.startswith("wss://")
    trust = ssl.create_default_context(cafile=str(cert))

    async def member(address: str) -> RawClient:
        ws = await connect(relay.ws_url, ssl=trust, compression=None)
        harness.clients.append(client := RawClient(ws))
        await client.hello("secure", address)
        await client.expect("welcome")
        return client

    a = await member("a")
    b = await member("b")
    await a.expect("join", address="b")
    await a.send(type="send", to="b", data={"over": "tls"})
    await b.expect("msg", data={"over": "tls"}, **{"from": "a"})

    def get(path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPSConnection("127.0.0.1", relay.port, timeout=5, context=trust)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    assert await asyncio.to_thread(get, "/healthz") == (200, b"ok")
    assert await asyncio.to_thread(get, "/cert.pem") == (200, cert.read_bytes())  # streamed

    with pytest.raises(ssl.SSLError):  # an untrusting client is refused by its own TLS
        await connect(relay.ws_url, ssl=ssl.create_default_context(), compression=None)


def test_cert_and_key_go_together(certificate: tuple[Path, Path]):
    from webraft_relay import RelayConfig

    with pytest.raises(ValueError, match="together"):
        RelayConfig(tls_cert=certificate[0])
