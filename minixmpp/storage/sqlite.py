"""The SQLite backend (the embedded default), through aiosqlite: WAL, per-component migrations,
``BEGIN IMMEDIATE`` writes.

Two connections share the database file. Writes go through ``transaction()``, which holds an
asyncio lock around ``BEGIN IMMEDIATE … COMMIT`` on the writer connection, so coroutines never
interleave statements inside each other's transactions. Plain reads use the reader connection,
which only ever sees committed data. With WAL and ``synchronous=NORMAL`` a committed write is on
its way to disk before ``transaction()`` returns: killing the process cannot lose it.

Other processes (the CLI while the server runs) open the same file; ``busy_timeout`` makes them
wait for each other's write locks instead of failing.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from minixmpp.storage.stores import SqlArchiveStore, SqlKeyValueStore, SqlMapStore
from minixmpp.storage.upgrade import move_module_tables

log = logging.getLogger("minixmpp.storage")

Params = Sequence[Any]
# A migration step: SQL statements separated by ';', or a function run in the transaction.
Step = str | Callable[["Transaction"], Awaitable[None]]

CORE_MIGRATIONS: tuple[Step, ...] = (
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
    CREATE TABLE accounts (
        host TEXT NOT NULL,
        username TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        sha1_salt BLOB NOT NULL, sha1_iterations INTEGER NOT NULL,
        sha1_stored_key BLOB NOT NULL, sha1_server_key BLOB NOT NULL,
        sha256_salt BLOB NOT NULL, sha256_iterations INTEGER NOT NULL,
        sha256_stored_key BLOB NOT NULL, sha256_server_key BLOB NOT NULL,
        PRIMARY KEY (host, username)
    ) WITHOUT ROWID;
    CREATE TABLE kv (
        host TEXT NOT NULL,
        store TEXT NOT NULL,
        user TEXT NOT NULL,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        PRIMARY KEY (host, store, user, key)
    ) WITHOUT ROWID;
    CREATE INDEX kv_by_user ON kv (host, user);
    """,
    """
    CREATE TABLE archive (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        host TEXT NOT NULL,
        store TEXT NOT NULL,
        user TEXT NOT NULL,
        key TEXT NOT NULL,
        at REAL NOT NULL,
        peer TEXT,
        value BLOB NOT NULL
    );
    CREATE UNIQUE INDEX archive_key ON archive (host, store, key);
    CREATE INDEX archive_by_user ON archive (host, store, user, seq);
    CREATE INDEX archive_by_time ON archive (host, store, user, at);
    """,
    move_module_tables,
)


class StorageError(Exception):
    """The database cannot be opened or migrated."""


class Transaction:
    """Statements inside one ``BEGIN IMMEDIATE`` transaction (see Storage.transaction). Stores
    take one as ``tx=`` to act inside it; core code may run SQL on it."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run a statement; the number of rows it changed (one trip to the database thread)."""
        return await changing(self._conn, sql, params)

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        await self._conn.executemany(sql, rows)

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        rows = await self._conn.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return list(await self._conn.execute_fetchall(sql, params))


async def changing(conn: aiosqlite.Connection, sql: str, params: Params) -> int:
    """Run ``sql``; the rows it changed. The connection's total of changes before and after:
    one trip to its thread, where a cursor's rowcount takes a second one to close the cursor.
    Right only while nothing else runs on ``conn`` (the writer, under Storage's lock)."""
    before = conn.total_changes
    await conn.execute_fetchall(sql, params)
    return conn.total_changes - before


DeletionStep = Callable[[Transaction, str, str], Awaitable[None]]


class Storage:
    """The server's database. Open with ``await Storage.open(path)``; always ``close()``."""

    def __init__(self, path: Path, writer: aiosqlite.Connection, reader: aiosqlite.Connection):
        self.path = path
        self._writer = writer
        self._reader = reader
        self._quick: sqlite3.Connection | None = None  # lookup() on the loop thread
        self._lock = asyncio.Lock()
        # Tables holding per-account rows, as (table, host column, user column): deleting an
        # account deletes its rows in all of them, in the same transaction.
        self.user_tables: list[tuple[str, str, str]] = [
            ("kv", "host", "user"),
            ("archive", "host", "user"),
        ]
        # Steps of that transaction, called with (tx, host, username) before the rows go.
        self.user_deletion_steps: list[DeletionStep] = []
        # Called with (host, username) once an account's rows are deleted and committed.
        self.user_rows_deleted: list[Callable[[str, str], None]] = []

    def own_user_rows(self, table: str, host_column: str, user_column: str) -> None:
        """Rows of ``table`` (a core table) belong to an account and go when it is deleted."""
        entry = (table, host_column, user_column)
        if entry not in self.user_tables:
            self.user_tables.append(entry)

    @classmethod
    async def open(cls, path: Path) -> Storage:
        try:
            _create_private(path)
        except OSError as exc:
            raise StorageError(f"cannot create database {path}: {exc.strerror}") from exc
        try:
            writer = await _connect(path)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open database {path}: {exc}") from exc
        try:
            reader = await _connect(path)
        except (sqlite3.Error, OSError) as exc:
            await writer.close()
            raise StorageError(f"cannot open database {path}: {exc}") from exc
        storage = cls(path, writer, reader)
        try:
            await storage.migrate("core", CORE_MIGRATIONS)
            storage._quick = _connect_quick(path)
        except BaseException:
            await storage.close()
            raise
        return storage

    async def close(self) -> None:
        if self._quick is not None:
            self._quick.close()
            self._quick = None
        for conn in (self._reader, self._writer):
            try:
                await conn.close()
            except (sqlite3.Error, ValueError):  # already closed
                log.debug("closing an already closed connection")

    async def migrate(self, component: str, migrations: Sequence[Step]) -> None:
        """Bring ``component``'s tables to ``len(migrations)``; each step in one transaction."""
        async with self.transaction() as tx:
            await tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_versions"
                " (component TEXT PRIMARY KEY, version INTEGER NOT NULL) WITHOUT ROWID"
            )
            row = await tx.fetchone(
                "SELECT version FROM schema_versions WHERE component = ?", (component,)
            )
        current = row[0] if row else 0
        if current > len(migrations):
            raise StorageError(
                f"database {self.path} has {component} schema version {current}, newer than this"
                f" minixmpp knows ({len(migrations)}); refusing to downgrade"
            )
        for version in range(current + 1, len(migrations) + 1):
            step = migrations[version - 1]
            async with self.transaction() as tx:
                if isinstance(step, str):
                    for statement in _statements(step):
                        await tx.execute(statement)
                else:
                    await step(tx)
                await tx.execute(
                    "INSERT INTO schema_versions (component, version) VALUES (?, ?)"
                    " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                    (component, version),
                )
            log.info("migrated %s schema to version %d", component, version)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A write transaction; commits on normal exit, rolls back on any exception."""
        async with self._lock:
            await self._writer.execute_fetchall("BEGIN IMMEDIATE")
            try:
                yield Transaction(self._writer)
            except BaseException:
                await self._writer.execute_fetchall("ROLLBACK")
                raise
            else:
                await self._writer.execute_fetchall("COMMIT")

    async def write(self, sql: str, params: Params = ()) -> int:
        """One statement as a transaction of its own (SQLite's autocommit: atomic, as durable
        as a transaction's commit), in one trip to the database thread instead of the three of
        ``transaction()``; the number of rows it changed."""
        async with self._lock:
            return await changing(self._writer, sql, params)

    async def change(self, tx: Transaction | None, sql: str, params: Params = ()) -> int:
        """A write inside ``tx`` when given, else one committed on its own (``write``): the
        write side of ``read``. The number of rows it changed."""
        if tx is not None:
            return await tx.execute(sql, params)
        return await self.write(sql, params)

    async def lookup(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """The rows of a small read by key (a few index pages: an account's credentials, one
        user's roster), read on the event loop's own thread: ~10 us, where a trip to the
        database thread costs ~60 us of CPU and two thread switches. Committed data, as
        fetchall(). Anything that may scan many rows goes through fetchall(). Should the
        database be busy (a WAL recovery), the read goes to the database thread instead."""
        if self._quick is not None:
            try:
                return self._quick.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorcode", None) not in _BUSY:
                    raise
                log.debug("a lookup found the database busy: read on its thread")
        return await self.fetchall(sql, params)

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        """One row (or None), read with a single trip to the database thread."""
        rows = await self._reader.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return list(await self._reader.execute_fetchall(sql, params))

    async def read(self, tx: Transaction | None, sql: str, params: Params = ()) -> list[Any]:
        """Rows read inside ``tx`` when given (what it wrote so far), else committed data."""
        if tx is not None:
            return await tx.fetchall(sql, params)
        return await self.fetchall(sql, params)

    async def delete_user_rows(self, tx: Transaction, host: str, username: str) -> None:
        for step in self.user_deletion_steps:
            await step(tx, host, username)
        for table, host_col, user_col in self.user_tables:
            await tx.execute(
                f"DELETE FROM {table} WHERE {host_col} = ? AND {user_col} = ?",  # noqa: S608
                (host, username),
            )

    async def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every data table (not the schema versions, not ``meta``'s secrets):
        what ``load`` puts back. For the test harness's snapshots; read in one transaction,
        so the rows are consistent with each other."""
        async with self.transaction() as tx:
            tables = await _data_tables(tx)
            return {t: [tuple(r) for r in await tx.fetchall(f"SELECT * FROM {t}")] for t in tables}  # noqa: S608

    async def load(self, rows: dict[str, list[tuple[Any, ...]]]) -> None:
        """Replace every data table's rows with ``rows`` (from ``dump``; a table it does not
        name is emptied), in one transaction."""
        async with self.transaction() as tx:
            for table in await _data_tables(tx):
                await tx.execute(f"DELETE FROM {table}")  # noqa: S608
                content = rows.get(table)
                if content:
                    marks = ", ".join("?" * len(content[0]))
                    await tx.executemany(f"INSERT INTO {table} VALUES ({marks})", content)  # noqa: S608

    async def meta(self, key: str, default: bytes) -> bytes:
        """A server-wide value, created with ``default`` on first use (e.g. secrets)."""
        async with self.transaction() as tx:
            await tx.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, default)
            )
            row = await tx.fetchone("SELECT value FROM meta WHERE key = ?", (key,))
        assert row is not None
        return bytes(row[0])

    def keyval(self, host: str, name: str) -> SqlKeyValueStore:
        return SqlKeyValueStore(self, host, name)

    def map(self, host: str, name: str) -> SqlMapStore:
        return SqlMapStore(self, host, name)

    def archive(self, host: str, name: str) -> SqlArchiveStore:
        return SqlArchiveStore(self, host, name)


async def _data_tables(tx: Transaction) -> list[str]:
    rows = await tx.fetchall(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        " AND name NOT IN ('meta', 'schema_versions') ORDER BY name"
    )
    return [row[0] for row in rows]


def _create_private(path: Path) -> None:
    """The database holds SCRAM keys, which can impersonate the server: owner only. SQLite gives
    its -wal and -shm files the database file's permissions."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        path.touch(mode=0o600)


_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _connect_quick(path: Path) -> sqlite3.Connection:
    """The connection for Storage.lookup(): on the event loop's thread, reading only, never
    waiting for a lock (a busy database is read through the database thread instead)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA query_only = 1")
    conn.execute("PRAGMA busy_timeout = 0")
    return conn


async def _connect(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA busy_timeout=5000",
            "PRAGMA foreign_keys=ON",
        ):
            await conn.execute(pragma)
    except BaseException:
        await conn.close()
        raise
    return conn


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
