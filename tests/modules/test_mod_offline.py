"""Offline messages (XEP-0160) with delay stamps (XEP-0203)."""

from __future__ import annotations

import asyncio
import datetime
import sqlite3
from pathlib import Path

from minixmpp.testing import TestServer, running_server
from minixmpp.xml.parser import StanzaReceived, StreamParser
from tests.xmpp import TIMEOUT, RawClient, login, stanza_error

DELAY = "{urn:xmpp:delay}delay"


async def test_stored_and_delivered_in_order_with_delay(server: TestServer) -> None:
    alice, alice_jid = await login(server.c2s_port, server.ca_file, "alice", "alice-secret")
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    for i, kind in enumerate(["chat", None, "headline", "groupchat", "chat"]):
        type_attr = f" type='{kind}'" if kind else ""
        await alice.send(
            f"<message to='bob@localhost'{type_attr} id='m{i}'><body>{i}</body></message>"
        )
    error = await alice.expect("message")  # groupchat to an unavailable user
    assert (error.get("id"), stanza_error(error)[1]) == ("m3", "service-unavailable")
    await alice.nothing()

    bob, bob_jid = await login(server.c2s_port, server.ca_file, "bob", "bob-secret")
    await bob.nothing()  # bound, but no presence yet: nothing delivered
    await bob.send("<presence/>")
    got = [await bob.expect("message") for _ in range(3)]
    assert [m.get("id") for m in got] == ["m0", "m1", "m4"]  # no headline, no groupchat
    for message in got:
        assert message.get("from") == alice_jid and message.get("to") == "bob@localhost"
        delay = message.find(DELAY)
        assert delay is not None and delay.get("from") == "localhost"
        stamp = datetime.datetime.strptime(delay.get("stamp", ""), "%Y-%m-%dT%H:%M:%SZ")
        assert stamp.replace(tzinfo=datetime.UTC) >= before
    await bob.nothing()
    bob2, bob2_jid = await login(server.c2s_port, server.ca_file, "bob", "bob-secret", "second")
    await bob2.send("<presence/>")
    # Only presence (its own and the first resource's): the messages were delivered once.
    received = [await bob2.next() for _ in range(2)]
    assert {(el.tag, el.get("from")) for el in received} == {
        ("presence", bob2_jid),
        ("presence", bob_jid),
    }
    await bob2.nothing()


async def test_two_resources_coming_online_at_once_get_each_message_once(
    server: TestServer,
) -> None:
    alice, _ = await login(server.c2s_port, server.ca_file, "alice", "alice-secret")
    for i in range(20):
        await alice.send(f"<message to='bob@localhost' type='chat' id='m{i}'><body/></message>")
    await alice.nothing()
    one, _ = await login(server.c2s_port, server.ca_file, "bob", "bob-secret", "one")
    two, _ = await login(server.c2s_port, server.ca_file, "bob", "bob-secret", "two")
    await asyncio.gather(one.send("<presence/>"), two.send("<presence/>"))
    got = [el for client in (one, two) for el in await client.drain() if el.tag == "message"]
    assert sorted(m.get("id") or "" for m in got) == sorted(f"m{i}" for i in range(20))


async def test_negative_priority_does_not_receive_them(server: TestServer) -> None:
    alice, _ = await login(server.c2s_port, server.ca_file, "alice", "alice-secret")
    await alice.send("<message to='bob@localhost' type='chat' id='m'><body>x</body></message>")
    await alice.nothing()
    bob, _ = await login(server.c2s_port, server.ca_file, "bob", "bob-secret", "low")
    await bob.send("<presence><priority>-1</priority></presence>")
    await bob.expect("presence")
    await bob.nothing()
    bob2, _ = await login(server.c2s_port, server.ca_file, "bob", "bob-secret", "normal")
    await bob2.send("<presence/>")
    assert (await bob2.expect("message")).get("id") == "m"


async def test_limit_per_account(tmp_path: Path) -> None:
    async with running_server(tmp_path, options={"offline_max_messages": 2}) as srv:
        await srv.create_user("alice", "pw")
        await srv.create_user("bob", "pw")
        alice, _ = await login(srv.c2s_port, srv.ca_file, "alice", "pw")
        for i in range(3):
            await alice.send(
                f"<message to='bob@localhost' type='chat' id='m{i}'><body>x</body></message>"
            )
        error = await alice.expect("message")
        assert (error.get("id"), stanza_error(error)[1]) == ("m2", "service-unavailable")


async def test_offline_messages_survive_a_restart(tmp_path: Path) -> None:
    async with running_server(tmp_path) as srv:
        await srv.create_user("alice", "pw")
        await srv.create_user("bob", "pw")
        alice, _ = await login(srv.c2s_port, srv.ca_file, "alice", "pw")
        await alice.send(
            "<message to='bob@localhost' type='chat' id='kept'><body>x</body></message>"
        )
        await alice.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")
    async with running_server(tmp_path) as srv:
        bob, _ = await login(srv.c2s_port, srv.ca_file, "bob", "pw")
        await bob.send("<presence/>")
        assert (await bob.expect("message")).get("id") == "kept"


async def test_deleting_the_account_drops_its_offline_messages(server: TestServer) -> None:
    alice, _ = await login(server.c2s_port, server.ca_file, "alice", "alice-secret")
    await alice.send("<message to='bob@localhost' type='chat'><body>x</body></message>")
    await alice.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")
    storage = server.server.storage
    assert storage is not None
    offline = storage.archive("localhost", "offline")
    assert (await offline.summary("bob"))[0] == 1
    assert await server.server.hosts["localhost"].users.delete("bob")
    assert (await offline.summary("bob"))[0] == 0


async def send_messages(client: RawClient, sizes: list[int]) -> list[str | None]:
    """Send chat messages to bob with bodies of these sizes (ids m0, m1, …); after a ping round
    trip, return the error condition each got (None: stored)."""
    for i, size in enumerate(sizes):
        body = "x" * size
        await client.send(
            f"<message to='bob@localhost' type='chat' id='m{i}'><body>{body}</body></message>"
        )
    await client.send("<iq type='get' id='sent' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    errors: list[str | None] = [None] * len(sizes)
    while True:
        element = await client.next()
        if element.tag == "iq":
            assert element.get("id") == "sent"
            return errors
        errors[int(element.get("id", "")[1:])] = stanza_error(element)[1]


async def test_limit_in_bytes_per_account(tmp_path: Path) -> None:
    # The cap counts the stored stanzas (with their delay stamps): two 100 KB messages fit in
    # 250 000 bytes, a third does not; a small one still does.
    options = {"offline_max_bytes": 250_000}
    async with running_server(tmp_path, options=options) as srv:
        await srv.create_user("alice", "pw")
        await srv.create_user("bob", "pw")
        alice, _ = await login(srv.c2s_port, srv.ca_file, "alice", "pw")
        errors = await send_messages(alice, [100_000, 100_000, 100_000, 10])
        assert errors == [None, None, "service-unavailable", None]
        bob, _ = await login(srv.c2s_port, srv.ca_file, "bob", "pw")
        await bob.send("<presence/>")
        await bob.send(
            "<iq type='get' id='after' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
        )
        got = []
        element = await bob.next()
        while element.tag != "iq":
            if element.tag == "message":
                got.append(element.get("id"))
            element = await bob.next()
        assert got == ["m0", "m1", "m3"]
        # Delivered messages no longer count: with bob unavailable again, the store takes as
        # much as before.
        await bob.send("<presence type='unavailable'/>")
        await bob.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost", id="gone")
        assert await send_messages(alice, [100_000, 100_000, 100_000]) == [
            None,
            None,
            "service-unavailable",
        ]


async def test_a_backlog_larger_than_the_output_limit_is_delivered_in_paced_batches(
    tmp_path: Path,
) -> None:
    """20 MB stored for one user: the login gets all of it, in order, over a stream that is not
    dropped (unsent output above 4 MB drops a client), and the server never holds more than a
    batch of it unsent."""
    count = 200
    options = {"offline_max_bytes": 32 * 1024 * 1024}
    async with running_server(tmp_path, options=options) as srv:
        await srv.create_user("alice", "pw")
        await srv.create_user("bob", "pw")
        alice, _ = await login(srv.c2s_port, srv.ca_file, "alice", "pw")
        assert await send_messages(alice, [100_000] * count) == [None] * count
        bob, jid = await login(srv.c2s_port, srv.ca_file, "bob", "pw")
        conn = next(c for c in srv.server.connections if c.session.jid.full == jid)
        transport = conn.transport
        assert transport is not None
        await bob.send(
            "<presence/><iq type='get' id='after' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
        )
        # Read without keeping every byte (RawClient.raw would): 20 MB go through here.
        parser, ids, unsent = StreamParser(1 << 20), [], 0
        parser.feed(
            b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
        )
        done = False
        while not done:
            data = await asyncio.wait_for(bob.reader.read(1 << 16), TIMEOUT)
            assert data, "the server dropped the connection"
            unsent = max(unsent, transport.get_write_buffer_size())
            for event in parser.feed(data):
                if isinstance(event, StanzaReceived):
                    element = event.element
                    if element.tag == "message":
                        ids.append(element.get("id"))
                    done = done or element.get("id") == "after"
        assert ids == [f"m{i}" for i in range(count)]
        assert unsent < 1024 * 1024
        storage = srv.server.storage
        assert storage is not None
        assert (await storage.archive("localhost", "offline").summary("bob"))[0] == 0


async def test_messages_stored_before_the_byte_limit_count_against_it(tmp_path: Path) -> None:
    """A database from before sizes were recorded: the upgrade measures what it holds."""
    database = tmp_path / "data" / "minixmpp.sqlite"
    database.parent.mkdir(mode=0o700, parents=True)
    old = (
        "<message xmlns='jabber:client' from='alice@localhost/x' to='bob@localhost' type='chat'"
        f" id='old'><body>{'o' * 150_000}</body></message>"
    )
    with sqlite3.connect(database) as db:
        db.executescript(
            "CREATE TABLE schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            " WITHOUT ROWID; INSERT INTO schema_versions VALUES ('offline', 1);"
            "CREATE TABLE offline (id INTEGER PRIMARY KEY AUTOINCREMENT, host TEXT NOT NULL,"
            " username TEXT NOT NULL, stanza BLOB NOT NULL);"
            "CREATE INDEX offline_by_user ON offline (host, username, id);"
        )
        db.execute(
            "INSERT INTO offline (host, username, stanza) VALUES ('localhost', 'bob', ?)",
            (old.encode(),),
        )
    database.chmod(0o600)
    async with running_server(tmp_path, options={"offline_max_bytes": 200_000}) as srv:
        await srv.create_user("alice", "pw")
        await srv.create_user("bob", "pw")
        alice, _ = await login(srv.c2s_port, srv.ca_file, "alice", "pw")
        assert await send_messages(alice, [100_000, 10]) == ["service-unavailable", None]
        bob, _ = await login(srv.c2s_port, srv.ca_file, "bob", "pw")
        await bob.send("<presence/>")
        assert (await bob.expect("message")).get("id") == "old"
        assert (await bob.expect("message")).get("id") == "m1"
