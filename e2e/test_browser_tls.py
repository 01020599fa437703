"""The relay with ``--tls-cert``/``--tls-key``: a tab loads the page over ``https://`` and
joins over ``wss://`` (webraft.js picks ``wss:`` for an ``https:`` page by itself).

The certificate is a throwaway self-signed one for 127.0.0.1 made with the ``openssl`` command
line; the browser context accepts it (``ignore_https_errors``, which Chromium applies to
WebSockets too), as a browser that trusts the certificate would.
"""

from __future__ import annotations

import json
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import pytest
from browser_support import Relay, Tab, unique_room


@pytest.fixture
def tls_relay(start_relay: Callable[..., Relay], tmp_path: Path) -> Relay:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "1", "-subj", "/CN=webraft e2e",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return start_relay("--tls-cert", str(cert), "--tls-key", str(key))


@pytest.fixture
def tls_context(browser: Any) -> Iterator[Any]:
    context = browser.new_context(ignore_https_errors=True)
    yield context
    context.close()


def test_a_tab_loads_over_https_and_joins_over_wss(tls_context: Any, tls_relay: Relay) -> None:
    assert tls_relay.url.startswith("https://127.0.0.1:")
    tab = Tab(tls_context.new_page(), "tls")
    tab.goto(f"{tls_relay.url}/healthz")
    assert tab.eval("location.protocol") == "https:"
    index = tab.connect_alone(unique_room("tls"))
    assert isinstance(index, int) and index > 0
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    with urlopen(f"{tls_relay.url}/stats", timeout=10, context=unverified) as response:
        stats = json.load(response)
    assert stats["members"] == 1 and stats["messages_routed"] == 0  # alone: nothing to route
    assert not tab.page_errors
