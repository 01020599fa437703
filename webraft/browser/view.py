"""The demo's cluster view: what one tab knows of every member, as a JSON-able snapshot.

Owns :class:`ClusterView`, the transport tap it watches messages through (:class:`Tap`),
and :func:`describe_config`. Reads the node's :class:`~webraft.core.status.Status`, its peers
and its timers; imports the runtime's port and the core's records, no ``js``. Nothing in
webraft imports it: ``browser/webraft.js``'s ``clusterView()`` builds one for the demo page.

Why a tap rather than the status the bridge already gives: a picture of Raft needs what no
single node records, such as when each peer was last heard (a peer present on the relay but
silent is *paused*, not online), the terms and votes its messages carried, and the messages
themselves as they fly. The tap holds the node's transport and sees every payload both ways,
at the cost of a few dictionary operations per message; everything else is computed only
when the page asks (:meth:`ClusterView.snapshot_json`, at most ten times a second).

What a tab knows depends on its role, and the snapshot says so rather than guessing: the
leader knows every follower's match and next index and hears from all of them; a follower
hears only the leader (and candidates), so the other followers' logs and liveness are
unknown to it (``None``).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable
from typing import Any

from ..core.messages import CONFIG, NOOP, SESSION, Entry, MessageError
from ..core.state import ClusterConfig
from ..core.status import Status
from ..runtime import RaftInterface
from ..runtime.port import Observed, Transport, TransportHandler
from .transport import BrowserRaft

__all__ = ["ClusterView", "Tap", "describe_config"]

#: Log entries the snapshot carries (the newest ones).
LOG_WINDOW = 24
#: Longest label of a command in the log.
LABEL_CHARS = 40
#: Messages kept between two snapshots (heartbeats are only counted); older ones are dropped.
KEEP_MESSAGES = 256
#: Groups of messages a snapshot carries at most (the newest).
MAX_GROUPS = 24
#: A member expected to talk (the leader to us, a follower to us while we lead) and silent
#: for this many heartbeat timeouts (and at least :data:`MIN_SILENCE` s) counts as paused.
SILENT_TIMEOUTS = 4
MIN_SILENCE = 1.0
#: The messages counted, not listed: a leader sends these to every follower many times a
#: second, and drawing each would hide everything else.
HEARTBEATS = frozenset({"heartbeat", "heartbeat_resp"})


def describe_config(before: ClusterConfig, after: ClusterConfig) -> str:
    """What a configuration entry changed, in words: ``"add t-1 as learner"``, ``"promote
    t-1"``, ``"remove t-2"``; ``before`` is the configuration it replaced."""
    changes: list[str] = []
    was = set(before.voters) | set(before.learners)
    for address in after.learners:
        if address in before.voters:
            changes.append(f"demote {address} to learner")
        elif address not in was:
            changes.append(f"add {address} as learner")
    for address in after.voters:
        if address in before.learners:
            changes.append(f"promote {address}")
        elif address not in was:
            changes.append(f"add {address} as voter")
    changes.extend(f"remove {address}" for address in sorted(was - set(after.members)))
    return "; ".join(changes) or "configuration unchanged"


class Tap(Observed):
    """The node's transport, every payload shown to a :class:`ClusterView` on its way."""

    def __init__(self, transport: Transport, view: ClusterView) -> None:
        super().__init__(transport)
        self.view = view

    def start(self, handler: TransportHandler) -> None:
        self.view.started(asyncio.get_running_loop().time)
        super().start(handler)

    def sent(self, to: str, payload: dict[str, Any]) -> None:
        self.view.sent(to, payload)

    def received(self, address: str, payloads: list[Any] | tuple[Any, ...]) -> None:
        self.view.received(address, payloads)


class ClusterView:
    """Watches ``node`` (through a :class:`Tap` it installs at once: build the view before
    the node starts) and answers :meth:`snapshot`: every member as this node knows it, its
    log's newest entries, and the messages since the previous snapshot."""

    def __init__(self, node: RaftInterface) -> None:
        if node.transport is None:
            raise ValueError("a cluster view watches a node built with a transport")
        self.node = node
        self.address = node.address
        node.transport = Tap(node.transport, self)
        self._clock: Callable[[], float] = lambda: 0.0  # the loop's, once started
        #: Per peer: when last heard from, when last sent to (our heartbeats restart its
        #: election timer), the highest term its messages carried, and its last known vote.
        self.heard: dict[str, float] = {}
        self.sent_at: dict[str, float] = {}
        self.terms: dict[str, int] = {}
        self.votes: dict[str, tuple[int, str]] = {}
        self.asked: dict[str, tuple[int, float]] = {}  # peer -> (term, when) of its vote request
        # Since the previous snapshot: messages (when, sender, receiver, type, payload) and
        # heartbeats counted per (sender, receiver).
        self._messages: deque[tuple[float, str, str, str, Any]] = deque(maxlen=KEEP_MESSAGES)
        self._beats: dict[tuple[str, str], list[float]] = {}  # -> [count, last time]
        self._pulled_at = 0.0
        self._labels: dict[tuple[int, int], str] = {}  # (index, term) -> label of the entry

    def started(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._pulled_at = clock()

    # -- the tap's hot path: a few dictionary operations per message ----------------------

    def sent(self, to: str, payload: Any) -> None:
        now = self._clock()
        self.sent_at[to] = now
        self._record(now, self.address, to, payload)

    def received(self, sender: str, payloads: list[Any] | tuple[Any, ...]) -> None:
        now = self._clock()
        self.heard[sender] = now
        for payload in payloads:
            kind = self._record(now, sender, self.address, payload)
            if kind is None:
                continue
            term = payload.get("term")
            if term.__class__ is not int:
                continue  # the node drops it (and reports it); so do we
            if term > self.terms.get(sender, 0):
                self.terms[sender] = term
            if kind == "vote" and not payload.get("pre"):
                self.asked[sender] = (term, now)
                self.votes[sender] = (term, sender)  # a candidate votes for itself
            elif kind == "vote_resp" and payload.get("granted") is True \
                    and not payload.get("pre"):
                self.votes[sender] = (term, self.address)

    def _record(self, now: float, sender: str, receiver: str, payload: Any) -> str | None:
        """Count a heartbeat, keep any other message; its type (None if not a message)."""
        if payload.__class__ is not dict:
            return None
        kind = payload.get("type")
        if kind.__class__ is not str:
            return None
        if kind in HEARTBEATS:
            beat = self._beats.get((sender, receiver))
            if beat is None:
                self._beats[(sender, receiver)] = [1, now]
            else:
                beat[0] += 1
                beat[1] = now
        else:
            self._messages.append((now, sender, receiver, kind, payload))
        return kind

    # -- the snapshot -----------------------------------------------------------------------

    def snapshot_json(self) -> str:
        """:meth:`snapshot` as JSON text (what ``webraft.js`` hands the page)."""
        return json.dumps(self.snapshot(), separators=(",", ":"))

    def snapshot(self) -> dict[str, Any]:
        """Everything the cluster view draws, as this node knows it now; times are
        milliseconds (ages: before now). Messages and heartbeats are those since the previous
        call: each call drains them."""
        node = self.node
        now = self._clock()
        status = node.core.status()
        cfg = node.config
        config = status.config
        me = self.address
        window = max(now - self._pulled_at, 1e-3)
        self._pulled_at = now
        follower_low = cfg.heartbeat_timeout + node.campaign_delay
        follower_high = follower_low + cfg.heartbeat_frequency
        silence = max(MIN_SILENCE, SILENT_TIMEOUTS * cfg.heartbeat_timeout)
        paused = isinstance(node, BrowserRaft) and node.paused
        online = not isinstance(node, BrowserRaft) or (node.connection.online
                                                       and node.connected)
        leading = status.role == "leader"
        leader_heard = self.heard.get(status.leader or "")

        everyone = {me, *config.members, *node.nodes, *status.progress}
        members = []
        for address in sorted(everyone):
            progress = status.progress.get(address)
            entry: dict[str, Any] = {
                "id": address, "self": address == me,
                "role": self._role(address, status.leader, status.term, config, now),
                "voter": address in config.voters, "learner": address in config.learners,
                "match": None if progress is None else progress.match,
                "next": None if progress is None else progress.next,
                "progress": None if progress is None else progress.state,
                "heardAgo": _ms_since(now, self.heard.get(address)),
                "timer": None,
            }
            if address == me:
                entry.update(term=status.term, vote=status.vote,
                             presence="paused" if paused else ("online" if online
                                                              else "offline"),
                             known=status.last_index, timer=self._own_timer(
                                 status, follower_high, cfg.election_timeout[1]))
                members.append(entry)
                continue
            vote = self.votes.get(address)
            term = self.terms.get(address)
            entry.update(term=term, vote=vote[1] if vote and vote[0] == term else None)
            expected = (leading and address in config.members) or address == status.leader
            heard = self.heard.get(address)
            if address not in node.nodes:
                presence = "offline"
            elif paused or not online:
                presence = "unknown"  # we hear nobody ourselves
            elif expected and (heard is None or now - heard > silence):
                presence = "paused"
            else:
                presence = "online"
            entry["presence"] = presence
            if leading:
                entry["known"] = None if progress is None else progress.match
                reset = self.sent_at.get(address)
            else:
                # Whatever is committed, the leader has (Leader Completeness).
                entry["known"] = status.commit_index if address == status.leader else None
                reset = leader_heard
            if (entry["role"] in ("follower", "learner") and address in config.voters
                    and reset is not None and presence == "online"):
                entry["timer"] = {"left": round((follower_low - (now - reset)) * 1000),
                                  "total": round(follower_high * 1000), "exact": False}
            members.append(entry)

        return {
            "self": me, "room": getattr(node, "room", None), "role": status.role,
            "term": status.term, "leader": status.leader,
            "member": me in config.members, "learner": me in config.learners,
            "commitIndex": status.commit_index, "lastIndex": status.last_index,
            "applied": node.last_applied,
            "snapshot": {"index": status.snapshot.index, "term": status.snapshot.term},
            "config": {"index": status.config_index, "voters": list(config.voters),
                       "learners": list(config.learners)},
            "transferee": status.transferee,
            "heartbeatMs": round(cfg.heartbeat_frequency * 1000),
            "members": members,
            "log": self._log(status),
            "messages": self._drain_messages(now),
            "heartbeats": self._drain_beats(now, window),
            "windowMs": round(window * 1000),
        }

    def _role(self, address: str, leader: str | None, term: int, config: ClusterConfig,
              now: float) -> str:
        """``leader``, ``candidate``, ``follower``, ``learner`` or, for a node in no
        configuration, ``waiting`` (to be added); for ourselves, the core's own role. A node
        that knows no configuration yet (it waits to be added) knows no one's role:
        ``unknown``."""
        if address == self.address:
            role = self.node.core.role
            if role == "follower" and address not in config.voters:
                return "learner" if address in config.learners else "waiting"
            return role
        if address == leader:
            return "leader"
        if not config.members:
            return "unknown"
        if address in config.learners:
            return "learner"
        if address not in config.voters:
            return "waiting"
        asked = self.asked.get(address)
        # It asked for our vote in this term and nobody leads it yet: still campaigning.
        if (asked is not None and asked[0] == term and leader is None
                and now - asked[1] < 2 * self.node.config.election_timeout[1]):
            return "candidate"
        return "follower"

    def _own_timer(self, status: Status, follower_high: float,
                   election_high: float) -> dict[str, Any] | None:
        """This node's election timer, exactly (the core's deadline); a leader has none, and
        nor has a node without a vote (a learner's or a waiting node's timer never fires a
        campaign)."""
        if status.role == "leader" or self.address not in status.config.voters:
            return None
        node = self.node
        # Status has no deadline; the core's attribute is the one source of it.
        left = node.core.election_deadline - node.driver.now()
        total = election_high if status.role == "candidate" else follower_high
        return {"left": round(left * 1000), "total": round(total * 1000), "exact": True}

    def _log(self, status: Status) -> list[dict[str, Any]]:
        """The newest :data:`LOG_WINDOW` entries of this node's log, each with its kind and a
        label (made once per entry); configuration entries say what they changed."""
        entries = self.node.core.last_entries(LOG_WINDOW)
        commit = status.commit_index
        labels = self._labels
        out = []
        for e in entries:
            label = labels.get((e.index, e.term))
            if label is None:
                label = labels[(e.index, e.term)] = self._label(e, status)
            out.append({"index": e.index, "term": e.term, "kind": _KINDS.get(e.kind, "?"),
                        "label": label, "committed": e.index <= commit})
        if entries and len(labels) > 2 * LOG_WINDOW:
            first = entries[0].index
            self._labels = {k: v for k, v in labels.items() if k[0] >= first}
        return out

    def _label(self, entry: Entry, status: Status) -> str:
        if entry.kind == CONFIG:
            return self._config_label(entry.index, status)
        if entry.kind == NOOP:
            return "no-op (new leader)"
        if entry.kind == SESSION and not isinstance(entry.client, str):
            return f"session {entry.client}#{entry.seq}: {_short(entry.command)}"
        return _short(entry.command)  # a plain command, or a node's implicit session's

    def _config_label(self, index: int, status: Status) -> str:
        """:func:`describe_config` of the entry at ``index``, against the configuration
        before it (an earlier entry of the log, else the snapshot's)."""
        everything = self.node.core.last_entries(status.last_index)
        # A tab that joined holds an empty bootstrap configuration, not the founder's: its
        # log's first configuration entry then replaced an unknown one. With automatic
        # membership that was the founder alone and the entry added a learner, so its voters
        # stand for what came before.
        snapshot_config = status.snapshot.config
        before: ClusterConfig | None = snapshot_config if snapshot_config.members else None
        after: ClusterConfig | None = None
        for e in everything:
            if e.index > index:
                break
            if e.kind != CONFIG:
                continue
            try:
                parsed = ClusterConfig.from_json(e.command)
            except MessageError:
                parsed = None
            if e.index == index:
                after = parsed
            else:
                before = parsed
        return ("configuration" if after is None else
                describe_config(before or ClusterConfig(after.voters), after))

    def _drain_messages(self, now: float) -> list[dict[str, Any]]:
        """The messages since the previous snapshot, grouped by (sender, receiver, type):
        under load, hundreds become a few groups, each labelled by its newest message."""
        groups: dict[tuple[str, str, str], list[Any]] = {}
        for when, sender, receiver, kind, payload in self._messages:
            group = groups.get((sender, receiver, kind))
            if group is None:
                groups[(sender, receiver, kind)] = [1, when, payload]
            else:
                group[0] += 1
                group[1] = when
                group[2] = payload
        self._messages.clear()
        newest = sorted(groups.items(), key=lambda item: item[1][1])[-MAX_GROUPS:]
        return [{"from": s, "to": r, "type": k, "count": n, "ageMs": _ms_since(now, when),
                 "label": _message_label(k, payload)}
                for (s, r, k), (n, when, payload) in newest]

    def _drain_beats(self, now: float, window: float) -> list[dict[str, Any]]:
        beats, self._beats = self._beats, {}
        return [{"from": s, "to": r, "count": int(n), "perSecond": round(n / window, 1),
                 "ageMs": _ms_since(now, when)} for (s, r), (n, when) in beats.items()]


_KINDS = {0: "command", NOOP: "noop", CONFIG: "config", SESSION: "session"}


def _ms_since(now: float, then: float | None) -> int | None:
    return None if then is None else round((now - then) * 1000)


def _short(value: Any) -> str:
    """A command as compact JSON, cut to :data:`LABEL_CHARS`."""
    try:
        text = json.dumps(value, separators=(",", ":"))
    except (TypeError, ValueError):
        text = "?"
    return text if len(text) <= LABEL_CHARS else text[:LABEL_CHARS - 1] + "…"


def _message_label(kind: str, payload: dict[str, Any]) -> str:
    """A few words on a message, from its (untrusted, not yet decoded) payload."""
    get = payload.get
    term = get("term")
    if kind == "append":
        entries = get("entries")
        count = len(entries) if isinstance(entries, list) else 0
        return (f"append {count} entr{'y' if count == 1 else 'ies'} after {get('prev_index')}"
                if count else f"append (empty), commit {get('commit')}")
    if kind == "append_resp":
        return (f"ok, have {get('index')}" if get("success") is True
                else f"no, retry from {get('index')}")
    if kind == "vote":
        return f"{'pre-vote' if get('pre') else 'vote for me'}, term {term}"
    if kind == "vote_resp":
        return f"{'pre-' if get('pre') else ''}vote {'yes' if get('granted') is True else 'no'}"
    if kind == "timeout_now":
        return "take over now"
    if kind == "snapshot":
        return f"snapshot up to {get('index')}"
    if kind == "commit":
        return f"commit {get('commit')}"
    if kind == "snapshot_resp":
        return f"snapshot {get('index')}: resume at byte {get('offset')}"
    if kind == "propose":
        commands = get("commands")
        return f"forward {len(commands) if isinstance(commands, list) else '?'} command(s)"
    if kind == "propose_resp":
        index = get("index")
        return f"appended at {index}" if _positive(index) else "not appended"
    if kind == "read":
        return "ask for a read index"
    if kind == "read_resp":
        index = get("index")
        return f"read at {index}" if _positive(index) else "read refused"
    return kind.replace("_", " ")


def _positive(value: Any) -> bool:
    """An index a node named (JSON's ``true`` is not one, though Python calls it an int)."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
