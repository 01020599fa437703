"""Storages: where a node keeps its term, vote and log. Each module is one backend.

Owns the storage names, each imported when first asked for. Storages import only the core's
records and :mod:`webraft.errors`; never the runtime or a transport.

Every backend implements :class:`Storage`. The contract, which the runtime relies on:

* :meth:`Storage.load` returns what was last saved, or ``None`` for a brand-new store;
* :meth:`Storage.save` applies a :class:`~webraft.core.StorageUpdate` **atomically and
  durably**: when it returns, all of it survives a crash, and a crash during it leaves either
  all of it or none of it. The runtime sends no message that depends on an update before
  ``save`` has returned.
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:
    from .base import Storage
    from .localstorage import LocalStorage
    from .memory import MemoryStorage
    from .sqlite import SQLiteStorage

__all__ = ["LocalStorage", "MemoryStorage", "SQLiteStorage", "Storage"]

# Each backend is imported when its name is first asked for: a tab loads no SQLite storage,
# a server no localStorage one. (Neither touches sqlite3 or js before one is created.)
__getattr__, __dir__ = lazy_names(__name__, {
    "LocalStorage": ".localstorage", "MemoryStorage": ".memory", "SQLiteStorage": ".sqlite",
    "Storage": ".base"})
