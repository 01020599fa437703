"""The browser transport: a webraft node in a Pyodide tab, on the page's own ``WebSocket``.

Owns the tab's relay connection (:class:`BrowserConnection`), its transport
(:class:`BrowserTransport`) and the thin constructor :class:`BrowserRaft`; imports no
``websockets`` and no TCP. The mirror image of :mod:`webraft.transport.websocket`: the same
sans-I/O :class:`~webraft.transport.relay.RelayClient` and the same
:class:`~webraft.transport.node.RelayTransport`, with JavaScript's event-driven WebSocket
underneath. ``js`` and ``pyodide`` are imported only when a connection opens, so this module
imports (and its logic can be read and type-checked) anywhere.

Browser specifics handled here:

* a WebSocket's ``send`` never blocks; it buffers. Frames are therefore taken from the client
  only while the socket's ``bufferedAmount`` is below a bound, so a stalled connection keeps
  its backlog in the client's bounded buffer (which drops the oldest) instead of in memory
  without limit;
* event handlers are JavaScript proxies of Python callables: they are created per socket,
  removed from it and only then destroyed when it is detached (otherwise every reconnect
  would leak them; and a socket still closing would call a destroyed proxy: a page error);
* ``set_online(False)`` (the demo's "go offline") closes the socket and stays away until
  ``set_online(True)``; ``paused`` (the demo's "pause") drops all traffic both ways while the
  connection stays up, like a frozen tab whose socket the relay still holds.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from ..runtime import NodeConfig, RaftInterface
from ..runtime.port import Transport
from ..storage import Storage
from ..storage.localstorage import LocalStorage
from ..transport.linked import LinkedTransport
from ..transport.node import (
    InRoom,
    RelayListener,
    RelayTransport,
    receive_frame,
    renew_token,
)
from ..transport.relay import RelayClient, RelayClosed, Welcome
from ..transport.wire import CloseCode
from .broadcast import BroadcastLink, PortExchange
from .page import data_listener, helpers
from .scheduling import EndOfTask, TabLoop

__all__ = ["BrowserConnection", "BrowserRaft", "BrowserTransport", "browser_config"]

logger = logging.getLogger("webraft.browser")

#: Frames are held back (in the client's bounded buffer) while the socket has this much unsent.
MAX_BUFFERED_BYTES = 4 << 20
#: Browser defaults of the snapshot policy (see :func:`browser_config`).
SNAPSHOT_ENTRIES = 1000
SNAPSHOT_BYTES = 256 * 1024
SNAPSHOT_TAIL = 200
#: A tab leader's lazy followers (see :class:`~webraft.NodeConfig`): each commit then waits
#: for, and wakes, only the tabs its quorum needs, the others once per this many seconds.
#: On two cores this took a third of a sequential commit's CPU and latency away; 40 ms
#: rather than 20 took a further 7-18 % of the CPU (in one room toggled in turn).
LAZY_INTERVAL = 0.04
#: Extra wait (seconds) of a hidden follower before it campaigns, unless configured.
HIDDEN_ELECTION_DELAY = 1.0
#: Longest (seconds) a tab leaves a commit index unwritten when no save carries it (see
#: :class:`BrowserRaft`): nothing waits on it, and a sequential leader's next proposal
#: writes it first.
COMMIT_WRITE_DELAY = 0.05
#: How often (seconds) a visible tab checks that its event loop ran on time. Each check
#: wakes the tab (about 0.3 ms of CPU here), so not more often than the threshold needs.
STALL_CHECK = 0.05
#: A check this late (seconds) means the page's main thread was blocked. Any block longer
#: than ``STALL_CHECK + STALL_THRESHOLD`` (100 ms) is caught: shorter than the 125 ms a block
#: needs to expire a follower's election timer by default (200 ms of silence, and the leader
#: is heard at least every 75 ms: a heartbeat interval, or 1.5 of one under load).
STALL_THRESHOLD = 0.05
#: ``WebSocket.readyState`` of an open socket.
WS_OPEN = 1
#: Relay close codes after which this tab must stop being its node.
TAKEN_OVER: Final = frozenset({CloseCode.ADDRESS_IN_USE, CloseCode.REPLACED})
#: Close code for a connection whose first frame was not our welcome (browsers only allow
#: 1000 and 3000-4999 from scripts).
CLOSE_BAD_WELCOME = 3002


class BrowserConnection:
    """Keeps a :class:`RelayClient` connected through ``js.WebSocket`` (see the module doc).

    ``listener`` may be replaced while connected (the bridge claims an address first and only
    then builds the node that listens).
    """

    def __init__(self, url: str, client: RelayClient, listener: RelayListener | None) -> None:
        self.url = url
        self.client = client
        self.listener = listener
        self.online = True
        self.connections = 0
        #: ``(code, reason)`` of the last close of a socket (1006: it never opened).
        self.last_close: tuple[int, str] | None = None
        self._ws: Any = None
        #: The current socket's event handlers, ``(event name, listener, proxy)``: the
        #: listener is the proxy of a Python handler, or a page helper calling it
        #: (:func:`~webraft.browser.page.data_listener`).
        self._handlers: list[tuple[str, Any, Any]] = []
        self._started = False
        self._closing = False
        #: Frames leave at the end of the browser task that queued them (see
        #: :mod:`~webraft.browser.scheduling`), or on a timer while the socket is backed up.
        self._flush_soon = EndOfTask(self.flush)
        self._flush_later: asyncio.TimerHandle | None = None
        self._retry: asyncio.TimerHandle | None = None
        #: True while the token provider is being asked, before a socket opens.
        self._renewing = False

    @property
    def connected(self) -> bool:
        return self._ws is not None and self.client.joined

    def start(self) -> None:
        """Open the socket (and keep reopening it); idempotent."""
        if self._started or self._closing:
            return
        if self.listener is None:
            raise RuntimeError("a BrowserConnection needs a listener before it starts")
        self._started = True
        self._open()

    def send(self, to: str, data: Any) -> None:
        """Queue ``data`` for ``to``; what one browser task queued leaves together at its
        end."""
        self.client.send(to, data)
        if self._flush_later is None:
            self._flush_soon.schedule()

    def set_online(self, online: bool) -> None:
        """Go offline (close and stay away) or come back."""
        if online == self.online or self._closing:
            return
        self.online = online
        if online:
            self.client.backoff.reset()
            self._open()
        else:
            self._cancel_retry()
            ws = self._ws
            if ws is not None:
                # Detach at once: on a dead network the closing handshake (and with it the
                # close event) may never come, and the node must be off the relay now.
                self._detach()
                self.client.connection_lost(1000, "offline")
                ws.close(1000, "offline")

    async def close(self) -> None:
        """Send what is buffered, close the socket and stop reconnecting; idempotent."""
        if self._closing:
            return
        self._flush()
        self._closing = True
        self._flush_soon.close()
        self._cancel_retry()
        if self._ws is not None:
            self._ws.close(1000, "closing")

    # ------------------------------------------------------------------ socket events

    def _open(self) -> None:
        if self._closing or not self.online or self._ws is not None or self._renewing:
            return
        if self.client.token_provider is not None:
            self._renewing = True
            asyncio.get_running_loop().create_task(self._open_with_fresh_token())
            return
        self._open_socket()

    async def _open_with_fresh_token(self) -> None:
        """Ask the page's token function (it may return a Promise) before the socket opens;
        if it fails, that attempt failed: back off and ask again."""
        try:
            await renew_token(self.client)
        except Exception as exc:  # the page's function threw or rejected
            self._renewing = False
            delay = self.client.backoff.next()
            logger.warning("%s: the token function failed (%r); retrying in %.2f s",
                           self.client.address, exc, delay)
            if not self._closing and self.online:
                self._retry = asyncio.get_running_loop().call_later(delay, self._reopen)
            return
        self._renewing = False
        if not self._closing and self.online and self._ws is None:
            self._open_socket()

    def _open_socket(self) -> None:
        from js import WebSocket  # only in Pyodide
        from pyodide.ffi import create_proxy

        ws = WebSocket.new(self.url)
        opened = create_proxy(lambda _event: self._on_open(ws))
        closed = create_proxy(lambda event: self._on_close(ws, event.code, event.reason))
        listeners = {
            "open": (opened, opened),
            "message": data_listener(lambda data: self._on_message(ws, data)),
            "close": (closed, closed),
        }
        for name, (listener, proxy) in listeners.items():
            ws.addEventListener(name, listener)
            self._handlers.append((name, listener, proxy))
        self._ws = ws

    def _on_open(self, ws: Any) -> None:
        if ws is self._ws:
            ws.send(self.client.connection_made())

    def _on_message(self, ws: Any, data: Any) -> None:
        if ws is not self._ws:
            return
        assert self.listener is not None  # checked by start()
        outcome = receive_frame(self.client, self.listener, data if isinstance(data, str)
                                else bytes(data.to_py()))
        if outcome is Welcome:
            self.connections += 1
            logger.info("%s: joined room %s", self.client.address, self.client.room)
            self._flush()
        elif outcome is None:
            ws.close(CLOSE_BAD_WELCOME, "unexpected first frame")

    def _on_close(self, ws: Any, code: int, reason: str) -> None:
        if ws is not self._ws:
            return
        self.last_close = (code, reason)
        self._detach()
        delay = self.client.connection_lost(code, reason)
        if self._closing or not self.online:
            return
        if delay is None:
            stopped = self.client.stopped
            logger.info("%s: %s", self.client.address, stopped)  # the listener reports it
            if stopped is not None and self.listener is not None:
                self.listener.relay_error(stopped)
            return
        logger.info("%s: relay connection closed (%s %s); reconnecting in %.2f s",
                    self.client.address, code, reason, delay)
        self._retry = asyncio.get_running_loop().call_later(delay, self._reopen)

    def _detach(self) -> None:
        """Forget the current socket and release its event handler proxies: removed from the
        socket first, since one being closed (``set_online(False)``) still fires ``close``."""
        ws, self._ws = self._ws, None
        for name, listener, proxy in self._handlers:
            if ws is not None:
                ws.removeEventListener(name, listener)
            proxy.destroy()
        self._handlers = []

    def _reopen(self) -> None:
        self._retry = None
        self._open()

    def _cancel_retry(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None

    def flush(self) -> None:
        """Send what is buffered now, not at the end of the task (a page being closed may
        not get there)."""
        self._flush()

    def _flush(self) -> None:
        self._flush_soon.cancel()
        if self._flush_later is not None:
            self._flush_later.cancel()
            self._flush_later = None
        ws = self._ws
        if ws is None or not self.client.joined or ws.readyState != WS_OPEN:
            return  # sent after the next welcome
        if ws.bufferedAmount > MAX_BUFFERED_BYTES:
            self._flush_later = asyncio.get_running_loop().call_later(0.05, self._flush)
            return
        for frame in self.client.take_frames():
            ws.send(frame)


class TrafficMonitor:
    """Counts messages by type and keeps the most recent ones, for dashboards."""

    def __init__(self, keep: int = 40) -> None:
        self.sent: Counter[str] = Counter()
        self.received: Counter[str] = Counter()
        self.recent: deque[tuple[float, str, str, str]] = deque(maxlen=keep)

    def record(self, direction: str, peer: str, payload: Any) -> None:
        kind = payload.get("type", "?") if isinstance(payload, dict) else "?"
        kind = kind if isinstance(kind, str) else "?"
        (self.sent if direction == "out" else self.received)[kind] += 1
        self.recent.append((time.time(), direction, peer, kind))


class BrowserTransport(RelayTransport[BrowserConnection]):
    """The relay transport of a tab, with the demo's controls: while :attr:`paused`, all
    traffic is dropped both ways (the connection stays up, like a frozen tab whose socket the
    relay still holds); :attr:`traffic` counts what goes in and out. ``before_deliver`` runs
    before each received frame reaches the node (:class:`BrowserRaft`'s stall check)."""

    def __init__(self, connection: BrowserConnection) -> None:
        super().__init__(connection)
        self.paused = False
        self.traffic = TrafficMonitor()
        self.before_deliver: Callable[[], None] | None = None

    def send(self, to: str, payload: dict[str, Any]) -> None:
        if self.outgoing(to, payload):
            super().send(to, payload)

    def _deliver(self, sender: str, messages: Sequence[Any]) -> None:
        if self.incoming(sender, messages):
            super()._deliver(sender, messages)

    def outgoing(self, to: str, payload: dict[str, Any]) -> bool:
        """May ``payload`` leave for ``to``, by whichever link? Counted if so."""
        if self.paused:
            return False
        self.traffic.record("out", to, payload)
        return True

    def incoming(self, sender: str, messages: Sequence[Any]) -> bool:
        """May ``messages`` from ``sender`` reach the node, by whichever link? Counted, and
        the stall check run, if so."""
        if self.paused:
            return False
        if self.before_deliver is not None:
            self.before_deliver()
        for payload in messages:
            self.traffic.record("in", sender, payload)
        return True


def browser_config(**timing: Any) -> NodeConfig:
    """A tab's :class:`~webraft.NodeConfig`: snapshots more often than elsewhere (every
    :data:`SNAPSHOT_ENTRIES` entries or :data:`SNAPSHOT_BYTES` bytes, keeping
    :data:`SNAPSHOT_TAIL`), since every tab of an origin shares about 5 M characters of
    localStorage and each stored entry costs its key besides its command; and lazy followers
    (:data:`LAZY_INTERVAL`, at most ``heartbeat_frequency``: see
    :attr:`~webraft.NodeConfig.lazy_interval`), since a tab's every wake-up is costly;
    ``timing`` overrides any field."""
    return NodeConfig(**{"snapshot_entries": SNAPSHOT_ENTRIES, "snapshot_bytes": SNAPSHOT_BYTES,
                         "snapshot_tail": SNAPSHOT_TAIL, "lazy_interval": LAZY_INTERVAL,
                         **timing})


class BrowserRaft(InRoom, RaftInterface):
    """A Raft node in a browser tab: a plain :class:`~webraft.RaftInterface` holding a
    :class:`BrowserTransport` on ``connection`` (whose client is ``client``) and, unless
    ``broadcast=False``, a :class:`~webraft.browser.broadcast.BroadcastLink` to the room's
    tabs of this browser and origin (through a :class:`~webraft.transport.linked.
    LinkedTransport`: a message to such a tab skips the relay), upgraded to a port per tab
    through ``ports``, the page's :class:`~webraft.browser.broadcast.PortExchange`.

    ``config`` defaults to :func:`browser_config`. Hidden tabs (:attr:`hidden`, set from the
    page's visibility): browsers throttle their timers to about one wake-up a second, so a
    hidden leader would miss heartbeats. A tab that becomes hidden while it leads hands
    leadership over (``webraft.js`` calls :meth:`~webraft.RaftInterface.transfer_leadership`),
    and a hidden follower waits ``hidden_election_delay`` seconds longer before campaigning
    (its :attr:`~webraft.RaftInterface.campaign_delay`), so that a visible member wins
    whenever one can.

    Stalls: the tabs of one browser and site share a renderer's main thread, so one tab
    booting Pyodide blocks the others' event loops for seconds. Afterwards every overdue
    timer fires at once: a follower would campaign, and its peers (their leases lapsed while
    they were blocked too) grant it, raising the term under a healthy leader (issue 12).
    But a blocked tab heard nothing because it could not listen, not because the leader went
    silent. A visible tab therefore checks every :data:`STALL_CHECK` that its loop runs on
    time (a JavaScript timer of the page's, :mod:`~webraft.browser.page`, which wakes no
    Python), and again before each received frame and before each tick of the node's timers
    (an overdue election or quorum timer may fire first); after a stall it counts the leader
    as just heard from (:meth:`~webraft.RaftInterface.stalled`), so the leader's next
    heartbeat, not the stall, decides. Outside a page there is nothing to watch.
    """

    relay: BrowserTransport

    def __init__(self, client: RelayClient, connection: BrowserConnection, *,
                 members: Iterable[str] | None = None, storage: Storage | None = None,
                 config: NodeConfig | None = None,
                 hidden_election_delay: float = HIDDEN_ELECTION_DELAY,
                 broadcast: bool = True, ports: PortExchange | None = None) -> None:
        if connection.client is not client:
            raise ValueError("the connection must carry this client")
        self.relay = BrowserTransport(connection)
        #: The BroadcastChannel link to this browser's other tabs of the room (None when
        #: turned off with ``broadcast=False``: every message then goes through the relay),
        #: which trades ports with them through ``ports``, the page's port exchange.
        self.broadcast = (BroadcastLink(client.room, client.address, gate=self.relay,
                                        ports=ports)
                          if broadcast else None)
        transport: Transport = (self.relay if self.broadcast is None
                                else LinkedTransport(self.relay, [self.broadcast]))
        super().__init__(client.address, members=members, storage=storage,
                         transport=transport, config=config or browser_config())
        self.hidden = False
        #: Extra wait of a hidden follower before it campaigns (seconds; ``webraft.js``'s
        #: ``hiddenElectionDelay``): long enough for a visible member to win first, short
        #: enough that a cluster of hidden tabs still elects someone.
        self.hidden_election_delay = hidden_election_delay
        self._stopping: asyncio.Future[None] | None = None
        self.listen("error", self._stop_if_replaced)
        #: The page's stall watch's ``check()`` (its count of stalls so far) and ``stop()``.
        self._stall_watch: tuple[Callable[[], int], Callable[[], None]] | None = None
        #: Stalls seen (event loop late by more than :data:`STALL_THRESHOLD`).
        self.stalls = 0
        self.relay.before_deliver = self.check_stall
        self.driver.before_tick = self.check_stall  # whichever comes first after a stall
        # What a round sends leaves before its entries are applied (see Driver.send_now).
        self.driver.send_now = self.send_now
        #: A LocalStorage writes a commit index alone :data:`COMMIT_WRITE_DELAY` later, on a
        #: timer (or with the next save, such as the next proposal's, if that comes first):
        #: not at the end of this task, where it would delay the outcome on its way to
        #: JavaScript and the proposal that outcome lets the page make; and not in the next
        #: task, which woke the leader once more per commit only to find it written.
        self._local = storage if isinstance(storage, LocalStorage) else None
        self._commit_timer: asyncio.TimerHandle | None = None
        self._tab_loop: TabLoop | None = None
        if self._local is not None:
            self._local.defer_commits(self._schedule_commit_write)

    def _event_loop(self, running: asyncio.AbstractEventLoop) -> asyncio.AbstractEventLoop:
        if sys.platform != "emscripten":  # no page: tests under CPython
            return running
        self._tab_loop = TabLoop(running)
        return self._tab_loop

    def _schedule_commit_write(self) -> None:
        """A commit index waits to be written: arm the timer that writes it, unless armed."""
        if self._commit_timer is None and not self.closed:
            self._commit_timer = self.loop.call_later(COMMIT_WRITE_DELAY, self._write_commit)

    def _write_commit(self) -> None:
        self._commit_timer = None
        if self._local is not None:
            self._local.flush()

    def start(self) -> None:
        super().start()
        page = helpers()
        if self._stall_watch is None and page is not None and not self.closed:
            watch = page.stallWatch(STALL_CHECK * 1000, STALL_THRESHOLD * 1000)
            self._stall_watch = (watch.check, watch.stop)

    async def close(self) -> None:
        if self._stall_watch is not None:
            self._stall_watch[1]()
            self._stall_watch = None
        await super().close()
        if self._commit_timer is not None:
            self._commit_timer.cancel()
            self._commit_timer = None
        if self._local is not None:
            self._local.flush()
        if self._tab_loop is not None:
            self._tab_loop.close()

    def check_stall(self) -> None:
        """Take the page's count of stalls; on a new one, restart the timers that measured
        the silence (:meth:`~webraft.RaftInterface.stalled`). Runs before every frame and
        every tick, and before :attr:`stalls` is shown (the count lives in JavaScript)."""
        if self._stall_watch is None:
            return  # not started, closed, or no page
        # The watch counts no lateness of a hidden page: its timers are throttled on purpose,
        # and its campaigns are delayed anyway (hidden_election_delay).
        stalls = self._stall_watch[0]()
        if stalls > self.stalls:
            self.stalls = stalls
            self.stalled()

    @property
    def connection(self) -> BrowserConnection:
        return self.relay.connection

    @property
    def paused(self) -> bool:
        """The demo's "pause": all traffic dropped both ways (see :class:`BrowserTransport`)."""
        return self.relay.paused

    @paused.setter
    def paused(self, paused: bool) -> None:
        self.relay.paused = paused

    @property
    def traffic(self) -> TrafficMonitor:
        return self.relay.traffic

    def send_now(self) -> None:
        """Send what is queued now rather than at the end of the browser task."""
        self.connection.flush()
        if self.broadcast is not None:
            self.broadcast.flush()

    def hand_over_now(self) -> str | None:
        """The page is going away: if leading, hand leadership over and send the TimeoutNow
        before returning (no further loop turn is guaranteed); returns the target."""
        target = self.transfer_leadership()
        if target is not None:
            self.drive_now()  # persists (localStorage is synchronous) and sends
            self.send_now()
        return target

    def set_hidden(self, hidden: bool) -> None:
        """The page became hidden (or visible again); a hidden leader hands over."""
        self.hidden = hidden
        self.campaign_delay = self.hidden_election_delay if hidden else 0.0
        if hidden and self.is_leader:
            self.transfer_leadership()

    def set_online(self, online: bool) -> None:
        self.connection.set_online(online)

    def _stop_if_replaced(self, exc: BaseException) -> None:
        if isinstance(exc, RelayClosed) and exc.code in TAKEN_OVER:
            # Another tab now speaks for this address (a duplicated tab shares our session):
            # stop at once, before two tabs write the same localStorage namespace.
            logger.error("%s: another tab took this address over; stopping", self.address)
            self._stopping = asyncio.ensure_future(self.close())
