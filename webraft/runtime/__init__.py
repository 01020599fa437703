"""The asyncio runtime (CPython and Pyodide): the seed's API around the sans-I/O core.

Owns the node (:class:`RaftInterface`), its configuration (:class:`NodeConfig`) and the
transport port it holds (:class:`Transport`); imports the core and the storage interface,
never a transport.
"""

from .config import NodeConfig
from .events import EventEmitter
from .interface import RaftInterface, Snapshot
from .peers import NodeInstance, TransportPeer
from .port import Transport, TransportHandler

__all__ = ["EventEmitter", "NodeConfig", "NodeInstance", "RaftInterface", "Snapshot",
           "Transport", "TransportHandler", "TransportPeer"]
