"""Peers as the node sees them: the seed's :class:`NodeInstance` and the port's peer.

Owns the per-peer objects a node keeps for each reachable address. Imports nothing from
webraft at run time (the node is only a type here); a transport never needs this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .interface import RaftInterface


class NodeInstance:
    """One peer as seen from this node: subclass it and implement :meth:`write`.

    Feed whatever the transport receives from this peer to :meth:`got_data`. The address is
    the peer's identity: the transport must make sure data given to this instance really comes
    from that peer (the relay stamps senders for exactly this reason).
    """

    def __init__(self, address: str, raft: RaftInterface) -> None:
        self.address = address
        self.raft = raft

    #: Set (per peer, or in a subclass) to depart from ``config.message_timeout``.
    _message_timeout: float | None = None

    @property
    def message_timeout(self) -> float:
        """Seconds to wait for this peer to answer a forwarded request before giving up on
        it (``config.message_timeout`` unless set for this peer)."""
        own = self._message_timeout
        return self.raft.config.message_timeout if own is None else own

    @message_timeout.setter
    def message_timeout(self, seconds: float) -> None:
        self._message_timeout = seconds

    def write(self, payload: dict[str, Any]) -> None:
        """Deliver a JSON-serializable ``payload`` to the peer (best effort; Raft retries)."""
        raise NotImplementedError("NodeInstance subclasses must implement write()")

    def got_data(self, payload: Any) -> None:
        """Hand the runtime data received from this peer."""
        self.raft.got_data(self.address, payload)

    def close(self) -> None:
        """Called when the peer leaves or the node closes; release the connection here."""


class TransportPeer(NodeInstance):
    """A peer of a node that holds a :class:`~webraft.runtime.port.Transport`: writes go
    through the transport."""

    def write(self, payload: dict[str, Any]) -> None:
        transport = self.raft.transport
        if transport is not None:
            transport.send(self.address, payload)
