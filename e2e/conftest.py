"""Fixtures for the browser tests: one relay and one Chromium for the session, demo tabs on
unique rooms, and failure reports that include the relay's log and the tabs' consoles.

The tests use Playwright's sync API (plain ``def`` tests: no event loop of pytest-asyncio is
involved). Booting a tab costs ~3 s of CPU, so clusters are module-scoped and shared by the
tests that leave them healthy; destructive tests get their own cluster.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest
from browser_support import (
    ROOT,
    SLOTS,
    Relay,
    Tab,
    launch_chromium,
    new_context,
    open_tab,
    unique_room,
    wait_leader,
)
from pluggy import Result

_relays: list[Relay] = []


def _check_build() -> None:
    manifest = ROOT / "dist" / "manifest.json"
    pyodide = ROOT / "browser" / "node_modules" / "pyodide" / "pyodide.mjs"
    missing = [str(p) for p in (manifest, pyodide) if not p.is_file()]
    if not missing:
        wheel = ROOT / "dist" / json.loads(manifest.read_text())["wheel"]
        missing = [] if wheel.is_file() else [str(wheel)]
    if not missing:
        built = wheel.stat().st_mtime
        stale = [p for p in (ROOT / "webraft").rglob("*.py") if p.stat().st_mtime > built]
        if stale:
            pytest.fail(f"the wheel in dist/ is older than {stale[0].relative_to(ROOT)}: run "
                        "bash .ci/build-browser", pytrace=False)
    if missing:
        pytest.fail(f"browser bundle not built ({', '.join(missing)} missing): run "
                    "bash .ci/build-browser", pytrace=False)


@pytest.fixture(scope="session")
def start_relay() -> Iterator[Callable[..., Relay]]:
    """Start extra relays (``start_relay("--dist", path)``); all are stopped at the end."""
    started: list[Relay] = []

    def start(*args: str) -> Relay:
        relay = Relay(*args)
        started.append(relay)
        _relays.append(relay)
        return relay

    yield start
    for relay in started:
        relay.stop()
        _relays.remove(relay)


@pytest.fixture(scope="session")
def relay(start_relay: Callable[..., Relay]) -> Relay:
    """The relay every cluster uses: the repository's browser/, dist/ and Pyodide, or the
    wheel in ``$WEBRAFT_E2E_DIST`` (a directory with a manifest.json) to try another build."""
    other = os.environ.get("WEBRAFT_E2E_DIST")
    if other:
        return start_relay("--dist", other)
    _check_build()
    return start_relay()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser context (own localStorage) for one test."""
    ctx = new_context(browser)
    yield ctx
    ctx.close()


@pytest.fixture
def room(request: pytest.FixtureRequest) -> str:
    return unique_room(request.node.name)


class Cluster:
    """Three demo tabs in one room; ``contexts[i]`` is the context of ``tabs[i]``."""

    def __init__(self, browser: Any, relay: Relay, room: str, *, separate_contexts: bool) -> None:
        self.relay = relay
        self.room = room
        shared = None if separate_contexts else new_context(browser)
        self.contexts = [shared or new_context(browser) for _ in range(3)]
        # Open all three first, then wait: the boots overlap.
        self.tabs = [open_tab(ctx, relay.url, room, name=f"{room}#{i}", members=SLOTS,
                              wait=False)
                     for i, ctx in enumerate(self.contexts)]
        for tab in self.tabs:
            tab.wait_booted()
            tab.name = f"{room}/{tab.address}"

    def leader(self) -> Tab:
        """Wait for an agreed leader and return its tab."""
        address, _ = wait_leader(self.tabs)
        return self.tab(address)

    def followers(self) -> list[Tab]:
        address, _ = wait_leader(self.tabs)
        return [t for t in self.tabs if t.address != address]

    def tab(self, address: str) -> Tab:
        return next(t for t in self.tabs if t.address == address)

    def context_of(self, tab: Tab) -> Any:
        return self.contexts[self.tabs.index(tab)]

    def close(self) -> None:
        for tab in list(self.tabs):
            if not tab.page.is_closed():
                tab.close()
        for ctx in {id(c): c for c in self.contexts}.values():
            ctx.close()


@pytest.fixture(scope="module")
def make_cluster(browser: Any, relay: Relay,
                 request: pytest.FixtureRequest) -> Iterator[Callable[..., Cluster]]:
    clusters: list[Cluster] = []

    def make(separate_contexts: bool = False) -> Cluster:
        cluster = Cluster(browser, relay, unique_room(request.module.__name__),
                          separate_contexts=separate_contexts)
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        cluster.close()


# ------------------------------------------------------------------------ failure reports


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
        item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Result[pytest.TestReport], None]:
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for relay in _relays:
        lines = relay.log().splitlines()[-150:]
        report.sections.append((f"relay {relay.url} {' '.join(relay.args)}", "\n".join(lines)))
    for tab in Tab.all:
        if tab.console:
            report.sections.append((f"console of {tab.name}", "\n".join(list(tab.console)[-60:])))
