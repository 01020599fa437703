"""Majority arithmetic over a set of voters, kept apart so it can be read and tested alone.

Owns the majority and commit-index rules. Imports nothing of webraft.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

WON, LOST, PENDING = "won", "lost", "pending"


def majority(n: int) -> int:
    """Smallest number of voters that forms a majority of ``n``."""
    return n // 2 + 1


def committed_index(voters: Iterable[str], match: Mapping[str, int]) -> int:
    """The highest index stored by a majority of ``voters`` (missing voters count as 0)."""
    acked = sorted([match.get(v, 0) for v in voters], reverse=True)  # (a list: inlined)
    return acked[majority(len(acked)) - 1] if acked else 0


def vote_result(voters: Iterable[str], votes: Mapping[str, bool]) -> str:
    """:data:`WON` once a majority granted, :data:`LOST` once a majority refused."""
    voters = list(voters)
    need = majority(len(voters))
    granted = sum(1 for v in voters if votes.get(v) is True)
    refused = sum(1 for v in voters if votes.get(v) is False)
    if granted >= need:
        return WON
    return LOST if refused >= need else PENDING
