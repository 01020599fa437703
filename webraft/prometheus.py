"""The Prometheus text exposition format (version 0.0.4), written in one place.

Owns how a metric family, a label set and a sample value are written. Pure (strings in,
strings out) and imports nothing from webraft: ``webraft-node``'s control port and the relay
both render their metrics with it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["CONTENT_TYPE", "family", "labels", "number"]

#: The Content-Type of the text format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def family(name: str, kind: str, help_text: str,
           samples: Iterable[tuple[str, str, float]]) -> list[str]:
    """The lines of one metric family: its HELP and TYPE, then each sample given as
    ``(suffix, labels, value)`` (``suffix`` such as ``_bucket`` for a histogram's series,
    ``labels`` from :func:`labels` or empty)."""
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}",
            *(f"{name}{suffix}{label_set} {number(value)}"
              for suffix, label_set, value in samples)]


def labels(**pairs: object) -> str:
    """``{key="value",...}``, each value escaped as the format wants."""
    return "{" + ",".join(f'{key}="{_escape(str(value))}"' for key, value in pairs.items()) + "}"


def number(value: float) -> str:
    """A sample value: booleans as 0/1, integers as they are, infinities as ``+Inf``/``-Inf``."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
