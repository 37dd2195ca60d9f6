"""The store kinds of the SQLite backend: keyval, map (table ``kv``) and archive (``archive``).

Values of keyval and map stores are JSON (msgspec); archive items are bytes (a stanza, as a
rule) with a time, an optional peer and an id. Every method takes ``tx=``: given a transaction
(``Storage.transaction()``), it acts inside it and reads what it wrote; without, a read sees
committed data and a write commits on its own.
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any

import msgspec

from minixmpp.storage.kinds import ArchiveItem

if TYPE_CHECKING:
    from minixmpp.storage.sqlite import Storage, Transaction

_encode = msgspec.json.encode
_decode = msgspec.json.decode


class SqlKeyValueStore:
    """One JSON value per user (``user=None``: one value for the host). Prosody's keyval."""

    def __init__(self, storage: Storage, host: str, name: str) -> None:
        self._s, self.host, self.name = storage, host, name

    async def get(self, user: str | None, *, tx: Transaction | None = None) -> Any:
        rows = await self._s.read(
            tx,
            "SELECT value FROM kv WHERE host = ? AND store = ? AND user = ? AND key = ''",
            (self.host, self.name, user or ""),
        )
        return _decode(rows[0][0]) if rows else None

    async def set(self, user: str | None, value: Any, *, tx: Transaction | None = None) -> None:
        """Store ``value``; ``None`` deletes."""
        await self._s.change(tx, *_put_statement(self.host, self.name, user or "", "", value))


class SqlMapStore:
    """JSON values by (user, key); ``user=None`` holds host-level entries. Prosody's map."""

    def __init__(self, storage: Storage, host: str, name: str) -> None:
        self._s, self.host, self.name = storage, host, name

    async def get(self, user: str | None, key: str, *, tx: Transaction | None = None) -> Any:
        rows = await self._s.read(
            tx,
            "SELECT value FROM kv WHERE host = ? AND store = ? AND user = ? AND key = ?",
            (self.host, self.name, user or "", key),
        )
        return _decode(rows[0][0]) if rows else None

    async def set(
        self, user: str | None, key: str, value: Any, *, tx: Transaction | None = None
    ) -> bool:
        """Store ``value`` under ``key``; ``None`` deletes. True if a row changed."""
        statement = _put_statement(self.host, self.name, user or "", key, value)
        return await self._s.change(tx, *statement) > 0

    async def items(self, user: str | None, *, tx: Transaction | None = None) -> dict[str, Any]:
        rows = await self._s.read(
            tx,
            "SELECT key, value FROM kv WHERE host = ? AND store = ? AND user = ? ORDER BY key",
            (self.host, self.name, user or ""),
        )
        return {row[0]: _decode(row[1]) for row in rows}


class SqlArchiveStore:
    """Append-only items per user (``user=None``: the host's own), in order, found by time, peer
    and id (Prosody's archive)."""

    def __init__(self, storage: Storage, host: str, name: str) -> None:
        self._s, self.host, self.name = storage, host, name

    async def append(
        self,
        user: str | None,
        value: bytes,
        *,
        peer: str | None = None,
        when: float | None = None,
        id: str | None = None,
        tx: Transaction | None = None,
    ) -> str:
        """Add an item; returns its id (``id``, or a new random one)."""
        key = id or secrets.token_urlsafe(12)
        params = (self.host, self.name, user or "", key, time.time() if when is None else when)
        sql = "INSERT INTO archive (host, store, user, key, at, peer, value) VALUES (?,?,?,?,?,?,?)"
        await self._s.change(tx, sql, (*params, peer, value))
        return key

    async def find(
        self,
        user: str | None,
        *,
        start: float | None = None,
        end: float | None = None,
        peer: str | None = None,
        after_id: str | None = None,
        before_id: str | None = None,
        ids: list[str] | None = None,
        limit: int | None = None,
        max_bytes: int | None = None,
        reverse: bool = False,
        tx: Transaction | None = None,
    ) -> list[ArchiveItem]:
        """Items of ``user`` in the order added (newest first with ``reverse``), filtered by
        time (inclusive), peer, and position relative to other items' ids; ``max_bytes``: as
        many as fit in that many bytes of values, but always the first."""
        where, params = self._where(user, start, end, peer, ids)
        for op, anchor in ((">", after_id), ("<", before_id)):
            if anchor is not None:
                where.append(
                    f"seq {op} (SELECT seq FROM archive WHERE host = ? AND store = ? AND key = ?)"  # noqa: S608
                )
                params += [self.host, self.name, anchor]
        order = " ORDER BY seq DESC" if reverse else " ORDER BY seq"
        tail = ""
        if limit is not None:
            tail = " LIMIT ?"
            params.append(limit)
        if max_bytes is not None:
            # Sizes first (length() of a blob reads no content), then only the values that fit.
            sized = await self._s.read(
                tx,
                "SELECT seq, length(value) FROM archive WHERE "  # noqa: S608
                + " AND ".join(where)
                + order
                + tail,
                params,
            )
            total, seqs = 0, list[int]()
            for seq, size in sized:
                total += size
                if seqs and total > max_bytes:
                    break
                seqs.append(seq)
            if not seqs:
                return []
            where, params = [f"seq IN ({', '.join('?' * len(seqs))})"], list(seqs)
            tail = ""
        sql = (
            "SELECT key, at, peer, value FROM archive WHERE "  # noqa: S608
            + " AND ".join(where)
            + order
            + tail
        )
        rows = await self._s.read(tx, sql, params)
        return [ArchiveItem(r[0], r[1], r[2], bytes(r[3])) for r in rows]

    def _where(
        self,
        user: str | None,
        start: float | None,
        end: float | None,
        peer: str | None,
        ids: list[str] | None,
    ) -> tuple[list[str], list[Any]]:
        where = ["host = ?", "store = ?", "user = ?"]
        params: list[Any] = [self.host, self.name, user or ""]
        for clause, value in (("at >= ?", start), ("at <= ?", end), ("peer = ?", peer)):
            if value is not None:
                where.append(clause)
                params.append(value)
        if ids is not None:
            where.append(f"key IN ({', '.join('?' * len(ids))})")
            params += ids
        return where, params

    async def count(
        self,
        user: str | None,
        *,
        start: float | None = None,
        end: float | None = None,
        peer: str | None = None,
        ids: list[str] | None = None,
        tx: Transaction | None = None,
    ) -> int:
        """How many items ``find`` with these filters (and no position or limit) would give."""
        where, params = self._where(user, start, end, peer, ids)
        sql = "SELECT count(*) FROM archive WHERE " + " AND ".join(where)  # noqa: S608
        rows = await self._s.read(tx, sql, params)
        return int(rows[0][0])

    async def delete(
        self,
        user: str | None,
        *,
        ids: list[str] | None = None,
        before: float | None = None,
        tx: Transaction | None = None,
    ) -> int:
        """Delete the items with these ids, or older than ``before``, or all; returns how many."""
        where = "host = ? AND store = ? AND user = ?"
        params: list[Any] = [self.host, self.name, user or ""]
        if ids is not None:
            if not ids:
                return 0
            where += f" AND key IN ({', '.join('?' * len(ids))})"
            params += ids
        if before is not None:
            where += " AND at < ?"
            params.append(before)
        return await self._s.change(tx, f"DELETE FROM archive WHERE {where}", params)  # noqa: S608

    async def summary(self, user: str | None, *, tx: Transaction | None = None) -> tuple[int, int]:
        """(how many items, how many bytes) ``user`` holds."""
        rows = await self._s.read(
            tx,
            "SELECT count(*), coalesce(sum(length(value)), 0) FROM archive"
            " WHERE host = ? AND store = ? AND user = ?",
            (self.host, self.name, user or ""),
        )
        return int(rows[0][0]), int(rows[0][1])

    async def users(self, *, tx: Transaction | None = None) -> list[str]:
        """The users that hold items (not the host's own items)."""
        rows = await self._s.read(
            tx,
            "SELECT DISTINCT user FROM archive WHERE host = ? AND store = ? AND user != ''",
            (self.host, self.name),
        )
        return [row[0] for row in rows]


async def put(tx: Transaction, host: str, store: str, user: str, key: str, value: Any) -> bool:
    """Write one keyval/map value inside an open transaction (``None`` deletes)."""
    return await tx.execute(*_put_statement(host, store, user, key, value)) > 0


def _put_statement(
    host: str, store: str, user: str, key: str, value: Any
) -> tuple[str, tuple[Any, ...]]:
    """The one statement that writes a keyval/map value (``None``: deletes it)."""
    if value is None:
        return (
            "DELETE FROM kv WHERE host = ? AND store = ? AND user = ? AND key = ?",
            (host, store, user, key),
        )
    return (
        "INSERT INTO kv (host, store, user, key, value) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (host, store, user, key) DO UPDATE SET value = excluded.value",
        (host, store, user, key, _encode(value)),
    )
