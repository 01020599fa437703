"""Prometheus text exposition of the relay's counters, rendered from its ``/stats`` dict.

Pure (a dict in, text out) and imports nothing from the relay; the text format itself is
:mod:`webraft.prometheus`'s, shared with ``webraft-node``. Labels come only from small closed
sets (drop and refusal reasons, close codes folded by :func:`close_label`); never a room, an
address or a client IP, which would give every room its own series.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from webraft.prometheus import family, labels
from webraft.transport.wire import CloseCode

__all__ = ["close_label", "render", "resident_bytes"]

# Close codes worth a series of their own: the relay's, and the standard ones a browser or
# websockets sends. Any other (a client may close with any 3000-4999 code) is "other".
_KNOWN_CLOSES = frozenset({1000, 1002, 1003, 1005, 1006, 1008, 1010} | set(CloseCode))


def close_label(code: int | None) -> str:
    """The ``code`` label for a connection's close code (``None``: no close frame)."""
    if code is None:
        return "none"
    return str(code) if code in _KNOWN_CLOSES else "other"


def resident_bytes() -> int | None:
    """This process's resident memory, from /proc (Linux); ``None`` elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


# (name, type, help, key in the stats dict, label name for dict values or None)
_SERIES: tuple[tuple[str, str, str, str, str | None], ...] = (
    ("connections", "gauge", "Open WebSocket connections.", "connections", None),
    ("members", "gauge", "Connections that joined a room.", "members", None),
    ("rooms", "gauge", "Rooms with at least one member.", "rooms", None),
    ("messages_routed_total", "counter", "Messages delivered to a receiver's outbox.",
     "messages_routed", None),
    ("bytes_routed_total", "counter", "Bytes of frames delivered to outboxes.",
     "bytes_routed", None),
    ("messages_dropped_total", "counter", "Messages dropped, by reason.", "dropped", "reason"),
    ("connections_refused_total", "counter", "Connections refused, by reason.", "refused",
     "reason"),
    ("connections_closed_total", "counter", "Connections ended, by close code.", "closes",
     "code"),
    ("paced_total", "counter", "Times a connection was not read for a while (over its byte "
     "rate).", "paced", None),
    ("rate_limited_clients_total", "counter", "Connections that went over the message rate "
     "at least once.", "rate_limited_clients", None),
    ("buffered_bytes", "gauge", "Bytes queued in all outboxes.", "buffered_bytes", None),
    ("downloads", "gauge", "Static file responses being sent.", "downloads", None),
    ("uptime_seconds", "gauge", "Seconds since the relay started.", "uptime", None),
)


def render(stats: Mapping[str, Any], prefix: str = "webraft_relay_") -> str:
    """The Prometheus text for ``stats`` (the dict ``/stats`` serves)."""
    return "\n".join(_lines(stats, prefix)) + "\n"


def _lines(stats: Mapping[str, Any], prefix: str) -> Iterator[str]:
    for name, kind, help_text, key, label in _SERIES:
        value = stats.get(key)
        if value is None:
            continue
        samples = ([("", "", value)] if label is None else
                   [("", labels(**{label: item}), count) for item, count in sorted(value.items())])
        yield from family(prefix + name, kind, help_text, samples)
    rss = resident_bytes()
    if rss is not None:  # the name every Prometheus client library uses for it
        yield from family("process_resident_memory_bytes", "gauge",
                          "Resident memory size in bytes.", [("", "", rss)])
