"""The page's helpers for a tab's hot paths: small JavaScript functions that ``webraft.js``
registers as the module ``_webraft_page`` before it imports webraft.

Owns :func:`helpers` and :func:`data_listener`. Imports nothing of webraft, and
``_webraft_page`` and ``pyodide`` only when asked, so it imports anywhere; outside a page
with ``webraft.js`` (CPython, Pyodide under Node) there are no helpers, and callers do
without.

Why JavaScript: a crossing that hands Python a string or a JavaScript object costs more than
the work these helpers do. Measured in a tab on a follower's message path (an AppendEntries
frame in, saved, answered; 1,000 frames through a fake ``WebSocket``'s event and the real
``localStorage``, median of five runs):

* ``holdsIn``: the save's check that no other tab wrote the node's meta compares it in
  JavaScript, where reading it back into Python (a few thousand characters, ~10 ns each)
  took 40 µs of a frame's 207;
* ``onData``: the ``message`` listener hands Python the event's data alone, not a proxy of
  the event to read it from: 21 µs of 277;
* ``stallWatch``: a visible tab checks regularly that its event loop ran on time (every
  20 ms when this was measured, every 50 ms since); in JavaScript that check wakes no
  Python.

Together, side by side with the wheel before them (``bench/browser_bench.py --compare DIR
--rounds 8 --cpu``): three idle tabs spent 104.6 ms/s of CPU against 129.5, and the
sequential p50 through the relay was 3.0 ms against 3.2 (over BroadcastChannel 2.3 against
2.2: no change).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def helpers() -> Any | None:
    """The page's ``_webraft_page`` module, or None where ``webraft.js`` registered none."""
    try:
        import _webraft_page  # type: ignore[import-not-found]
    except ImportError:
        return None
    return _webraft_page


def data_listener(on_data: Callable[[Any], None]) -> tuple[Any, Any]:
    """A ``message`` listener calling ``on_data(event.data)``, and the proxy to destroy once
    the listener is removed: the page's ``onData`` around a proxy of ``on_data``, or without
    a page a proxy that reads the data itself. Pyodide only."""
    from pyodide.ffi import create_proxy

    page = helpers()
    if page is None:
        proxy = create_proxy(lambda event: on_data(event.data))
        return proxy, proxy
    proxy = create_proxy(on_data)
    return page.onData(proxy), proxy
