"""webraft relay: a thin WebSocket message router for Raft nodes running in browser tabs.

Owns the relay's public names. Of webraft, the relay imports only :mod:`webraft.transport.wire`;
besides, only ``websockets`` and the standard library.

Browser tabs cannot listen on sockets, so the nodes of a webraft cluster reach each other through
this relay: every tab opens one WebSocket, joins a *room* (a cluster) under an *address* (its
node id), and the relay forwards ``send`` / ``broadcast`` / ``batch`` frames between members of the
same room. It never interprets the Raft payload and keeps no history: a message to a peer that is
not connected, or too slow to keep up, is dropped, the way a lossy network would drop it.

The same port serves ``/healthz``, ``/stats`` and the static files of the browser demo. The wire
format is specified in ``docs/relay-protocol.md``, :mod:`webraft.transport.wire` (what both
ends share) and :mod:`webraft_relay.protocol`.

Run it with ``python -m webraft_relay`` (or the ``webraft-relay`` console script).
"""

from .config import RelayConfig
from .protocol import ErrorCode, issue_token, room_token
from .server import Relay

__all__ = ["ErrorCode", "Relay", "RelayConfig", "issue_token", "room_token"]
