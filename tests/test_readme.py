"""The README's example runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_readme_seed_example_runs() -> None:
    out = _run(_examples()[0])
    assert "leads term" in out
    assert re.search(r"committed at \d+ and applied on b: \{'x': 1\}", out)


def test_readme_transport_example_runs() -> None:
    assert re.fullmatch(r"committed at \d+\n", _run(_examples()[1]))
