"""What the core reports as having happened, as small immutable records in Raft's words.

The core only says what happened; the runtime decides what its users hear of it (the seed's
event names live in :mod:`webraft.runtime.events`). Imports nothing outside the core.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ConfigChanged", "CoreEvent", "ElectionStarted", "ElectionTimeout", "LeaderChanged",
           "RoleChanged"]


@dataclass(frozen=True, slots=True)
class ElectionTimeout:
    """A follower that knew a leader heard nothing from it for an election timeout."""


@dataclass(frozen=True, slots=True)
class ElectionStarted:
    """This node starts campaigning for ``term``: with a pre-vote round first (thesis §9.6)
    when ``pre``, and then no second event when the real election follows it."""

    term: int
    pre: bool = False


@dataclass(frozen=True, slots=True)
class RoleChanged:
    """The public role changed: ``"follower"``, ``"candidate"`` (a pre-candidate shows as
    one: it is campaigning) or ``"leader"``."""

    role: str


@dataclass(frozen=True, slots=True)
class ConfigChanged:
    """The cluster configuration this node follows changed (an appended, truncated or
    installed configuration entry: it may not be committed yet)."""

    voters: tuple[str, ...]
    learners: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LeaderChanged:
    """The leader this node knows changed: ``leader`` leads ``term`` (this node itself when
    it won), or None: this node knows no leader any more (it campaigns, or the leader it
    was stepped down). Proposals in flight to a former leader are resent on it."""

    leader: str | None
    term: int


CoreEvent = ElectionTimeout | ElectionStarted | RoleChanged | ConfigChanged | LeaderChanged
