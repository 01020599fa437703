"""A runnable durable member: a replicated key-value store on SQLite, talking via the relay.

Owns the member's package; on top of webraft, and nothing of webraft's other packages may import
it.

* :mod:`webraft.member.kv` — the key-value state machine (importable anywhere);
* :mod:`webraft.member.control` — the local HTTP control server and its client;
* ``python -m webraft.member`` (console script ``webraft-node``) — run a node, or talk to
  one (``put``/``get``/``del``/``status``).

Importing this package loads neither ``websockets`` nor ``sqlite3``: the node's command line
imports them when it starts a node.
"""
