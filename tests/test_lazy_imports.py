"""What importing webraft loads (``webraft/_lazy.py`` and the packages' ``__init__``): a tab
imports only the modules it runs, and every public name still resolves."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

#: Modules a browser tab has no use for: each would cost it start-up time in Pyodide.
NOT_IN_A_TAB = ["webraft.storage.sqlite", "webraft.transport.direct",
                "webraft.transport.tcp", "webraft.transport.memory", "webraft.transport.offers",
                "webraft.transport.websocket", "webraft.sim", "webraft.member",
                "webraft.prometheus", "websockets", "sqlite3", "ipaddress"]


def loaded_after(statement: str) -> set[str]:
    """The modules ``statement`` loads in a fresh interpreter (beyond those its start-up
    loaded: an editable install's finder imports ``ipaddress``, for one)."""
    code = ("import sys, json\nbefore = set(sys.modules)\n"
            f"{statement}\nprint(json.dumps(sorted(set(sys.modules) - before)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    return set(json.loads(done.stdout))


def test_a_tab_imports_only_what_it_runs() -> None:
    loaded = loaded_after("import webraft.browser.bridge")
    assert {"webraft.browser.transport", "webraft.storage.localstorage",
            "webraft.transport.linked"} <= loaded
    assert loaded.isdisjoint(NOT_IN_A_TAB), sorted(loaded & set(NOT_IN_A_TAB))


def test_importing_webraft_loads_only_the_errors() -> None:
    loaded = loaded_after("import webraft")
    assert "webraft.errors" in loaded
    assert not {m for m in loaded if m.startswith(("webraft.core", "webraft.runtime",
                                                   "webraft.storage", "webraft.transport"))}


@pytest.mark.parametrize("package", ["webraft", "webraft.storage", "webraft.transport"])
def test_every_public_name_resolves(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        assert getattr(value, "__name__", name) == name
        assert vars(module)[name] is value  # kept: the next lookup is a plain attribute
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        module.Nope  # noqa: B018 - the lookup is the test


def test_dir_shows_lazy_names_before_their_first_use() -> None:
    code = ("import webraft.storage, json\n"
            "print(json.dumps(['LocalStorage' in dir(webraft.storage),\n"
            "                  'webraft.storage.localstorage' in __import__('sys').modules]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert json.loads(done.stdout) == [True, False]  # listed, and dir() imported nothing
