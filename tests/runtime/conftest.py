"""Fixtures for the runtime tests; the harness itself is in ``cluster.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from cluster import Cluster


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    """A started 3-node cluster (a, b, c) with fast timeouts."""
    async with Cluster() as c:
        yield c


@pytest.fixture
async def make_cluster() -> AsyncIterator[Callable[..., Cluster]]:
    """Build (unstarted) clusters with custom names/timing; all are closed at teardown."""
    made: list[Cluster] = []

    def make(**kwargs: Any) -> Cluster:
        c = Cluster(**kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        await c.close()
