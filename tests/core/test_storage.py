"""SQLite storage: migrations, stores, transactions, and durability across a kill."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from minixmpp.accounts import Accounts
from minixmpp.storage import Storage, StorageError


async def test_migrations_apply_once_and_refuse_downgrade(tmp_path: Path) -> None:
    db = tmp_path / "x.sqlite"
    steps = [
        "CREATE TABLE t1 (a INTEGER)",
        "CREATE TABLE t2 (b INTEGER); INSERT INTO t2 VALUES (1)",
    ]
    storage = await Storage.open(db)
    try:
        await storage.migrate("demo", steps)
        await storage.migrate("demo", steps)  # no-op
        assert [tuple(r) for r in await storage.fetchall("SELECT b FROM t2")] == [(1,)]
        with pytest.raises(StorageError, match="refusing to downgrade"):
            await storage.migrate("demo", steps[:1])
    finally:
        await storage.close()


async def test_stores(tmp_path: Path) -> None:
    storage = await Storage.open(tmp_path / "x.sqlite")
    try:
        kv = storage.keyval("h", "vcard")
        assert await kv.get("alice") is None
        await kv.set("alice", {"fn": "Alice", "n": [1, 2]})
        assert await kv.get("alice") == {"fn": "Alice", "n": [1, 2]}
        await kv.set(None, "host-level")
        assert await kv.get(None) == "host-level"
        await kv.set("alice", None)
        assert await kv.get("alice") is None
        m = storage.map("h", "tokens")
        await m.set(None, "t1", {"x": 1})
        await m.set("bob", "t1", 5)
        await m.set("bob", "t2", 6)
        assert await m.items("bob") == {"t1": 5, "t2": 6}
        assert await m.get(None, "t1") == {"x": 1}
        await m.set("bob", "t1", None)
        assert await m.items("bob") == {"t2": 6}
        assert await storage.map("other-host", "tokens").items("bob") == {}
    finally:
        await storage.close()


async def test_the_archive_store(tmp_path: Path) -> None:
    storage = await Storage.open(tmp_path / "x.sqlite")
    try:
        archive = storage.archive("h", "mam")
        ids = [
            await archive.append("alice", f"m{i}".encode() * (i + 1), peer=peer, when=100.0 + i)
            for i, peer in enumerate(["bob@h", "carol@h", "bob@h", None, "bob@h"])
        ]
        assert len(set(ids)) == 5
        await archive.append("bob", b"other user")
        await storage.archive("h", "offline").append("alice", b"other store")

        async def values(**query: object) -> list[bytes]:
            return [item.value[:2] for item in await archive.find("alice", **query)]  # type: ignore[arg-type]

        assert await values() == [b"m0", b"m1", b"m2", b"m3", b"m4"]
        assert await values(reverse=True, limit=2) == [b"m4", b"m3"]
        assert await values(peer="bob@h") == [b"m0", b"m2", b"m4"]
        assert await values(start=101.0, end=103.0) == [b"m1", b"m2", b"m3"]
        assert await values(after_id=ids[1]) == [b"m2", b"m3", b"m4"]
        assert await values(before_id=ids[3], reverse=True) == [b"m2", b"m1", b"m0"]
        assert await values(ids=[ids[4], ids[0]]) == [b"m0", b"m4"]
        assert await values(after_id="no-such-id") == []
        # as many as fit in 12 bytes (2, 4, 6 …), but always the first
        assert await values(max_bytes=6) == [b"m0", b"m1"]
        assert await values(max_bytes=1) == [b"m0"]
        item = (await archive.find("alice", limit=1))[0]
        assert (item.id, item.when, item.peer) == (ids[0], 100.0, "bob@h")
        assert await archive.summary("alice") == (5, 2 + 4 + 6 + 8 + 10)
        assert sorted(await archive.users()) == ["alice", "bob"]
        assert await archive.delete("alice", ids=[ids[0], ids[1]]) == 2
        assert await archive.delete("alice", before=103.0) == 1
        assert await values() == [b"m3", b"m4"]
        assert await archive.delete("alice") == 2
        assert await archive.summary("alice") == (0, 0)
        with pytest.raises(RuntimeError):
            async with storage.transaction() as tx:
                await archive.append("carol", b"rolled back", tx=tx)
                assert await archive.summary("carol", tx=tx) == (1, 11)  # seen inside
                raise RuntimeError("undo")
        assert await archive.summary("carol") == (0, 0)
    finally:
        await storage.close()


async def test_an_accounts_stores_go_with_it(tmp_path: Path) -> None:
    storage = await Storage.open(tmp_path / "x.sqlite")
    try:
        accounts = Accounts(storage, 4096)
        assert await accounts.create("h", "alice", "pw")
        await storage.keyval("h", "vcard").set("alice", {"fn": "A"})
        await storage.map("h", "m").set("alice", "k", 1)
        await storage.archive("h", "mam").append("alice", b"x")
        await storage.archive("h", "mam").append("bob", b"kept")
        assert await accounts.delete("h", "alice")
        assert await storage.keyval("h", "vcard").get("alice") is None
        assert await storage.map("h", "m").items("alice") == {}
        assert await storage.archive("h", "mam").users() == ["bob"]
    finally:
        await storage.close()


async def test_transactions_roll_back_and_do_not_interleave(tmp_path: Path) -> None:
    storage = await Storage.open(tmp_path / "x.sqlite")
    try:
        await storage.migrate(
            "c", ["CREATE TABLE counter (n INTEGER); INSERT INTO counter VALUES (0)"]
        )

        async def bump() -> None:
            async with storage.transaction() as tx:
                row = await tx.fetchone("SELECT n FROM counter")
                assert row is not None
                await asyncio.sleep(0.01)  # another coroutine runs meanwhile
                await tx.execute("UPDATE counter SET n = ?", (row[0] + 1,))

        await asyncio.gather(*(bump() for _ in range(20)))
        assert [tuple(r) for r in await storage.fetchall("SELECT n FROM counter")] == [(20,)]

        with pytest.raises(RuntimeError):
            async with storage.transaction() as tx:
                await tx.execute("UPDATE counter SET n = 99")
                raise RuntimeError("midway")
        assert [tuple(r) for r in await storage.fetchall("SELECT n FROM counter")] == [(20,)]
    finally:
        await storage.close()


async def test_a_single_write_counts_its_rows_and_waits_for_an_open_transaction(
    tmp_path: Path,
) -> None:
    storage = await Storage.open(tmp_path / "x.sqlite")
    try:
        await storage.migrate("c", ["CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)"])
        assert await storage.write("INSERT INTO t VALUES ('a', 1), ('b', 2)") == 2
        assert await storage.write("UPDATE t SET v = 5 WHERE k = 'zzz'") == 0
        async with storage.transaction() as tx:
            assert await tx.execute("UPDATE t SET v = v + 1") == 2
            assert await tx.execute("DELETE FROM t WHERE k = 'nothing'") == 0

        # A write while another coroutine's transaction is open waits for it: it is neither
        # part of that transaction (undone with it) nor seen by it
        opened, written = asyncio.Event(), asyncio.Event()

        async def write_meanwhile() -> None:
            await opened.wait()
            await storage.write("INSERT INTO t VALUES ('c', 3)")
            written.set()

        writer = asyncio.create_task(write_meanwhile())
        with pytest.raises(RuntimeError):
            async with storage.transaction() as tx:
                await tx.execute("INSERT INTO t VALUES ('x', 9)")
                opened.set()
                for _ in range(5):  # let the other coroutine run
                    await asyncio.sleep(0)
                assert not written.is_set()
                assert await tx.fetchone("SELECT v FROM t WHERE k = 'c'") is None
                raise RuntimeError("undone")
        await asyncio.wait_for(writer, 5)
        rows = await storage.fetchall("SELECT k, v FROM t ORDER BY k")
        assert [tuple(r) for r in rows] == [("a", 2), ("b", 3), ("c", 3)]
    finally:
        await storage.close()


async def test_a_lookup_reads_committed_rows_on_the_loop_and_waits_for_nothing(
    tmp_path: Path,
) -> None:
    storage = await Storage.open(tmp_path / "x.sqlite")
    try:
        await storage.migrate("c", ["CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)"])
        await storage.write("INSERT INTO t VALUES ('a', 1)")
        async with storage.transaction() as tx:
            await tx.execute("INSERT INTO t VALUES ('b', 2)")
            # not committed yet: a lookup sees what a read on the database thread sees
            rows = await storage.lookup("SELECT k, v FROM t ORDER BY k")
            assert [tuple(r) for r in rows] == [("a", 1)]
        rows = await storage.lookup("SELECT k, v FROM t WHERE k = ?", ("b",))
        assert [tuple(r) for r in rows] == [("b", 2)]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await storage.lookup("DELETE FROM t")  # a lookup never writes

        class Busy:
            def execute(self, *args: object) -> None:
                busy = sqlite3.OperationalError("database is locked")
                busy.sqlite_errorcode = sqlite3.SQLITE_BUSY
                raise busy

        quick, storage._quick = storage._quick, Busy()  # type: ignore[assignment]
        try:  # a busy database: read on the database thread instead
            rows = await storage.lookup("SELECT k FROM t ORDER BY k")
            assert [r[0] for r in rows] == ["a", "b"]
        finally:
            storage._quick = quick
    finally:
        await storage.close()


async def test_account_deletion_takes_the_accounts_rows(tmp_path: Path) -> None:
    storage = await Storage.open(tmp_path / "x.sqlite")
    try:
        accounts = Accounts(storage, 4096)
        assert await accounts.create("h", "alice", "pw")
        assert not await accounts.create("h", "alice", "other")
        await storage.keyval("h", "private").set("alice", {"secret": 1})
        await storage.keyval("h", "private").set("bob", {"secret": 2})
        assert await accounts.delete("h", "alice")
        assert not await accounts.delete("h", "alice")
        assert await storage.keyval("h", "private").get("alice") is None
        assert await storage.keyval("h", "private").get("bob") == {"secret": 2}
    finally:
        await storage.close()


KILLED_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from minixmpp.accounts import Accounts
    from minixmpp.storage import Storage

    async def main():
        storage = await Storage.open(Path(sys.argv[1]))
        accounts = Accounts(storage, 4096)
        for i in range(20):
            assert await accounts.create("h", f"user{i}", "pw")
            print(f"created user{i}", flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
    """
)


def test_acknowledged_writes_survive_a_kill(tmp_path: Path) -> None:
    db = tmp_path / "x.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(db)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        acknowledged = []
        for line in proc.stdout:
            acknowledged.append(line.split()[1])
            if len(acknowledged) == 7:
                os.kill(proc.pid, signal.SIGKILL)  # right after the 7th acknowledgement
                break
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()

    async def check() -> list[str]:
        storage = await Storage.open(db)
        try:
            return await Accounts(storage).list("h")
        finally:
            await storage.close()

    loop = asyncio.new_event_loop()  # this test is synchronous: it drives a subprocess
    try:
        names = loop.run_until_complete(check())
    finally:
        loop.close()
    assert len(acknowledged) == 7
    assert set(acknowledged) <= set(names)


async def test_the_database_is_private(tmp_path: Path) -> None:
    storage = await Storage.open(tmp_path / "data" / "x.sqlite")
    try:
        await Accounts(storage, 4096).create("h", "alice", "pw")
    finally:
        await storage.close()
    assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700
    for name in ("x.sqlite", "x.sqlite-wal", "x.sqlite-shm"):
        path = tmp_path / "data" / name
        if path.exists():
            assert path.stat().st_mode & 0o077 == 0, name


async def test_a_folder_that_cannot_be_created_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "file").touch()
    database = tmp_path / "file" / "data" / "minixmpp.sqlite"
    with pytest.raises(StorageError, match=f"cannot create database {database}: Not a directory"):
        await Storage.open(database)
