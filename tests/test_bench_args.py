"""The benchmarks this round added refuse arguments they cannot honour, before launching
anything: ``tab_path_bench --frames 0``, ``browser_bench --steps`` without the sequential
phase it times."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import browser_bench  # found through the path above
import tab_path_bench


@pytest.mark.parametrize("argv, module, message", [
    (["--frames", "0"], tab_path_bench, "--frames must be at least 1"),
    (["--steps", "--sequential", "0"], browser_bench, "--steps times the one-at-a-time"),
    (["--steps", "--compare", "{dist}"], browser_bench,
     "--steps times the one-at-a-time"),
])
def test_refused_with_a_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str], argv: list[str],
                                module: object, message: str) -> None:
    (tmp_path / "manifest.json").write_text("{}")  # another tree's dist/, as --compare wants
    argv = [arg.replace("{dist}", str(tmp_path)) for arg in argv]
    monkeypatch.setattr(sys, "argv", ["bench", *argv])
    with pytest.raises(SystemExit) as exit_:
        module.main()  # type: ignore[attr-defined]
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
