"""Helpers for the browser tests and the browser benchmark: a relay subprocess, Chromium,
demo tabs and bounded polling.

Booting Pyodide costs ~3 s of CPU per tab (2 cores: 3-12 s of wall time under load), so every
wait on a tab is bounded but generous, and the tests share tabs wherever they can.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal, TypeVar

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"

#: Chromium's sampling diagnostics that record the stack of a sampled allocation by walking
#: frame pointers *with stack scanning* (base::debug::TraceStackFramePointers). Chromium 156
#: bounds that scan by the main thread's own stack, but Pyodide runs Python on WebAssembly
#: JSPI stacks (V8 mmaps them elsewhere), so the scan can run past the top of such a stack
#: into its guard page: the renderer dies of SIGSEGV (SEGV_ACCERR at a page-aligned address,
#: every minidump at the same instruction) and Playwright says "Target crashed". Chromium
#: switches these on for a random share of processes, hence rare, random crashes of a booting
#: tab; forcing the heap profiler on in every renderer crashes nearly every Pyodide boot.
#: They only report to Google (GWP-ASan: sampled use-after-free detection; the heap profiler:
#: metrics), so turning them off changes nothing a page can observe.
CRASHING_SAMPLERS = ("GwpAsanMalloc", "GwpAsanPartitionAlloc", "HeapProfilerReporting")
#: Playwright's own ``--disable-features`` (1.65). Chromium keeps only the *last*
#: ``--disable-features`` switch, so ours must repeat these; :func:`launch_chromium` adds any
#: that a Playwright upgrade disables beyond them (see :func:`dropped_playwright_features`).
PLAYWRIGHT_DISABLED_FEATURES = (
    "AimEnabled", "AvoidCorsURLLoaderRestartOnRedirect", "AvoidUnnecessaryBeforeUnloadCheckSync",
    "DestroyProfileOnBrowserClose", "HttpsFirstBalancedModeAutoEnable", "HttpsUpgrades",
    "LensOverlay", "MediaRouter", "NetworkTimeServiceQuerying", "OptimizationHints",
    "PaintHolding", "PreconnectToSearch", "TcpPortRandomizationWin",
    "ThirdPartyStoragePartitioning", "msEdgeUpdateLaunchServicesPreferredVersion",
    "msForceBrowserSignIn",
)


def chromium_args(also_disabled: Iterable[str] = ()) -> list[str]:
    return [
        "--disable-quic",
        "--disable-gpu",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
        "--disable-features=" + ",".join(
            (*PLAYWRIGHT_DISABLED_FEATURES, *CRASHING_SAMPLERS, *sorted(also_disabled))),
    ]


CHROMIUM_ARGS = chromium_args()

#: Pyodide boot plus slot claiming, per tab (seconds). Generous: 2 cores, several tabs at once.
BOOT_TIMEOUT = 120.0
#: Elections, commits and catching up (seconds).
CONVERGE_TIMEOUT = 30.0
#: Longer than a proposal's own timeout (5 s by default).
PROPOSAL_TIMEOUT = 20.0
#: The longest a single evaluation in a page may take.
EVAL_TIMEOUT = 60.0

_FUNCTION = re.compile(r"\s*(async\s+)?(function\b|\([^)]*\)\s*=>|\w+\s*=>)")
#: Runs a function source with an argument and rejects if its promise does not settle in time.
BOUNDED_EVAL = """async ([source, arg, ms]) => {
  const fn = (0, eval)(`(${source})`);
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no result within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([Promise.resolve().then(() => fn(arg)), limit]);
  } finally {
    clearTimeout(timer);
  }
}"""

T = TypeVar("T")


def wait_for(predicate: Callable[[], T | Literal[False] | None], timeout: float = CONVERGE_TIMEOUT,
             what: str = "", interval: float = 0.05,
             describe: Callable[[], Any] | None = None) -> T:
    """Poll ``predicate`` until it returns something truthy and return that; fail after
    ``timeout`` seconds with the last value it returned (and ``describe()``, if given).

    A falsy value means "not yet", so the result's type leaves out ``None`` and ``False``:
    waiting on a predicate that returns ``X | None`` gives an ``X``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            state = f"; state: {describe()!r}" if describe is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for "
                                 f"{what or predicate!r}; last value: {last!r}{state}")
        time.sleep(interval)


def unique_room(prefix: str) -> str:
    return f"{re.sub(r'[^A-Za-z0-9-]+', '-', prefix)[:40]}-{uuid.uuid4().hex[:8]}"


def _descendants(root: int) -> list[int]:
    """Process ids below ``root`` (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def dropped_playwright_features(root: int | None = None) -> set[str]:
    """Features that Playwright disabled in a Chromium this process launched but that our
    ``--disable-features`` (the last one, the one Chromium keeps) leaves enabled. Read from
    the browser processes' own command lines, so it sees the Playwright actually installed."""
    dropped: set[str] = set()
    for pid in _descendants(os.getpid() if root is None else root):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if "--remote-debugging-pipe" not in argv or any(a.startswith("--type=") for a in argv):
            continue  # not a browser process
        lists = [set(a.split("=", 1)[1].split(",")) for a in argv
                 if a.startswith("--disable-features=")]
        if len(lists) > 1:
            dropped |= set().union(*lists[:-1]) - lists[-1]
    return dropped


def launch_chromium(playwright: Any) -> Any:
    """Launch Chromium with :data:`CHROMIUM_ARGS`. If the installed Playwright disables
    features our ``--disable-features`` does not repeat (it replaces Playwright's), relaunch
    once with them added, and say so: a browser Playwright did not configure as it expects
    could misbehave in ways no test would explain."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                         timeout=60_000)
    dropped = dropped_playwright_features()
    if dropped:
        browser.close()
        print(f"browser_support: this Playwright also disables {sorted(dropped)}; relaunching "
              "with them (add them to PLAYWRIGHT_DISABLED_FEATURES)", file=sys.stderr)
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=chromium_args(dropped), timeout=60_000)
    return browser


# --------------------------------------------------------------------------------- relay


#: The relay's directories in this checkout, named so that the relay serves this tree's build
#: even when its package was imported from another checkout (a shared venv); ``args`` after
#: them override them.
TREE_DIRS = ("--static", str(ROOT / "browser"), "--library", str(ROOT / "browser"),
             "--dist", str(ROOT / "dist"),
             "--pyodide-dir", str(ROOT / "browser" / "node_modules" / "pyodide"))


class Relay:
    """``python -m webraft_relay --port 0`` in a subprocess; its output is kept for failure
    reports."""

    def __init__(self, *args: str, log_level: str = "INFO") -> None:
        self.args = args
        self.lines: deque[str] = deque(maxlen=2000)
        self._ready = threading.Event()
        self.url = ""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "webraft_relay", "--port", "0", "--log-level", log_level,
             *TREE_DIRS, *args],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, bufsize=1,
        )
        threading.Thread(target=self._pump, daemon=True).start()
        if not self._ready.wait(30) or not self.url:
            self.stop()
            raise RuntimeError(f"relay {args} did not start:\n{self.log()}")

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            match = re.search(r"listening on (https?://\S+?)/? ", line)
            if match and not self.url:
                self.url = match.group(1)
                self._ready.set()
        self._ready.set()  # exited

    def log(self) -> str:
        return "\n".join(self.lines)

    def stats(self) -> dict[str, Any]:
        from urllib.request import urlopen

        with urlopen(f"{self.url}/stats", timeout=10) as response:
            return json.load(response)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


# --------------------------------------------------------------------------------- tabs

#: Runs before the page's scripts: records which log indices the demo's `apply` persisted in
#: this page's lifetime (it writes `webraft-demo/<room>/<address>` once per applied entry).
RECORD_DEMO_WRITES = """
window.__demoWrites = [];
const __setItem = Storage.prototype.setItem;
Storage.prototype.setItem = function (key, value) {
  if (this === window.localStorage && String(key).startsWith("webraft-demo/")) {
    try { window.__demoWrites.push(JSON.parse(value).index); } catch { /* not ours */ }
  }
  return __setItem.call(this, key, value);
};
"""

#: The node's whole log and commit index, read through Pyodide (test-only introspection).
READ_LOG = """() => {
  const py = webraft.pyodide;
  py.globals.set("__e2e_node", webraft._node);
  try {
    return JSON.parse(py.runPython(`
import json as _json
_n = __e2e_node.node
_json.dumps({"first": _n.core.log.offset + 1, "last": _n.core.log.last_index,
             "commit": _n.commit_index, "applied": _n.last_applied, "term": _n.term,
             "entries": [[e.index, e.term, e.kind, e.data] for e in _n.core.log.entries]})
`));
  } finally {
    py.globals.delete("__e2e_node");
  }
}"""


class Tab:
    """One demo page; ``console`` keeps its recent console output for failure reports."""

    all: list[Tab] = []  # noqa: RUF012 - a registry for failure reports

    def __init__(self, page: Any, name: str) -> None:
        self.page = page
        self.name = name
        self.console: deque[str] = deque(maxlen=400)
        #: Uncaught errors of the page, in order (tests assert there are none).
        self.page_errors: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", self._on_page_error)
        page.on("crash", lambda _p: self.console.append("PAGE CRASHED"))
        page.on("close", lambda _p: Tab.all.remove(self) if self in Tab.all else None)
        Tab.all.append(self)

    def _on_page_error(self, error: Any) -> None:
        self.page_errors.append(str(error))
        self.console.append(f"PAGEERROR: {error}")

    def _on_console(self, message: Any) -> None:
        if message.text.strip():
            self.console.append(f"{message.type}: {message.text}")

    # -- loading ------------------------------------------------------------------------

    def goto(self, url: str) -> None:
        self.page.goto(url, wait_until="domcontentloaded", timeout=BOOT_TIMEOUT * 1000)

    def wait_booted(self, timeout: float = BOOT_TIMEOUT) -> None:
        """Wait until the demo exposes ``window.webraft``; fail with the page's visible error."""
        self.page.wait_for_function(
            "() => window.webraft !== undefined || !document.getElementById('error').hidden",
            timeout=timeout * 1000, polling=100)
        error = self.error_text()
        if error is not None:
            raise AssertionError(f"{self.name} failed to boot: {error}")

    def wait_error(self, timeout: float = BOOT_TIMEOUT) -> str:
        """Wait until the page's ``#error`` box is visible; return its text."""
        box = self.page.locator("#error")
        box.wait_for(state="visible", timeout=timeout * 1000)
        return box.inner_text()

    def error_text(self) -> str | None:
        return self.eval(
            "() => { const e = document.getElementById('error');"
            " return e.hidden ? null : e.textContent; }")

    def reload(self) -> None:
        self.page.reload(wait_until="domcontentloaded", timeout=BOOT_TIMEOUT * 1000)

    def close(self, graceful: bool = False) -> None:
        """Close the page; ``graceful`` as a user closing the tab (beforeunload, pagehide and
        unload handlers run: the page gets to say goodbye)."""
        if graceful:
            with self.page.expect_event("close", timeout=EVAL_TIMEOUT * 1000):
                self.page.close(run_before_unload=True)
        else:
            self.page.close()

    # -- reading the node --------------------------------------------------------------

    def eval(self, js: str, arg: Any = None, timeout: float = EVAL_TIMEOUT) -> Any:
        """``page.evaluate`` (a function or an expression), failing after ``timeout`` seconds
        if the promise it returns never settles (Playwright's evaluate would wait forever)."""
        source = js if _FUNCTION.match(js) else f"() => ({js})"
        return self.page.evaluate(BOUNDED_EVAL, [source, arg, timeout * 1000])

    def status(self) -> dict[str, Any]:
        return self.eval("webraft.status()")

    def wait_connected(self) -> None:
        """Wait for a page script's ``connect()``: it sets ``window.webraft``, or
        ``window.failure`` to the error's name and message, which fails the test."""
        self.page.wait_for_function("() => window.webraft !== undefined || window.failure",
                                    timeout=BOOT_TIMEOUT * 1000, polling=100)
        failure = self.eval("window.failure ?? null")
        assert failure is None, f"{self.name}: {failure}"

    def connect_alone(self, room: str, token_js: str | None = None) -> int:
        """On a page of the relay's origin (any: the demo's is not needed), import
        ``/webraft.js`` and ``connect`` as the only member of ``room``, with the token
        JavaScript expression ``token_js``; return the index of a first committed proposal."""
        self.eval(f"""(room) => {{
          import("/webraft.js").then(({{ connect }}) =>
            connect({{ room, members: ["only"], token: {token_js or "undefined"} }}))
          .then((raft) => {{ window.webraft = raft; }},
                (error) => {{ window.failure = `${{error.name}}: ${{error.message}}`; }});
        }}""", room)
        self.wait_connected()
        return self.eval("""async () => {
          for (let k = 0; k < 200 && !webraft.isLeader; k++) {
            await new Promise((r) => setTimeout(r, 50));
          }
          return webraft.propose({op: "put", key: "here", value: 1});
        }""")

    @property
    def address(self) -> str:
        return self.eval("webraft.address")

    def raft_log(self) -> dict[str, Any]:
        return self.eval(READ_LOG)

    def kv(self) -> dict[str, Any]:
        """The demo's replicated store as persisted in localStorage."""
        saved = self.eval(
            "() => localStorage.getItem(`webraft-demo/${webraft.room}/${webraft.address}`)")
        return json.loads(saved)["data"] if saved else {}

    def propose(self, command: Any) -> int:
        return self.eval("(c) => webraft.propose(c)", command)

    def propose_error(self, command: Any) -> dict[str, Any] | None:
        """Propose; return the rejection's {name, message, mayHaveCommitted} or None."""
        return self.eval(
            """(c) => webraft.propose(c).then(() => null, (e) => (
                 {name: e.name, message: e.message, mayHaveCommitted: e.mayHaveCommitted}))""",
            command)

    def __repr__(self) -> str:
        return f"<Tab {self.name}>"


#: The fixed member slots of the tests' three-tab clusters (the demo's ``?members=``).
SLOTS = ("n1", "n2", "n3")


def open_tab(context: Any, base_url: str, room: str, name: str = "",
             members: Iterable[str] | None = None, wait: bool = True, query: str = "") -> Tab:
    """Open the demo in ``room`` (in ``context``) and, by default, wait until it booted;
    ``query`` adds demo parameters (``&memberGrace=2000``...)."""
    url = f"{base_url}/?room={room}{query}"
    if members:
        url += "&members=" + ",".join(members)
    tab = Tab(context.new_page(), name or room)
    tab.goto(url)
    if wait:
        tab.wait_booted()
        tab.name = f"{name or room}/{tab.address}"
    return tab


def blank_page(context: Any, base_url: str) -> Any:
    """A page of the relay's origin that runs no script of its own (the relay's 404 text):
    a test or benchmark loads webraft.js into it.

    Not a routed page: Chromium treats a response fulfilled by Playwright as coming from a
    public address, and its Local Network Access checks then block the WebSocket to
    127.0.0.1 (net::ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS).
    """
    page = context.new_page()
    page.goto(f"{base_url}/blank-page")
    return page


def new_context(browser: Any) -> Any:
    context = browser.new_context()
    context.add_init_script(RECORD_DEMO_WRITES)
    return context


# --------------------------------------------------------------------------------- clusters


def agreed_leader(tabs: Iterable[Tab]) -> tuple[str, int] | None:
    """(leader, term) if every tab is in one term, names the same leader, and exactly one tab
    leads (that one); otherwise None."""
    statuses = [t.status() for t in tabs]
    leaders = [s["address"] for s in statuses if s["state"] == "leader"]
    terms = {s["term"] for s in statuses}
    views = {s["leader"] for s in statuses}
    if len(leaders) == 1 and len(terms) == 1 and views == {leaders[0]}:
        return leaders[0], terms.pop()
    return None


def summary(tabs: Iterable[Tab]) -> list[dict[str, Any]]:
    """What a failed wait reports: each tab's view of the cluster."""
    keys = ("address", "state", "term", "leader", "commitIndex", "lastApplied", "lastIndex",
            "connected", "online", "peers")
    out = []
    for tab in tabs:
        try:
            status = tab.status()
        except Exception as exc:  # a closed or reloading page
            out.append({"tab": tab.name, "error": repr(exc)[:200]})
            continue
        out.append({k: status[k] for k in keys})
    return out


def wait_leader(tabs: Iterable[Tab], timeout: float = CONVERGE_TIMEOUT) -> tuple[str, int]:
    tabs = list(tabs)
    return wait_for(lambda: agreed_leader(tabs), timeout,
                    what=f"one agreed leader among {[t.name for t in tabs]}",
                    describe=lambda: summary(tabs))


def caught_up(tabs: Iterable[Tab], index: int) -> bool:
    return all(t.status()["lastApplied"] >= index for t in tabs)


def wait_applied(tabs: Iterable[Tab], index: int, timeout: float = CONVERGE_TIMEOUT) -> None:
    tabs = list(tabs)
    wait_for(lambda: caught_up(tabs, index), timeout,
             what=f"index {index} applied in {[t.name for t in tabs]}",
             describe=lambda: summary(tabs))


def by_address(tabs: Iterable[Tab]) -> dict[str, Tab]:
    return {t.address: t for t in tabs}
