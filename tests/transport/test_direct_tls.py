"""Direct links over TLS on 127.0.0.1, with a CA and certificates the tests make (openssl).

The links' HMAC proof still runs inside TLS; these tests check what TLS adds: the bytes on
the wire are not the plain protocol, a dialer must trust the acceptor's certificate, and with
a CA an acceptor takes only dialers whose certificate that CA signed. Waits are for
conditions, with hang guards only.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import stable_leader, until
from test_direct_cluster import TOKEN, FastDirectRaft, Stub, fast_backoff, link_all

import webraft
from webraft.transport.tcp import TLS, DirectLinks

HOST = "127.0.0.1"
GUARD = 10.0  # seconds; a hang guard, not a timing expectation


@dataclass(frozen=True)
class Certs:
    ca: Path
    cert: Path
    key: Path


def make_certs(where: Path, name: str = "test") -> Certs:
    """A CA of its own, and a certificate it signs for 127.0.0.1 (used by every member)."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=where, check=True, capture_output=True,
                       timeout=GUARD)
    where.mkdir(parents=True, exist_ok=True)
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *curve, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", f"/CN={name} CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", *curve, "-keyout", "member.key", "-out", "member.csr", "-subj",
            f"/CN={name} member")
    (where / "member.ext").write_text("basicConstraints=CA:FALSE\n"
                                      "subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "member.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "member.pem", "-days", "2", "-extfile", "member.ext")
    return Certs(where / "ca.pem", where / "member.pem", where / "member.key")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """Another CA and its member: a valid certificate, of the wrong cluster."""
    return make_certs(tmp_path_factory.mktemp("stranger"), "stranger")


class Links:
    """The links of one test, closed at its end."""

    def __init__(self) -> None:
        self.all: list[DirectLinks] = []
        self.nodes: list[FastDirectRaft] = []

    def make(self, address: str, tls: TLS | None) -> tuple[DirectLinks, Stub]:
        stub = Stub()
        links = DirectLinks(address, stub, room="webraft", token=TOKEN, tls=tls,
                            backoff=fast_backoff)
        self.all.append(links)
        return links, stub


@pytest.fixture
async def net() -> AsyncIterator[Links]:
    n = Links()
    try:
        yield n
    finally:
        for node in n.nodes:
            await node.close()
        for links in n.all:
            await links.close()


async def test_mutual_tls_links_carry_messages_and_hide_them(net: Links, certs: Certs):
    tls = TLS.from_files(certs.cert, certs.key, certs.ca)
    a, a_seen = net.make("a", tls)
    b, b_seen = net.make("b", tls)
    await a.listen(HOST, 0)
    port = (await b.listen(HOST, 0))[1]
    a.dial("b", HOST, port)
    b.dial("a", *a.bound)  # type: ignore[misc]
    await until(lambda: a.is_up("b") and b.is_up("a"), what="both links up over TLS")
    assert a.send("b", {"n": 1})
    await until(lambda: b_seen.data == [("a", {"n": 1})])
    assert not a_seen.errors and not b_seen.errors and a.link_error is None

    # A plain TCP client gets no challenge in the clear: the acceptor speaks TLS only.
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(b'{"v":1}\n')
    async with asyncio.timeout(GUARD):
        answer = await reader.read()  # the acceptor closes: not a TLS hello
    writer.close()
    assert b"challenge" not in answer


async def test_a_dialer_that_does_not_trust_the_acceptor_reports_it(net: Links, certs: Certs,
                                                                    stranger: Certs):
    a, a_seen = net.make("a", TLS.from_files(stranger.cert, stranger.key, stranger.ca))
    b, _ = net.make("b", TLS.from_files(certs.cert, certs.key, certs.ca))
    port = (await b.listen(HOST, 0))[1]
    a.dial("b", HOST, port)
    await until(lambda: a_seen.errors, what="a reported the failed TLS handshake")
    assert not a.is_up("b")
    assert a.link_error is not None and a.link_error.startswith("tls: ")
    assert "CERTIFICATE_VERIFY_FAILED" in a.link_error


@pytest.mark.parametrize("client", ["no certificate", "another CA's"])
async def test_with_a_ca_the_acceptor_refuses_dialers_it_did_not_sign(
        net: Links, certs: Certs, stranger: Certs, client: str):
    b, b_seen = net.make("b", TLS.from_files(certs.cert, certs.key, certs.ca))
    port = (await b.listen(HOST, 0))[1]
    # The dialer trusts b's CA, so only b's check of the dialer can fail.
    dialer = ssl.create_default_context(cafile=certs.ca)
    if client == "another CA's":
        dialer.load_cert_chain(stranger.cert, stranger.key)
    a, a_seen = net.make("a", TLS(server=TLS.from_files(certs.cert, certs.key).server,
                                  client=dialer))
    a.dial("b", HOST, port)
    await until(lambda: a_seen.errors, what="a learned that b refused its certificate")
    assert a.link_error is not None and a.link_error.startswith("tls: ")
    assert not a.is_up("b") and not b_seen.data
    assert not any(i.peer for i in b._incoming), "nobody linked to b"


async def test_without_a_ca_the_acceptor_takes_any_dialer_holding_the_token(
        net: Links, certs: Certs):
    # No client certificates: the HMAC proof alone says who may link.
    trusting = ssl.create_default_context(cafile=certs.ca)
    server = TLS.from_files(certs.cert, certs.key).server
    a, _ = net.make("a", TLS(server=server, client=trusting))
    b, b_seen = net.make("b", TLS(server=server, client=trusting))
    port = (await b.listen(HOST, 0))[1]
    a.dial("b", HOST, port)
    await until(lambda: a.is_up("b"))
    assert a.send("b", {"hi": True})
    await until(lambda: b_seen.data == [("a", {"hi": True})])


async def test_a_three_node_cluster_commits_over_mutual_tls(net: Links, certs: Certs):
    tls = TLS.from_files(certs.cert, certs.key, certs.ca)
    nodes: list[FastDirectRaft] = []
    for name in "abc":
        node = FastDirectRaft(name, listen=(HOST, 0), peers={}, token=TOKEN, tls=tls,
                              members=list("abc"), storage=webraft.MemoryStorage())
        net.nodes.append(node)
        async with asyncio.timeout(GUARD):
            await node.__aenter__()
        nodes.append(node)
    await link_all(nodes)
    lead = await until(lambda: stable_leader(nodes), what="a stable leader")
    follower: Any = next(n for n in nodes if n is not lead)
    index = await asyncio.wait_for(follower.propose("secret"), GUARD)
    await until(lambda: all(n.last_applied >= index for n in nodes), what="applied")
    assert all(n.commands() == ["secret"] for n in nodes)
    assert not [e for n in nodes for e in n.errors]


def test_unusable_files_fail_at_once(tmp_path: Path, certs: Certs):
    with pytest.raises(OSError):
        TLS.from_files(tmp_path / "missing.pem", certs.key)
    with pytest.raises(ssl.SSLError):
        TLS.from_files(certs.cert, certs.ca)  # not the certificate's key
