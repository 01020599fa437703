"""The member tests import the relay package, and the certificates the direct links' TLS
tests make; make both importable from a plain checkout."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
TRANSPORT_TESTS = ROOT / "tests" / "transport"
if str(TRANSPORT_TESTS) not in sys.path:
    sys.path.append(str(TRANSPORT_TESTS))
