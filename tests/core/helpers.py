"""Shared builders for the core tests: deterministic cores, the Ready loop, message filters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from webraft.core.messages import (
    COMMAND,
    AppendResponse,
    Entry,
    Message,
    VoteRequest,
    VoteResponse,
)
from webraft.core.raft import LEADER, CoreConfig, RaftCore, Ready
from webraft.core.state import ClusterConfig, HardState, SnapshotMeta, StoredState

FOLLOWER_TIMEOUT = 1.0
ELECTION_TIMEOUT = 1.5
HEARTBEAT = 0.05
QUORUM = 0.2


def entries(terms: Sequence[int], start: int = 1) -> list[Entry]:
    """Command entries of the given terms from index ``start``; the command names its slot."""
    return [Entry(t, start + i, COMMAND, f"{t}.{start + i}") for i, t in enumerate(terms)]


def stored(voters: Sequence[str] = ("a", "b", "c"), learners: Sequence[str] = (),
           log: Sequence[int] = (), term: int | None = None, vote: str | None = None,
           commit: int = 0) -> StoredState:
    """What storage would load: a bootstrap snapshot, a log given as its terms, a hard state."""
    term = max(log, default=0) if term is None else term
    state = StoredState(HardState(term, vote, commit),
                        SnapshotMeta(0, 0, ClusterConfig(tuple(voters), tuple(learners))),
                        entries(log))
    state.check()
    return state


def make_core(id: str = "a", *, voters: Sequence[str] = ("a", "b", "c"),
              learners: Sequence[str] = (), log: Sequence[int] = (), term: int | None = None,
              vote: str | None = None, commit: int = 0, applied: int = 0, settle: bool = True,
              state: StoredState | None = None, **cfg: Any) -> RaftCore:
    """A core with fixed timeouts at time 0; ``settle`` persists its first (bootstrap) Ready."""
    config = CoreConfig(id, follower_timeout=lambda: FOLLOWER_TIMEOUT,
                        election_timeout=lambda: ELECTION_TIMEOUT, heartbeat_interval=HEARTBEAT,
                        quorum_timeout=QUORUM, **cfg)
    if state is None:
        state = stored(voters, learners, log, term, vote, commit)
    core = RaftCore(config, state, applied=applied)
    if settle:
        persist(core)
    return core


def persist(core: RaftCore) -> Ready:
    """One turn of the runtime loop: take the Ready, "persist and send" it, advance."""
    rd = core.ready()
    core.advance(rd)
    return rd


def outbox(rd: Ready, kind: type[Message] = Message, to: str | None = None,
           ) -> list[tuple[str, Any]]:
    """The ``(destination, message)`` pairs of a Ready, filtered by type and destination."""
    return [(dst, m) for dst, m in rd.messages
            if isinstance(m, kind) and (to is None or dst == to)]


def msgs(rd: Ready, kind: type[Message] = Message, to: str | None = None) -> list[Any]:
    """Like :func:`outbox`, messages only."""
    return [m for _, m in outbox(rd, kind, to)]


def elect(core: RaftCore) -> None:
    """Time the core out and grant every vote it asks for until it leads.

    The new leader's first Ready (its no-op and the appends carrying it) is left pending.
    """
    core.tick(core.election_deadline)
    while core.state != LEADER:
        requests = outbox(persist(core), VoteRequest)
        assert requests, f"{core.id} did not campaign (state {core.state})"
        for dst, req in requests:
            core.step(dst, VoteResponse(req.term, True, pre=req.pre))


def make_leader(id: str = "a", *, log: Sequence[int] = (1,), term: int = 1, **kw: Any,
                ) -> RaftCore:
    """A core elected leader (of ``term + 1``) whose first Ready was persisted and sent."""
    core = make_core(id, log=log, term=term, **kw)
    elect(core)
    persist(core)
    return core


def ack(leader: RaftCore, peer: str, index: int | None = None) -> None:
    """``peer`` acknowledges ``index`` (default: the leader's whole log)."""
    last = leader.log.last_index if index is None else index
    leader.step(peer, AppendResponse(leader.term, last, True))


def exchange(cores: dict[str, RaftCore], limit: int = 1000) -> list[tuple[str, str, Message]]:
    """Run every core's Ready loop, delivering messages among ``cores``, until all are quiet.

    Messages to nodes outside ``cores`` are dropped. Returns every delivered
    ``(src, dst, message)``, in delivery order.
    """
    delivered: list[tuple[str, str, Message]] = []
    for _ in range(limit):
        busy = [core for core in cores.values() if core.has_ready()]
        if not busy:
            return delivered
        for core in busy:
            for dst, m in persist(core).messages:
                if dst in cores:
                    delivered.append((core.id, dst, m))
                    cores[dst].step(core.id, m)
    raise AssertionError("the cores did not settle")


def terms(core: RaftCore) -> list[int]:
    """The terms of the core's log, index 1 first."""
    return [e.term for e in core.log.entries]


def observable(core: RaftCore) -> tuple[Any, ...]:
    """Everything a stray message could disturb, to compare before and after a step."""
    progress = {p: (pr.match, pr.next, pr.state, pr.paused, pr.recent_active, pr.idle_beats)
                for p, pr in core.progress.items()}
    return (core.term, core.vote, core.state, core.leader, core.log.commit,
            list(core.log.entries), core.last_contact, core.election_deadline, progress,
            core.has_ready())
