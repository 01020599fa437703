"""Several relay processes serving the same rooms through Redis: claims, presence, pub/sub.

Owns :class:`RedisBus`, its key and channel names and the check of what other relays publish.
Imports :mod:`.redis_resp` and :mod:`webraft.transport.wire`; no websockets, and nothing of the
server (it talks to it through :class:`BusListener`).

How relays share a room (``docs/relay-protocol.md``, "Several relays on Redis"):

* **Claims.** An address belongs to one connection across all relays: its relay claims
  ``webraft/claim/<room>/<address>`` with ``SET NX PX`` (value: the relay's id and a digest of
  the session, never the session itself) and refreshes it while connected. A claim held by
  another relay with the same session is taken over (that relay closes its connection with
  4009); with another session the hello is refused with 4008, as on one relay.
* **Presence.** ``webraft/members/<room>`` lists the addresses that have a claim; a member
  whose claim has expired (its relay died) is dropped by whichever relay looks next, and every
  relay serving the room tells its own members ``leave``. Each relay looks every third of the
  TTL, which is also when it refreshes its own claims (one script per room).
* **Pub/sub.** Sharded (``SSUBSCRIBE``/``SPUBLISH``, Redis >= 7), two channels per served
  room: ``webraft/room/<room>`` for joins, leaves, take-overs and broadcasts, and
  ``webraft/room/<room>/<relay>`` for messages to that relay's members. Messages between
  members of one relay never touch Redis.

What arrives from Redis is untrusted: a malformed message, or one whose sender the presence
does not place on the relay that published it, is dropped and counted (``bus_invalid``) with
a log line. ``from`` is stamped by the relay that accepted the sender's connection; the
receiving relay checks the frame names the sender the header names and forwards its text.

While Redis is unreachable, every relay keeps routing among its own members and admits new
ones on its local rules; on reconnect (with back-off) it resubscribes, re-claims its
members' addresses (a conflict closes the later connection with 4008) and announces them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import random
import re
import secrets
from collections import Counter
from dataclasses import dataclass
from enum import Enum
from typing import Final, Protocol

from webraft.transport.wire import DECODER, is_name

from .redis_resp import (
    RedisConnection,
    RedisError,
    RedisUnavailable,
    RedisUrl,
    Reply,
    parse_redis_url,
)

__all__ = ["BusError", "BusListener", "Claim", "RedisBus", "check_delivery"]

log = logging.getLogger("relay.redis")

PREFIX: Final = "webraft/"
#: A Redis command the relay waits for (a claim, a subscription) gives up after this long and
#: the relay carries on as if Redis were down.
COMMAND_TIMEOUT: Final = 2.0
BACKOFF_MIN: Final = 0.1
BACKOFF_MAX: Final = 5.0
_RELAY_ID: Final = re.compile(r"[0-9a-f]{16}")
_KINDS: Final = frozenset({"join", "leave", "replace", "bcast", "msg"})

# Refresh our claims (re-claiming those Redis lost), list the room's live members and drop
# the dead. KEYS[1]: the room's member set; ARGV: ttl ms, claim key prefix, then (address,
# value) pairs. Returns {lost (address, holder) pairs, live (address, value) pairs,
# re-claimed addresses}. Single Redis server only: the claim keys are derived, not declared.
_SYNC: Final = """
local ttl, prefix = ARGV[1], ARGV[2]
local lost, live, again = {}, {}, {}
for i = 3, #ARGV, 2 do
  local key = prefix .. ARGV[i]
  local v = redis.call('GET', key)
  if v == ARGV[i + 1] then
    redis.call('PEXPIRE', key, ttl)
  elseif not v then
    redis.call('SET', key, ARGV[i + 1], 'PX', ttl)
    redis.call('SADD', KEYS[1], ARGV[i])
    again[#again + 1] = ARGV[i]
  else
    lost[#lost + 1] = ARGV[i]
    lost[#lost + 1] = v
  end
end
for _, a in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local v = redis.call('GET', prefix .. a)
  if v then
    live[#live + 1] = a
    live[#live + 1] = v
  else
    redis.call('SREM', KEYS[1], a)
  end
end
return {lost, live, again}
"""
_SYNC_SHA: Final = hashlib.sha1(_SYNC.encode()).hexdigest()
# Replace a claim only if it still holds the value we saw (a take-over by the same session).
_SWAP: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""
# Give a claim up only if it is still ours.
_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[2])
  return 1
end
return 0
"""


def claim_key(room: str, address: str) -> str:
    # "/" is not a name character, so room "a:b" + address "c" and "a" + "b:c" differ.
    return f"{PREFIX}claim/{room}/{address}"


def members_key(room: str) -> str:
    return f"{PREFIX}members/{room}"


def room_channel(room: str) -> str:
    return f"{PREFIX}room/{room}"


def relay_channel(room: str, relay: str) -> str:
    return f"{PREFIX}room/{room}/{relay}"


class Claim(Enum):
    """What Redis says about an address a hello asks for."""

    OWNED = "owned"  # free, now ours
    TAKEN_OVER = "taken_over"  # held on another relay by the same session: now ours
    LOCAL = "local"  # held by this relay: the local rules decide
    IN_USE = "in_use"  # held on another relay by another session
    UNAVAILABLE = "unavailable"  # Redis is down: the local rules decide, re-claimed later


class BusError(Exception):
    """A message from Redis that the relay does not accept."""


class BusListener(Protocol):
    """What the relay does with the room's news from other relays."""

    def remote_joined(self, room: str, address: str) -> None: ...

    def remote_left(self, room: str, address: str) -> None: ...

    def remote_delivery(self, room: str, to: str | None, frame: str, count: int) -> None:
        """``frame`` (checked; ``count`` messages) for local member ``to``, or for every
        local member (``None``)."""

    def claim_lost(self, room: str, address: str, same_session: bool) -> None:
        """Another connection holds the address now: close ours (4009 if the same session
        took it over elsewhere, else 4008), without telling the room it left."""


def _digest(session: str) -> str:
    # "-" for no session: it never matches, as on one relay (see rooms._same_session).
    return hashlib.sha256(session.encode()).hexdigest()[:32] if session else "-"


def _same_session(a: str, b: str) -> bool:
    return a != "-" and hmac.compare_digest(a, b)


def check_delivery(frame: str, sender: str, broadcast: bool) -> int:
    """Check that ``frame`` is a delivery from ``sender`` as relays build them (``msg``, or
    ``batch`` unless ``broadcast``), with JSON data, and count its messages; raises BusError
    otherwise.

    The text is forwarded as is, so its ``from`` must be the sender and nothing may follow
    the data: the layout is fixed by :func:`.protocol.msg_frame` and :func:`.protocol.batch_frame`.
    """
    msg_head = '{"type":"msg","from":"' + sender + '","data":'
    tail = ',"broadcast":true}' if broadcast else "}"
    try:
        if frame.startswith(msg_head) and frame.endswith(tail):
            DECODER.decode(frame[len(msg_head) : len(frame) - len(tail)])
            return 1
        batch_head = '{"type":"batch","from":"' + sender + '","msgs":'
        if not broadcast and frame.startswith(batch_head) and frame.endswith("]}"):
            msgs = DECODER.decode(frame[len(batch_head) : -1])
            if isinstance(msgs, list):
                return len(msgs)
    except (ValueError, RecursionError):
        pass
    raise BusError(f"not a delivery from {sender!r}")


@dataclass(slots=True)
class _Remote:
    relay: str
    since: float  # loop time it was learnt, so an older presence listing cannot undo it


@dataclass(slots=True)
class _Room:
    """A room this relay serves: who is on other relays, who left recently."""

    remote: dict[str, _Remote]
    gone: dict[str, float]  # address -> loop time of its leave, same reason as _Remote.since


class RedisBus:
    """This relay's link to the others through Redis (see the module doc).

    ``ttl`` (seconds) is how long a claim outlives its relay; claims are refreshed and the
    presence looked at every ``ttl / 3``.
    """

    def __init__(self, url: str, ttl: float, listener: BusListener) -> None:
        self.url: RedisUrl = parse_redis_url(url)
        self.ttl = ttl
        self.listener = listener
        self.relay_id = secrets.token_hex(8)
        # connects, published, received, invalid, unknown_sender
        self.counts: Counter[str] = Counter()
        self._rooms: dict[str, _Room] = {}
        self._claims: dict[str, dict[str, str]] = {}  # room -> address -> our claim value
        self._cmd: RedisConnection | None = None
        self._sub: RedisConnection | None = None
        self._subscribing: dict[bytes, asyncio.Future[None]] = {}
        self._grace_until = 0.0
        self._last_warning = -1.0
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting; waits up to :data:`COMMAND_TIMEOUT` for Redis, then goes on
        (local rooms work without it)."""
        self._task = asyncio.get_running_loop().create_task(self._run())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(COMMAND_TIMEOUT):
                await self._connected.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for conn in (self._cmd, self._sub):
            if conn is not None:
                conn.close()

    @property
    def up(self) -> bool:
        return (
            self._cmd is not None and self._cmd.is_open
            and self._sub is not None and self._sub.is_open
        )

    async def _run(self) -> None:
        delay = BACKOFF_MIN
        failures = 0
        while True:
            try:
                cmd = await RedisConnection.open(self.url, timeout=COMMAND_TIMEOUT)
                try:
                    sub = await RedisConnection.open(
                        self.url, timeout=COMMAND_TIMEOUT, on_push=self._on_push
                    )
                except BaseException:
                    cmd.close()
                    raise
            except (OSError, TimeoutError, RedisError) as exc:
                log.log(logging.WARNING if failures == 0 else logging.DEBUG,
                        "redis: cannot connect to %s:%d: %r", self.url.host, self.url.port, exc)
                failures += 1
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            if failures or self.counts["connects"]:
                log.warning("redis: connected again to %s:%d", self.url.host, self.url.port)
            self.counts["connects"] += 1
            failures, delay = 0, BACKOFF_MIN
            self._cmd, self._sub = cmd, sub
            # Other relays re-claim their members at their own pace: for one TTL, a listing
            # that lacks a member does not make it leave.
            self._grace_until = asyncio.get_running_loop().time() + self.ttl
            for room in self._rooms:
                sub.send("SSUBSCRIBE", room_channel(room), relay_channel(room, self.relay_id))
            self._connected.set()
            try:
                await self._keep_alive(cmd, sub)
            finally:
                cmd.close()
                sub.close()
                self._cmd = self._sub = None
                self._connected.clear()
                for waiter in self._subscribing.values():
                    if not waiter.done():
                        waiter.set_result(None)
                self._subscribing.clear()
            log.warning("redis: connection lost; local rooms carry on, reconnecting")

    async def _keep_alive(self, cmd: RedisConnection, sub: RedisConnection) -> None:
        """Refresh claims and presence every ttl/3 until either connection closes, or a
        round takes longer than the TTL (a Redis that stopped answering: our claims expire
        anyway by then). Not sooner: on a busy machine a slow answer is no reason to drop
        the connection and the messages in flight on it."""
        while cmd.is_open and sub.is_open:
            try:
                async with asyncio.timeout(max(self.ttl, COMMAND_TIMEOUT)):
                    # Pipelined: every room's script leaves in one write.
                    await asyncio.gather(*(self._sync(room) for room in list(self._rooms)))
            except (RedisUnavailable, TimeoutError):
                return
            await asyncio.wait({cmd.closed, sub.closed}, timeout=self.ttl / 3,
                               return_when=asyncio.FIRST_COMPLETED)

    # -- rooms -------------------------------------------------------------------------------

    async def enter(self, room: str) -> None:
        """Serve ``room``: subscribe to its channels and learn who is on other relays (before
        the first local member's welcome, which lists them)."""
        if room in self._rooms:
            return
        self._rooms[room] = _Room({}, {})
        sub = self._sub
        if sub is None or not self.up:
            return  # subscribed and synced on reconnect
        channel = relay_channel(room, self.relay_id)
        waiter = asyncio.get_running_loop().create_future()
        self._subscribing[channel.encode()] = waiter
        try:
            sub.send("SSUBSCRIBE", room_channel(room), channel)
            async with asyncio.timeout(COMMAND_TIMEOUT):
                await waiter
                await self._sync(room)
        except (RedisUnavailable, TimeoutError) as exc:
            log.warning("redis: cannot enter room %s yet: %r", room, exc)

    def forget(self, room: str) -> None:
        """The last local member of ``room`` left: stop hearing about it."""
        if self._rooms.pop(room, None) is None:
            return
        with contextlib.suppress(RedisUnavailable):
            if self._sub is not None:
                self._sub.send("SUNSUBSCRIBE", room_channel(room),
                               relay_channel(room, self.relay_id))

    def elsewhere(self, room: str) -> list[str]:
        """Members of ``room`` on other relays, as this relay knows them."""
        served = self._rooms.get(room)
        return [] if served is None else list(served.remote)

    def is_remote(self, room: str, address: str) -> bool:
        served = self._rooms.get(room)
        return served is not None and address in served.remote

    # -- claims ------------------------------------------------------------------------------

    async def claim(self, room: str, address: str, session: str) -> Claim:
        """Ask Redis for ``address`` (see :class:`Claim`); only a plain ``SET NX`` when free."""
        cmd = self._cmd
        if cmd is None or not self.up:
            return Claim.UNAVAILABLE
        key, value = claim_key(room, address), self._value(session)
        ttl_ms = int(self.ttl * 1000)
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT):
                held = await cmd.call("SET", key, value, "NX", "PX", ttl_ms, "GET")
                if held is None:
                    return Claim.OWNED
                if isinstance(held, RedisError | list | int):
                    log.warning("redis: unexpected answer to a claim: %r", held)
                    return Claim.UNAVAILABLE
                holder = _parse_value(held)
                if holder is None or holder[0] == self.relay_id:
                    return Claim.LOCAL
                if not _same_session(holder[1], _digest(session)):
                    return Claim.IN_USE
                swapped = await cmd.call("EVAL", _SWAP, 1, key, held, value, ttl_ms)
        except (RedisUnavailable, TimeoutError):
            return Claim.UNAVAILABLE
        if swapped != 1:
            return Claim.IN_USE  # another connection won the race
        self._publish(room_channel(room), f"replace {self.relay_id} {address}\n")
        return Claim.TAKEN_OVER

    def seated(self, room: str, address: str, session: str, announce: bool) -> None:
        """A local connection now holds ``address``: keep its claim, and tell the other relays
        (``announce``) unless it only moved or reconnected."""
        value = self._claims.setdefault(room, {})[address] = self._value(session)
        served = self._rooms.get(room)
        if served is not None:
            served.remote.pop(address, None)
            served.gone.pop(address, None)
        cmd = self._cmd
        if cmd is None:
            return
        with contextlib.suppress(RedisUnavailable):
            cmd.send("SET", claim_key(room, address), value, "PX", int(self.ttl * 1000))
            cmd.send("SADD", members_key(room), address)
            if announce:
                self._publish(room_channel(room), f"join {self.relay_id} {address}\n")

    def release(self, room: str, address: str) -> None:
        """A local member left for good (or was refused after its claim): free the address
        and tell the other relays."""
        value = self._unclaim(room, address)
        cmd = self._cmd
        if value is None or cmd is None:
            return
        with contextlib.suppress(RedisUnavailable):
            cmd.send("EVAL", _RELEASE, 2, claim_key(room, address), members_key(room),
                     value, address)
            self._publish(room_channel(room), f"leave {self.relay_id} {address}\n")

    def abandon(self, room: str, address: str, session: str) -> None:
        """Free a claim taken for a hello that was then refused (the room was full); the
        other relays never heard of it, so no leave."""
        cmd = self._cmd
        if cmd is not None:
            with contextlib.suppress(RedisUnavailable):
                cmd.send("EVAL", _RELEASE, 2, claim_key(room, address), members_key(room),
                         self._value(session), address)

    def _unclaim(self, room: str, address: str) -> str | None:
        claims = self._claims.get(room)
        if claims is None:
            return None
        value = claims.pop(address, None)
        if not claims:
            del self._claims[room]
        return value

    def _value(self, session: str) -> str:
        return f"{self.relay_id} {_digest(session)}"

    # -- messages to other relays ------------------------------------------------------------

    def forward(self, room: str, to: str, sender: str, frame: str) -> bool:
        """Send ``frame`` (from local ``sender``) to ``to`` on its relay; False if Redis is
        down or ``to`` is not known elsewhere."""
        served = self._rooms.get(room)
        remote = None if served is None else served.remote.get(to)
        if remote is None:
            return False
        return self._publish(relay_channel(room, remote.relay),
                             f"msg {self.relay_id} {sender} {to}\n{frame}")

    def broadcast(self, room: str, sender: str, frame: str) -> None:
        """Send a broadcast from local ``sender`` to the room's members on other relays."""
        served = self._rooms.get(room)
        if served is not None and served.remote:
            self._publish(room_channel(room), f"bcast {self.relay_id} {sender}\n{frame}")

    def _publish(self, channel: str, message: str) -> bool:
        cmd = self._cmd
        if cmd is None:
            return False
        try:
            cmd.send("SPUBLISH", channel, message)
        except RedisUnavailable:
            return False
        self.counts["published"] += 1
        return True

    # -- what Redis tells us -----------------------------------------------------------------

    def _on_push(self, reply: Reply) -> None:
        if not isinstance(reply, list) or len(reply) != 3:
            log.warning("redis: unexpected push %.80r", reply)
            return
        kind, channel, body = reply
        if not isinstance(kind, bytes) or not isinstance(channel, bytes):
            log.warning("redis: unexpected push %.80r", reply)
            return
        if kind == b"ssubscribe":
            waiter = self._subscribing.pop(channel, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            return
        if kind != b"smessage" or not isinstance(body, bytes):
            return  # sunsubscribe confirmations
        try:
            self._on_message(channel.decode(), body.decode())
        except (BusError, UnicodeDecodeError) as exc:
            self._invalid(f"dropped a message on {channel[:80]!r}: {exc}")

    def _invalid(self, text: str) -> None:
        """Count a bad message from Redis; log it, at most once a second (a broken or hostile
        Redis must not flood the relay's log)."""
        self.counts["invalid"] += 1
        now = asyncio.get_running_loop().time()
        if now - self._last_warning >= 1.0:
            self._last_warning = now
            log.warning("redis: %s (%d invalid so far)", text, self.counts["invalid"])

    def _on_message(self, channel: str, message: str) -> None:
        rest = channel.removeprefix(PREFIX + "room/")
        room = rest.split("/", 1)[0]
        served = self._rooms.get(room)
        if served is None or rest == channel:
            return  # a room we just left
        head, sep, frame = message.partition("\n")
        fields = head.split(" ")
        if not sep or len(fields) not in (3, 4) or fields[0] not in _KINDS:
            raise BusError("bad header")
        kind, relay, address = fields[:3]
        if _RELAY_ID.fullmatch(relay) is None or not is_name(address):
            raise BusError("bad relay id or address")
        if relay == self.relay_id:
            return  # our own publication, echoed on the room channel
        self.counts["received"] += 1
        now = asyncio.get_running_loop().time()
        known = served.remote.get(address)
        if kind == "join" and address in self._claims.get(room, {}):
            return  # we hold it: the claims decide (see _sync), not a late announcement
        if kind == "join" or kind == "replace":
            served.gone.pop(address, None)
            served.remote[address] = _Remote(relay, now)
            if kind == "replace" and self._unclaim(room, address) is not None:
                self.listener.claim_lost(room, address, same_session=True)
            elif known is None and kind == "join":
                self.listener.remote_joined(room, address)
            return
        if kind == "leave":
            if known is not None and known.relay == relay:
                del served.remote[address]
                served.gone[address] = now
                self.listener.remote_left(room, address)
            return
        if known is None or known.relay != relay:
            # Also a race (a broadcast sent before this relay's first listing of the room
            # arrived): not a malformed message, so counted apart, and logged at debug only.
            self.counts["unknown_sender"] += 1
            log.debug("redis: dropped a message from %r, not a member on relay %s", address, relay)
            return
        if kind == "bcast":
            check_delivery(frame, address, broadcast=True)
            self.listener.remote_delivery(room, None, frame, 1)
            return
        to = fields[3] if len(fields) == 4 else ""
        if not is_name(to):
            raise BusError("bad destination")
        count = check_delivery(frame, address, broadcast=False)
        self.listener.remote_delivery(room, to, frame, count)

    async def _sync(self, room: str) -> None:
        """Refresh our claims in ``room`` and reconcile who is on other relays."""
        cmd = self._cmd
        if cmd is None:
            raise RedisUnavailable("not connected")
        mine = list(self._claims.get(room, {}).items())
        started = asyncio.get_running_loop().time()
        args: tuple[str | int, ...] = (
            1, members_key(room), int(self.ttl * 1000), claim_key(room, ""),
            *[x for pair in mine for x in pair],
        )
        # By digest: the script is sent once per Redis (it runs for every room, every ttl/3).
        reply = await cmd.call("EVALSHA", _SYNC_SHA, *args)
        if isinstance(reply, RedisError) and str(reply).startswith("NOSCRIPT"):
            reply = await cmd.call("EVAL", _SYNC, *args)
        served = self._rooms.get(room)
        if served is None:
            return
        claims = self._claims.get(room, {})  # as it is now: members came and went meanwhile
        try:
            lost, live, again = _parse_sync(reply)
        except BusError as exc:
            self._invalid(f"bad presence listing for room {room}: {exc}")
            return
        for address in again:
            self._publish(room_channel(room), f"join {self.relay_id} {address}\n")
        values = dict(mine)
        for address, (relay, digest) in lost:
            value = claims.get(address)
            if value is None or value != values.get(address):
                continue  # released or re-seated meanwhile
            self._unclaim(room, address)
            served.remote[address] = _Remote(relay, started)  # it lives on there
            self.listener.claim_lost(room, address, _same_session(digest, value.split(" ")[1]))
        listed = {a: relay for a, (relay, _) in live if relay != self.relay_id}
        for address, relay in listed.items():
            known = served.remote.get(address)
            left = served.gone.get(address)
            if address in claims or (left is not None and left >= started):
                continue
            if known is None:
                served.remote[address] = _Remote(relay, started)
                self.listener.remote_joined(room, address)
            elif known.relay != relay:
                known.relay = relay
        if started < self._grace_until:
            return
        for address, known in list(served.remote.items()):
            if address not in listed and known.since < started:
                del served.remote[address]
                self.listener.remote_left(room, address)
        served.gone = {a: t for a, t in served.gone.items() if t >= started}


def _parse_value(value: bytes) -> tuple[str, str] | None:
    """A claim's value: (relay id, session digest), or None if it is not one."""
    try:
        relay, digest = value.decode().split(" ")
    except (UnicodeDecodeError, ValueError):
        return None
    if _RELAY_ID.fullmatch(relay) is None:
        return None
    return relay, digest


def _pairs(items: Reply) -> list[tuple[str, tuple[str, str]]]:
    if not isinstance(items, list) or len(items) % 2:
        raise BusError("not a list of pairs")
    out = []
    for address, value in zip(items[::2], items[1::2], strict=True):
        if not isinstance(address, bytes) or not isinstance(value, bytes):
            raise BusError("not strings")
        name, parsed = address.decode(errors="replace"), _parse_value(value)
        if not is_name(name) or parsed is None:
            raise BusError(f"bad member {address[:40]!r}")
        out.append((name, parsed))
    return out


def _parse_sync(reply: Reply) -> tuple[list[tuple[str, tuple[str, str]]],
                                       list[tuple[str, tuple[str, str]]], list[str]]:
    if not isinstance(reply, list) or len(reply) != 3:
        raise BusError(f"unexpected reply {reply!r:.80}")
    again = reply[2]
    if not isinstance(again, list) or not all(isinstance(a, bytes) for a in again):
        raise BusError("bad re-claimed list")
    return _pairs(reply[0]), _pairs(reply[1]), [a.decode(errors="replace") for a in again
                                                if isinstance(a, bytes)]
