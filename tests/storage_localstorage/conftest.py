"""By default these tests store every entry in runs (``inline_chars = 0``), the layout their
key and write-count assertions describe; a test module that sets the inline tail itself
overrides the ``inline_chars`` fixture."""

from __future__ import annotations

import pytest

from webraft.storage import LocalStorage


@pytest.fixture(autouse=True)
def inline_chars(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(LocalStorage, "inline_chars", 0)
    return 0
