"""What the server really keeps, read from its database rows (``Storage.dump``), for the limit
tests: a hostile client's stored size is measured, never assumed."""

from __future__ import annotations

from minixmpp.testing import TestServer


async def stored(
    srv: TestServer, user: str, store: str, *, host: str = "localhost", prefix: bool = False
) -> tuple[int, int]:
    """(rows, bytes of values) that ``user`` of ``host`` has in ``store`` (every store whose
    name starts with ``store`` when ``prefix``), over the key-value and archive tables."""
    storage = srv.server.storage
    assert storage is not None
    rows = await storage.dump()

    def wanted(name: str) -> bool:
        return name.startswith(store) if prefix else name == store

    found = [r[4] for r in rows.get("kv", []) if r[0] == host and wanted(r[1]) and r[2] == user]
    found += [
        r[7] for r in rows.get("archive", []) if r[1] == host and wanted(r[2]) and r[3] == user
    ]
    return len(found), sum(len(v) for v in found)
