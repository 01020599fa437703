"""Fixtures for the transport tests: in-process relays on free ports, fast RelayRaft nodes.

The helpers themselves are in ``transport_support.py``; every wait there is on a condition
with a hang guard, never a timing expectation.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# Run from a plain checkout too (no `pip install -e ./relay`): the relay package is in relay/.
RELAY = Path(__file__).resolve().parents[2] / "relay"
if str(RELAY) not in sys.path:
    sys.path.insert(0, str(RELAY))

from transport_support import Net  # noqa: E402


@pytest.fixture
async def net() -> AsyncIterator[Net]:
    """Starts relays, nodes and raw clients; closes all of them at the end of the test."""
    n = Net()
    try:
        yield n
    finally:
        await n.aclose()
