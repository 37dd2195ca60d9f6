"""Offline messages (XEP-0160) with delay stamps (XEP-0203)."""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path

from minixmpp.testing import TestServer, running_server
from tests.xmpp import login, stanza_error

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
    assert (await storage.fetchone("SELECT count(*) FROM offline"))[0] == 1  # type: ignore[index]
    assert await server.server.hosts["localhost"].users.delete("bob")
    assert (await storage.fetchone("SELECT count(*) FROM offline"))[0] == 0  # type: ignore[index]
