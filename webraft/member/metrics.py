"""A member's metrics in the Prometheus text format, gathered without touching the node.

Owns :class:`Metrics` (what ``GET /metrics`` on the control port answers), the
:class:`Histogram` it keeps, :class:`TimedStorage`, a :class:`~webraft.storage.Storage` that
holds the real one and times its saves, and :class:`CountedTransport`, a transport that holds
the real one and counts the snapshots sent. Imports the node's public surface only: it
listens to the node's events and reads its properties, and the control server reports the
proposals it makes. Must not import a transport or the runtime's parts (of the runtime, only
the node and the transport port; of the core, only the storage records).

Names follow etcd's (``etcd_server_is_leader`` becomes ``webraft_server_is_leader``):

==============================================  ==========  =====================================
``webraft_server_has_leader``                   gauge       1 if this member knows a leader
``webraft_server_is_leader``                    gauge       1 if this member leads
``webraft_server_leader_changes_seen_total``    counter     leaders seen (term, address), see below
``webraft_server_term``                         gauge       the current term
``webraft_server_commit_index``                 gauge       the highest entry known committed
``webraft_server_applied_index``                gauge       the last entry applied here
``webraft_server_proposals_committed_total``    counter     the control server's proposals that
                                                            committed
``webraft_server_proposals_failed_total``       counter     those that failed, by ``error`` (the
                                                            exception class)
``webraft_server_proposal_duration_seconds``    histogram   from proposing to committed and
                                                            applied here, or failed
``webraft_disk_save_duration_seconds``          histogram   one storage save (durable when done)
``webraft_snapshot_taken_total``                counter     snapshots of the store taken here
``webraft_snapshot_installed_total``            counter     snapshots received from a leader and
                                                            loaded
``webraft_snapshot_sent_total``                 counter     snapshot transfers begun (first
                                                            chunks sent, again if restarted)
``webraft_link_up{peer}``                       gauge       1 while our direct link to peer is up
``webraft_transport_connected``                 gauge       1 while the transport is connected
                                                            (the relay; direct links: listening)
==============================================  ==========  =====================================

Leader changes are counted from the node's ``leader changed`` event: each leader this
member learned of (a term and an address), as etcd counts them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

from ..core.state import StorageUpdate, StoredState
from ..prometheus import family, labels, number
from ..runtime import RaftInterface
from ..runtime.port import Observed, Transport
from ..storage import Storage
from .kv import KVStore

__all__ = ["LATENCY_BUCKETS", "CountedTransport", "Histogram", "Metrics",
           "TimedStorage"]

#: Upper bounds (seconds) of the latency histograms' buckets: 0.5 ms to 10 s.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0)


class Histogram:
    """Observations counted in cumulative buckets, with their sum (Prometheus' histogram)."""

    def __init__(self, buckets: Iterable[float] = LATENCY_BUCKETS) -> None:
        self.bounds = tuple(sorted(buckets))
        self.counts = [0] * len(self.bounds)  # not cumulative; summed when rendered
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1
                break
        self.count += 1
        self.sum += value

    def samples(self) -> list[tuple[str, str, float]]:
        """Its series for :func:`webraft.prometheus.family`: cumulative buckets, sum, count."""
        out: list[tuple[str, str, float]] = []
        running = 0
        for bound, count in zip(self.bounds, self.counts, strict=True):
            running += count
            out.append(("_bucket", labels(le=number(bound)), running))
        out.append(("_bucket", labels(le="+Inf"), self.count))
        out.append(("_sum", "", self.sum))
        out.append(("_count", "", self.count))
        return out


class TimedStorage:
    """The :class:`~webraft.storage.Storage` ``storage``, each save timed into ``saves``:
    until it returns, or until the awaitable it returns is done (the save is durable)."""

    def __init__(self, storage: Storage, saves: Histogram,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.storage = storage
        self.saves = saves
        self._clock = clock

    def load(self) -> StoredState | None:
        return self.storage.load()

    def save(self, update: StorageUpdate) -> Awaitable[None] | None:
        start = self._clock()
        pending = self.storage.save(update)
        if pending is None:
            self.saves.observe(self._clock() - start)
            return None
        future = asyncio.ensure_future(pending)  # a future (SQLite's) is returned as is
        future.add_done_callback(lambda _: self.saves.observe(self._clock() - start))
        return future


class CountedTransport(Observed):
    """The transport ``transport``, each snapshot transfer it carries counted in
    ``metrics`` (the first chunk of each: a transfer restarted from its start counts again).
    Give it to the node in place of ``transport``."""

    def __init__(self, transport: Transport, metrics: Metrics) -> None:
        super().__init__(transport)
        self.metrics = metrics

    def sent(self, to: str, payload: dict[str, Any]) -> None:
        if payload.get("type") == "snapshot" and payload.get("offset") == 0:
            self.metrics.snapshots_sent += 1


class Reachable(Protocol):
    """What the metrics read of a transport."""

    @property
    def connected(self) -> bool: ...


class Metrics:
    """The metrics of one member; :meth:`watch` its node, then :meth:`render` them."""

    def __init__(self) -> None:
        self.proposals = Histogram()
        self.saves = Histogram()
        self.committed = 0
        self.failed: dict[str, int] = {}
        self.leader_changes = 0
        self.snapshots_installed = 0
        self.snapshots_sent = 0
        self._refreshes = 0
        self._node: RaftInterface | None = None
        self._kv: KVStore | None = None
        self._transport: Reachable | None = None
        self._links: Callable[[], Mapping[str, Any]] | None = None

    def timed(self, storage: Storage) -> TimedStorage:
        """``storage``, its saves timed into :attr:`saves` (give it to the node)."""
        return TimedStorage(storage, self.saves)

    def counted(self, transport: Transport) -> CountedTransport:
        """``transport``, the snapshots it sends counted (give it to the node)."""
        return CountedTransport(transport, self)

    def watch(self, node: RaftInterface, kv: KVStore, transport: Reachable | None = None,
              links: Callable[[], Mapping[str, Any]] | None = None) -> None:
        """Follow ``node`` and its state machine ``kv`` (attached already: this listens to
        ``refresh`` too, and the node must not take that listener for the application's);
        before the node starts. ``transport`` tells whether it is connected, ``links()``
        returns a links status (``{"links": {peer: {"up": bool}}}``)."""
        self._node, self._kv, self._transport, self._links = node, kv, transport, links
        node.listen("leader changed", self._on_leader)
        node.listen("refresh", self._on_refresh)

    def proposal_done(self, seconds: float, error: BaseException | None = None) -> None:
        """A proposal of the control server committed (``error`` None) or failed."""
        self.proposals.observe(seconds)
        if error is None:
            self.committed += 1
        else:
            kind = type(error).__name__
            self.failed[kind] = self.failed.get(kind, 0) + 1

    def _on_refresh(self, _cb: Callable[..., None]) -> None:
        # The first refresh is the node asking the application where it stands, at start
        # (RaftInterface.start); every later one hands it a snapshot from a leader to load.
        self._refreshes += 1
        if self._refreshes > 1:
            self.snapshots_installed += 1

    def _on_leader(self, leader: str | None, _term: int) -> None:
        if leader is not None:  # None: an election is under way
            self.leader_changes += 1

    def render(self) -> str:
        """Every metric, in the Prometheus text format (version 0.0.4)."""
        out: list[str] = []

        def one(name: str, kind: str, text: str, value: float) -> None:
            out.extend(family(name, kind, text, [("", "", value)]))

        node = self._node
        if node is not None:
            one("webraft_server_has_leader", "gauge", "1 if this member knows a leader.",
                node.leader is not None)
            one("webraft_server_is_leader", "gauge", "1 if this member leads.",
                node.is_leader)
            one("webraft_server_leader_changes_seen_total", "counter",
                "Leaders (term and address) this member saw.", self.leader_changes)
            one("webraft_server_term", "gauge", "The current term.", node.term)
            one("webraft_server_commit_index", "gauge",
                "The highest log index known committed.", node.commit_index)
            one("webraft_server_applied_index", "gauge",
                "The last log index applied by this member.", node.last_applied)
        one("webraft_server_proposals_committed_total", "counter",
            "Proposals of the control server that committed.", self.committed)
        out.extend(family("webraft_server_proposals_failed_total", "counter",
                          "Proposals of the control server that failed, by error.",
                          [("", labels(error=kind), count)
                           for kind, count in sorted(self.failed.items())]))
        out.extend(family("webraft_server_proposal_duration_seconds", "histogram",
                          "Seconds from proposing to committed and applied here, or failed.",
                          self.proposals.samples()))
        out.extend(family("webraft_disk_save_duration_seconds", "histogram",
                          "Seconds one storage save took to be durable.", self.saves.samples()))
        one("webraft_snapshot_taken_total", "counter",
            "Snapshots of the state machine taken here.",
            self._kv.snapshots_taken if self._kv is not None else 0)
        one("webraft_snapshot_installed_total", "counter",
            "Snapshots received from a leader and loaded.", self.snapshots_installed)
        one("webraft_snapshot_sent_total", "counter",
            "Snapshot transfers begun (first chunks sent).", self.snapshots_sent)
        if self._links is not None:
            links = self._links().get("links", {})
            out.extend(family("webraft_link_up", "gauge",
                              "1 while our direct link to the peer is up.",
                              [("", labels(peer=peer), bool(link.get("up")))
                               for peer, link in sorted(links.items())]))
        if self._transport is not None:
            one("webraft_transport_connected", "gauge",
                "1 while the transport is connected (direct links: listening).",
                self._transport.connected)
        return "\n".join(out) + "\n"
