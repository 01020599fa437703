"""webraft in a browser tab (Pyodide): the page's WebSocket to the relay, localStorage, and the
bridge that ``browser/webraft.js`` drives.

Owns the browser's public names. The browser package may import everything on the Python side,
but runs in Pyodide only.

Python users inside Pyodide can use :class:`BrowserRaft` directly; JavaScript users get the
seed's camelCase API from ``webraft.js``, which calls :func:`webraft.browser.bridge.create`.
Nothing here imports ``js`` until a connection is opened.
"""

from .transport import BrowserConnection, BrowserRaft

__all__ = ["BrowserConnection", "BrowserRaft"]
