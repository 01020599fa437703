"""The guide's app (browser/examples/todo) and the persistentState helper it is built on.

The relay serves the app as ``--static`` and the library at its fixed ``/webraft/`` path: an
app's own page, as docs/guide.md sets it up. Two tabs share a todo list, a reloaded tab keeps
it, and a tab that joins after the log was compacted gets the state as a snapshot.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from browser_support import BOOT_TIMEOUT, CONVERGE_TIMEOUT, ROOT, Relay, Tab, wait_for

TODO = ROOT / "browser" / "examples" / "todo"

ITEMS = "() => [...document.querySelectorAll('#items li')].map((li) => li.textContent)"
# A voter or a learner (of two tabs, the second stays a learner: see docs/browser.md).
MEMBER = """() => { if (window.webraft === undefined) return false;
  const s = webraft.status();
  return s.leader !== null && [...s.members, ...s.learners].includes(s.address); }"""


def open_app(context: Any, url: str, name: str) -> Tab:
    tab = Tab(context.new_page(), name)
    tab.goto(url)
    tab.wait_booted()
    return tab


def wait_members(tabs: list[Tab]) -> None:
    for tab in tabs:
        tab.page.wait_for_function(MEMBER, timeout=BOOT_TIMEOUT * 1000, polling=100)


def add(tab: Tab, text: str) -> None:
    """Type into the form and submit it, as a user would; wait until this tab shows it."""
    tab.page.fill("input[name=text]", text)
    tab.page.press("input[name=text]", "Enter")
    wait_for(lambda: text in tab.eval(ITEMS), what=f"{text!r} in {tab.name}")


def test_two_tabs_share_the_todo_list_and_a_reload_keeps_it(
    context: Any, start_relay: Callable[..., Relay], room: str
) -> None:
    relay = start_relay("--static", str(TODO))
    url = f"{relay.url}/?room={room}"
    first = open_app(context, url, "first")
    second = open_app(context, url, "second")
    wait_members([first, second])

    for text in ("milk", "eggs", "bread"):
        add(first, text)
    wait_for(lambda: second.eval(ITEMS) == ["milk", "eggs", "bread"], what="second's list")
    second.page.click("#items li >> nth=1")  # toggle "eggs" done, from the other tab
    wait_for(lambda: first.eval("() => document.querySelector('#items li.done')?.textContent")
             == "eggs", what="eggs done in first")

    # Saved per node: each tab's own item of the shared localStorage, at its index.
    key = second.eval("todos.storageKey")
    assert key == f"webraft-state:{room}:{second.address}"
    index = second.eval("todos.index")
    second.reload()
    second.wait_booted()
    # The state is back from storage before the tab hears from anyone.
    assert second.eval("todos.index") >= index
    assert second.eval(ITEMS) == ["milk", "eggs", "bread"]
    assert second.eval("todos.storageKey") == key  # the same node
    add(second, "jam")
    wait_for(lambda: first.eval(ITEMS) == ["milk", "eggs", "bread", "jam"], what="first's list")
    for tab in (first, second):
        assert tab.page_errors == [], tab.page_errors


COUNTER_PAGE = """<!doctype html>
<meta charset="utf-8">
<title>counter</title>
<p id="error" hidden></p>
<script type="module">
  import { connect, persistentState } from "/webraft/webraft.js";
  const room = new URLSearchParams(location.search).get("room");
  window.loads = [];  // the index of each state loaded (from storage or a snapshot)
  const counter = persistentState({
    initial: () => ({ total: 0, applied: 0 }),
    apply(state, command) {
      return { total: state.total + command.add, applied: state.applied + 1 };
    },
    onChange(state, entry) { if (entry === null) loads.push(counter.index); },
  });
  connect({ room, state: counter, snapshotEntries: 20, snapshotTail: 5 }).then(
    (raft) => { window.counter = counter; window.webraft = raft; },
    (error) => { const e = document.getElementById("error");
                 e.textContent = `${error.name}: ${error.message}`; e.hidden = false; });
</script>
"""

COUNT = """async (n) => {
  for (let k = 0; k < n; k++) {
    for (let tries = 0; ; tries++) {
      try { await webraft.propose({ add: 1 }); break; }
      catch (error) { if (tries > 100) throw error; await new Promise((r) => setTimeout(r, 50)); }
    }
  }
  return counter.index;
}"""


def test_a_new_tab_gets_the_state_as_a_snapshot_after_compaction(
    context: Any, start_relay: Callable[..., Relay], room: str, tmp_path: Path
) -> None:
    (tmp_path / "index.html").write_text(COUNTER_PAGE)
    relay = start_relay("--static", str(tmp_path))
    url = f"{relay.url}/?room={room}"
    tabs = [open_app(context, url, "a"), open_app(context, url, "b")]
    wait_members(tabs)
    last = tabs[0].eval(COUNT, 60, timeout=120)
    assert tabs[0].eval("webraft.status().snapshotIndex") > 0  # compacted

    late = open_app(context, url, "late")
    wait_members([late])
    wait_for(lambda: late.eval("counter.index") >= last, timeout=CONVERGE_TIMEOUT,
             what="the late tab caught up")
    # Nothing was saved for it: its state came whole from a snapshot, then the entries after.
    loads = late.eval("loads")
    assert loads[0] == 0 and max(loads) > 0, loads
    assert late.eval("counter.state") == tabs[0].eval("counter.state")
    assert late.eval("counter.state.total") == 60
    # And the snapshot's state is what it saved.
    saved = late.eval("JSON.parse(localStorage.getItem(counter.storageKey))")
    assert saved["index"] == late.eval("counter.index")
    assert saved["state"]["total"] == 60


ELSEWHERE_PAGE = """<!doctype html>
<meta charset="utf-8">
<title>a page elsewhere</title>
<p id="error" hidden></p>
<script type="module">
  const params = new URLSearchParams(location.search);
  const library = params.get("library");  // another origin: the relay's
  try {
    const { connect } = await import(`${library}/webraft/webraft.js`);
    window.webraft = await connect({ room: params.get("room"), members: ["only"],
                                     relay: `${library.replace("http", "ws")}/ws` });
  } catch (error) {
    const e = document.getElementById("error");
    e.textContent = `${error.name}: ${error.message}`;
    e.hidden = false;
  }
</script>
"""


def test_a_page_on_another_origin_loads_the_library_from_the_relay(
    context: Any, start_relay: Callable[..., Relay], room: str, tmp_path: Path
) -> None:
    (tmp_path / "index.html").write_text(ELSEWHERE_PAGE)
    site = start_relay("--static", str(tmp_path))  # another port: another origin
    library = start_relay("--allow-origin", site.url)
    tab = open_app(context, f"{site.url}/?room={room}&library={library.url}", "elsewhere")
    tab.page.wait_for_function("() => webraft.isLeader", timeout=BOOT_TIMEOUT * 1000)
    assert tab.eval("webraft.propose({x: 1})") > 0
    # A SharedWorker must be of the page's origin: the port exchange is skipped, with a word.
    assert any("no port exchange at" in line for line in tab.console), list(tab.console)
    assert tab.page_errors == [] and tab.eval("webraft.status().ported") == []
