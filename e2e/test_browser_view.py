"""The demo's cluster view (``browser/demo.js`` drawing ``webraft/browser/view.py``): every
member's role as each tab shows it, learners and tabs waiting to be added, configuration
entries in words, paused members, boot progress and the Put form.

One room with automatic membership: the first tab founds the cluster; a second one is added
as a learner and stays one (one voter and one learner: promoting it would make two voters,
which tolerate no more failures than one); while the leader is paused a third tab waits to be
added, and once it is back both are promoted. With ``WEBRAFT_E2E_SHOTS=DIR`` the test also
saves screenshots of the view there (for the documentation; CI sets nothing).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from browser_support import Tab, new_context, open_tab, wait_for, wait_leader

#: Each tab's view of the members, {address: {"role", "presence", "term", "progress"}}, from
#: its table.
READ_MEMBERS = """() => Object.fromEntries([...document.querySelectorAll('#members tbody tr')]
  .map((r) => [r.dataset.id, {role: r.querySelector('.role').textContent,
                              presence: r.querySelector('.presence').textContent,
                              term: r.querySelector('.term').textContent,
                              progress: r.querySelector('.progress').textContent}]))"""
READ_ENTRIES = "() => [...document.querySelectorAll('#log li')].map((li) => li.textContent)"
READ_FLOW = "() => [...document.querySelectorAll('#flow li')].map((li) => li.textContent)"
#: Each member's log row: its bars' indexes (from their titles) and where the commit index,
#: the leader's next index for it and configuration entries are marked.
READ_LOGS = """() => Object.fromEntries([...document.querySelectorAll('#logs .logrow')].map((r) => {
  const index = (bar) => bar && bar.title ? Number(bar.title.split(" ")[0]) : null;
  const bars = [...r.querySelectorAll('.bar')];
  return [r.dataset.id, {
    indexes: bars.map(index).filter((i) => i !== null),
    commit: index(r.querySelector('.bar.commit')),
    next: r.querySelector('.bar.next') !== null,
    config: bars.filter((b) => b.classList.contains('config')).map(index)}];
}))"""
#: The election timers the diagram draws as rings, per member (null: none).
READ_TIMERS = """() => Object.fromEntries(demo.view.members.map((m) => [m.id,
  m.timer && {exact: m.timer.exact, fraction: m.timer.left / m.timer.total}]))"""


def roles(tab: Tab) -> dict[str, str]:
    return {a: m["role"] for a, m in tab.eval(READ_MEMBERS).items()}


def presence(tab: Tab, address: str) -> str | None:
    member = tab.eval(READ_MEMBERS).get(address)
    return None if member is None else member["presence"]


def shoot(tab: Tab, name: str) -> None:
    """Save screenshots of ``tab`` when ``WEBRAFT_E2E_SHOTS`` names a directory: the page,
    and the cluster view alone as ``NAME-view.png`` (the one docs/browser.md shows)."""
    folder = os.environ.get("WEBRAFT_E2E_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        tab.page.set_viewport_size({"width": 1500, "height": 1000})
        tab.page.wait_for_timeout(400)  # a few frames at the new size
        tab.page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)
        tab.page.locator("#view").screenshot(path=str(Path(folder) / f"{name}-view.png"))


@pytest.fixture
def contexts(browser: Any) -> Any:
    made: list[Any] = []

    def make() -> Any:
        made.append(new_context(browser))
        return made[-1]

    yield make
    for context in made:
        context.close()


def test_the_view_shows_roles_learners_waiting_tabs_and_config_entries(
        browser: Any, relay: Any, room: str, contexts: Any) -> None:
    # Every tab has its own context (its own localStorage, like another browser).
    first = open_tab(contexts(), relay.url, room, name=f"{room}#0")
    a = first.address
    wait_for(lambda: roles(first) == {a: "leader"}, what="the founder to lead alone")
    # Boot progress: every step done, with its time.
    assert first.eval("document.getElementById('boot').classList.contains('finished')")
    assert first.eval("[...document.querySelectorAll('#boot-steps li')]"
                      ".every((li) => li.classList.contains('done') && li.dataset.time)")
    assert first.eval("document.getElementById('waiting').hidden")

    second = open_tab(contexts(), relay.url, room, name=f"{room}#1")
    b = second.address
    wait_for(lambda: roles(first) == {a: "leader", b: "learner"},
             what="the second tab to be a learner in the leader's view")
    wait_for(lambda: roles(second).get(b) == "learner", what="the learner to know it")
    assert second.page.inner_text("#role") == "learner"
    wait_for(lambda: f"term 1: add {b} as learner" in second.eval(READ_ENTRIES),
             what="the learner's log to describe its addition")
    # The Put form commits and clears its inputs.
    second.page.fill("#key", "colour")
    second.page.fill("#value", '"blue"')
    second.page.click("#put button[type=submit]")
    wait_for(lambda: second.page.inner_text("#propose-result").startswith("committed at"),
             what="the Put to commit")
    assert second.page.input_value("#key") == second.page.input_value("#value") == ""
    # Messages are listed (heartbeats only counted), and the leader's progress is shown.
    wait_for(lambda: f"{a} → {b}" in first.page.inner_text("#beats"),
             what="the leader's heartbeat count")
    index = second.status()["commitIndex"]
    wait_for(lambda: first.eval(READ_MEMBERS)[b]["progress"] == f"{index} / {index + 1}",
             what="the leader to show the learner's match / next index")
    assert not [m for m in first.eval(READ_FLOW) if "heartbeat" in m]
    wait_for(lambda: any("append" in m for m in first.eval(READ_FLOW)),
             what="an append in the leader's message list")
    shoot(first, "view-learner")

    # The leader pauses: present on the relay but silent. A new tab waits to be added.
    first.eval("webraft.setPaused(true)")
    wait_for(lambda: presence(second, a) == "paused", what="the learner to see the leader "
             "paused")
    third = open_tab(contexts(), relay.url, room, name=f"{room}#2")
    c = third.address
    wait_for(lambda: third.page.inner_text("#role") == "waiting to be added",
             what="the new tab to wait")
    assert third.eval("!document.getElementById('waiting').hidden")
    assert "waiting to be added" in third.page.inner_text("#waiting")
    assert roles(third)[c] == "waiting to be added"
    shoot(third, "view-waiting")

    # Back: the leader adds the third tab and promotes both, one at a time.
    first.eval("webraft.setPaused(false)")
    tabs = [first, second, third]

    def agreed_roles() -> dict[str, str] | None:
        """The roles every tab shows, if they agree on one leader and two followers."""
        views = [roles(t) for t in tabs]
        agreed = all(v == views[0] for v in views) and set(views[0]) == {a, b, c}
        return views[0] if agreed and sorted(views[0].values()) == [
            "follower", "follower", "leader"] else None

    shown = wait_for(agreed_roles, what="every tab to show one leader and two followers",
                     describe=lambda: [t.eval(READ_MEMBERS) for t in tabs])
    leader = next(t for t in tabs if shown[t.address] == "leader")
    described = [line.split(": ", 1)[1] for line in leader.eval(READ_ENTRIES)
                 if line.startswith("term ")]
    assert f"add {c} as learner" in described
    assert {f"promote {b}", f"promote {c}"} <= set(described)
    wait_for(lambda: all(m["presence"] == "online" for m in leader.eval(READ_MEMBERS).values()),
             what="the leader to see every member online")
    # Logs as bars: every member's row on the leader, the commit index and the followers'
    # next indexes marked, the four configuration entries outlined.
    commit = leader.status()["commitIndex"]

    def logs_shown() -> dict[str, Any] | None:
        logs = leader.eval(READ_LOGS)
        done = set(logs) == {a, b, c} and all(
            row["indexes"] and row["indexes"][-1] == commit and row["commit"] == commit
            for row in logs.values())
        return logs if done else None

    logs = wait_for(logs_shown, what="every member's log up to the commit index on the leader",
                    describe=lambda: leader.eval(READ_LOGS))
    assert [logs[t.address]["next"] for t in tabs] == [t is not leader for t in tabs], logs
    assert len(logs[leader.address]["config"]) == 4, logs
    # Election timers: the leader has none and estimates its followers' (dashed rings); a
    # follower knows its own exactly.
    timers = leader.eval(READ_TIMERS)
    assert timers[leader.address] is None
    assert all(timers[t.address] and not timers[t.address]["exact"]
               for t in tabs if t is not leader), timers
    follower = next(t for t in tabs if t is not leader)
    own = follower.eval(READ_TIMERS)[follower.address]
    assert own["exact"] and own["fraction"] <= 1, own  # (about to fire, it may be at 0)
    shoot(leader, "view-steady")

    # A leader failure: the others elect a new leader and show the old one paused.
    old = leader.address
    leader.eval("webraft.setPaused(true)")
    rest = [t for t in tabs if t is not leader]
    new, term = wait_leader(rest)
    new_tab = next(t for t in rest if t.address == new)
    wait_for(lambda: roles(new_tab).get(new) == "leader" and presence(new_tab, old) == "paused",
             what="the new leader to show itself leading and the old one paused")
    assert new_tab.eval(READ_MEMBERS)[new]["term"] == str(term)
    shoot(new_tab, "view-failover")
    leader.eval("webraft.setPaused(false)")
    wait_for(lambda: roles(leader).get(old) == "follower", what="the old leader to follow")
    for tab in tabs:
        assert tab.page_errors == []
