"""Lazy public names for a package's ``__init__`` (PEP 562): a name's module is imported
the first time someone asks for the name.

Owns nothing but that mechanism; imports nothing of webraft. It exists so that a browser tab,
whose start-up time is a target, imports only the modules a tab runs: ``import webraft`` or
``from webraft.storage import LocalStorage`` does not load SQLite storage, the direct TCP
links or the in-memory hub, and each module loaded in Pyodide costs milliseconds (most of them
creating dataclasses). Type checkers see the names through the package's ``TYPE_CHECKING``
imports.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, modules: Mapping[str, str]
               ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module ``__getattr__`` and ``__dir__`` for ``package``: the first resolves ``name`` by
    importing ``package + modules[name]`` (a relative module name, such as ``".sqlite"``) and
    keeps the value in the package, so the next lookup is an ordinary attribute; the second
    lists the lazy names beside those already loaded, so that ``dir()``, ``help()`` and
    completion show them before their first use."""

    def __getattr__(name: str) -> Any:
        where = modules.get(name)
        if where is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *modules})

    return __getattr__, __dir__
