"""Storages: where a node keeps its term, vote and log. Each module is one backend.

Owns the storage names. Storages import only the core's records and :mod:`webraft.errors`; never
the runtime or a transport.

Every backend implements :class:`Storage`. The contract, which the runtime relies on:

* :meth:`Storage.load` returns what was last saved, or ``None`` for a brand-new store;
* :meth:`Storage.save` applies a :class:`~webraft.core.StorageUpdate` **atomically and
  durably**: when it returns, all of it survives a crash, and a crash during it leaves either
  all of it or none of it. The runtime sends no message that depends on an update before
  ``save`` has returned.
"""

from .base import Storage
from .localstorage import LocalStorage  # looks up js.localStorage only when one is created
from .memory import MemoryStorage
from .sqlite import SQLiteStorage  # imports sqlite3 only when one is created

__all__ = ["LocalStorage", "MemoryStorage", "SQLiteStorage", "Storage"]
