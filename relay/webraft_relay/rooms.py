"""Who is in which room: the relay's only shared state, as pure bookkeeping.

Owns :class:`Registry` and the join / replace / leave rules. Imports nothing of webraft or of
the relay, and no sockets.

No sockets and no asyncio here: a member is any object the server chooses (its per-connection
``Peer``), which keeps the join / replace / leave rules unit-testable on their own and makes the
server a thin translation of their outcomes into frames and close codes.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Generic, TypeVar

__all__ = ["JoinOutcome", "JoinResult", "Registry"]

M = TypeVar("M")


class JoinOutcome(Enum):
    """What a hello leads to."""

    JOINED = "joined"  # new address: tell the room
    REPLACED = "replaced"  # same address and session: swap connections silently
    ADDRESS_IN_USE = "address_in_use"  # same address, another session: refuse the newcomer
    ROOM_FULL = "room_full"


@dataclass(frozen=True, slots=True)
class JoinResult(Generic[M]):
    """Outcome of :meth:`Registry.join`.

    ``peers`` are the other addresses (sorted) when admitted; ``replaced`` is the member whose
    connection was taken over, which the caller must close.
    """

    outcome: JoinOutcome
    peers: list[str] = field(default_factory=list)
    replaced: M | None = None


@dataclass(slots=True)
class _Seat(Generic[M]):
    member: M
    session: bytes


def _same_session(a: bytes, b: bytes) -> bool:
    # An empty session never matches: a client that sent none cannot be impersonated by
    # another that also sent none. compare_digest: the session is a bearer secret.
    return bool(a) and hmac.compare_digest(a, b)


class Registry(Generic[M]):
    """Rooms keyed by name, each mapping address -> member.

    Rooms exist only while they have members, so an abandoned room costs nothing and its name
    is free for the next cluster.
    """

    def __init__(self, max_room_size: int) -> None:
        self.max_room_size = max_room_size
        self._rooms: dict[str, dict[str, _Seat[M]]] = {}

    def join(
        self, room: str, address: str, session: str, member: M, elsewhere: int = 0
    ) -> JoinResult[M]:
        """Seat ``member`` at ``address`` in ``room`` if the rules allow it.

        A taken address is handed over only to the same session secret: that is a tab
        reconnecting after a network blip, and the room must not see it leave and rejoin
        (Raft peers would otherwise drop and recreate their channel to it). ``elsewhere``
        counts the room's members on other relays (see :mod:`.redis_bus`) toward its size.
        """
        seats = self._rooms.get(room)
        secret = session.encode()
        if seats is not None and address in seats:
            seat = seats[address]
            if not _same_session(seat.session, secret):
                return JoinResult(JoinOutcome.ADDRESS_IN_USE)
            old = seat.member
            seat.member = member
            return JoinResult(JoinOutcome.REPLACED, self._others(seats, address), old)
        if (0 if seats is None else len(seats)) + elsewhere >= self.max_room_size:
            return JoinResult(JoinOutcome.ROOM_FULL)
        if seats is None:
            seats = self._rooms[room] = {}
        peers = self._others(seats, address)
        seats[address] = _Seat(member, secret)
        return JoinResult(JoinOutcome.JOINED, peers)

    def leave(self, room: str, address: str, member: M) -> list[M] | None:
        """Remove ``member`` if it still holds ``address``.

        Returns the remaining members to notify, or ``None`` when ``member`` had already been
        replaced (or never joined): then nobody must hear a ``leave``.
        """
        seats = self._rooms.get(room)
        if seats is None:
            return None
        seat = seats.get(address)
        if seat is None or seat.member is not member:
            return None
        del seats[address]
        if not seats:
            del self._rooms[room]
        return [s.member for s in seats.values()]

    def get(self, room: str, address: str) -> M | None:
        """The member at ``address``, for routing one message."""
        seats = self._rooms.get(room)
        if seats is None:
            return None
        seat = seats.get(address)
        return None if seat is None else seat.member

    def others(self, room: str, address: str) -> Iterator[M]:
        """Every member of ``room`` except ``address``, for broadcasts and join notices."""
        seats = self._rooms.get(room)
        if seats is None:
            return
        for addr, seat in seats.items():
            if addr != address:
                yield seat.member

    def size(self, room: str) -> int:
        """Members of ``room`` (0 if it does not exist)."""
        return len(self._rooms.get(room, ()))

    def addresses(self, room: str) -> list[str]:
        """Sorted addresses currently in ``room`` (empty if the room does not exist)."""
        return sorted(self._rooms.get(room, ()))

    @property
    def room_count(self) -> int:
        """Rooms with at least one member."""
        return len(self._rooms)

    @property
    def member_count(self) -> int:
        """Members across all rooms (connections that completed their hello)."""
        return sum(len(seats) for seats in self._rooms.values())

    @staticmethod
    def _others(seats: dict[str, _Seat[M]], address: str) -> list[str]:
        return sorted(a for a in seats if a != address)
