"""A fake Web Storage for the LocalStorage tests.

:class:`FakeWebStorage` is dict-backed with ``getItem``/``setItem``/``removeItem``/``key(i)``/
``length``, an optional quota in characters (keys + values, as browsers count it) that makes
``setItem`` raise :class:`QuotaExceeded`, and :meth:`FakeWebStorage.crash_after` which makes
the (N+1)-th write raise :class:`Crash`, a BaseException standing for the tab dying (storage
code must not catch it, exactly as it cannot outlive its tab).
"""

from __future__ import annotations

from typing import Any


class Crash(BaseException):
    """The tab died in the middle of a write."""


class QuotaExceeded(Exception):
    """What the fake raises when a setItem would overflow its quota."""

    name = "QuotaExceededError"


class JsNull:
    """Stand-in for Pyodide's ``jsnull`` (its class is named JsNull too)."""

    def __repr__(self) -> str:
        return "jsnull"


def chars(text: str) -> int:
    """UTF-16 length, as browsers count localStorage usage."""
    return len(text) if text.isascii() else len(text.encode("utf-16-le")) // 2


class FakeWebStorage:
    def __init__(self, data: dict[str, str] | None = None, *, quota: int | None = None,
                 null: Any = None) -> None:
        self.data: dict[str, str] = dict(data or {})
        self.quota = quota
        self.null = null
        self.writes = 0  # setItem + removeItem calls since the last crash_after()
        self.sets = 0
        self.removes = 0
        self.reads = 0  # getItem calls
        self._crash_at: int | None = None
        self.dead = False

    # -- the Web Storage interface
    def getItem(self, key: str) -> Any:
        self._alive()
        self.reads += 1
        assert isinstance(key, str)
        return self.data.get(key, self.null)

    def setItem(self, key: str, value: str) -> None:
        self._write()
        assert isinstance(key, str) and isinstance(value, str)
        if self.quota is not None:
            used = self.used() - (chars(key) + chars(self.data[key]) if key in self.data else 0)
            if used + chars(key) + chars(value) > self.quota:
                raise QuotaExceeded(f"setting {key!r} exceeded the quota")
        self.sets += 1
        self.data[key] = value

    def removeItem(self, key: str) -> None:
        self._write()
        self.removes += 1
        self.data.pop(key, None)

    def key(self, i: int) -> Any:
        self._alive()
        keys = list(self.data)
        return keys[i] if 0 <= i < len(keys) else self.null

    @property
    def length(self) -> int:
        self._alive()
        return len(self.data)

    # -- test controls
    def used(self) -> int:
        return sum(chars(k) + chars(v) for k, v in self.data.items())

    def crash_after(self, n: int | None) -> None:
        """Let ``n`` more writes succeed, then die (None: never)."""
        self.writes = 0
        self._crash_at = n

    def revive(self) -> None:
        """A new tab on the same origin: same data, no pending crash."""
        self.dead = False
        self._crash_at = None

    def copy(self) -> FakeWebStorage:
        return FakeWebStorage(self.data, quota=self.quota, null=self.null)

    def _alive(self) -> None:
        if self.dead:
            raise Crash("the tab is dead")

    def _write(self) -> None:
        self._alive()
        if self._crash_at is not None and self.writes >= self._crash_at:
            self.dead = True
            raise Crash(f"died after {self.writes} writes")
        self.writes += 1
