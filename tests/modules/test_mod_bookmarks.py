"""mod_bookmarks: XEP-0048 bookmarks (private XML storage, and PEP's storage:bookmarks) kept in
step with XEP-0402's PEP node, over real sockets; Prosody 0.12.3's replies (recorded against it
with the same requests)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from lxml import etree

from minixmpp.testing import TestServer, running_server
from tests.pubsub import (
    NS,
    NS_EVENT,
    NS_INFO,
    error_of,
    events,
    item_ids,
    publish,
    pubsub,
    until_pong,
)
from tests.xmpp import RawClient, login, same_xml

NS_B = "urn:xmpp:bookmarks:1"
MODULES = ["disco", "ping", "pep", "private", "bookmarks"]
PASSWORD = "alice-pw"
ROOMS = (
    "<conference jid='room@muc.localhost' name='Room' autojoin='true'><nick>al</nick>"
    "</conference><conference jid='two@muc.localhost'/>"
)


@pytest.fixture
async def srv(tmp_path: Path) -> AsyncIterator[TestServer]:
    async with running_server(tmp_path, modules=MODULES) as server:
        await server.create_user("alice", PASSWORD)
        yield server


async def alice(srv: TestServer, resource: str = "r") -> RawClient:
    client, _ = await login(srv.c2s_port, srv.ca_file, "alice", PASSWORD, resource)
    return client


def private(type: str, storage: str = "<storage xmlns='storage:bookmarks'/>") -> str:
    return f"<iq type='{type}' id='pv'><query xmlns='jabber:iq:private'>{storage}</query></iq>"


async def ask(client: RawClient, iq: str) -> etree._Element:
    await client.send(iq)
    return await client.expect("iq")


def conferences(reply: etree._Element) -> list[tuple[str | None, str | None]]:
    return [(c.get("jid"), c.get("name")) for c in reply.iter("{storage:bookmarks}conference")]


async def test_private_xml_bookmarks_are_pep_bookmarks(srv: TestServer) -> None:
    client = await alice(srv)
    # Prosody: an empty <storage/> before there is any
    same_xml(
        await ask(client, private("get")),
        "<iq type='result' to='alice@localhost/r'><query xmlns='jabber:iq:private'>"
        "<storage xmlns='storage:bookmarks'/></query></iq>",
    )
    reply = await ask(
        client, private("set", f"<storage xmlns='storage:bookmarks'>{ROOMS}</storage>")
    )
    same_xml(reply, "<iq type='result' to='alice@localhost/r'/>")
    items = await pubsub(client, f"<items node='{NS_B}'/>", type="get")
    same_xml(
        items,
        f"<iq type='result' to='alice@localhost/r'><pubsub xmlns='{NS}'><items node='{NS_B}'>"
        f"<item id='room@muc.localhost'><conference xmlns='{NS_B}' name='Room' autojoin='true'>"
        f"<nick>al</nick></conference></item>"
        f"<item id='two@muc.localhost'><conference xmlns='{NS_B}'/></item></items></pubsub></iq>",
    )
    config = await pubsub(client, f"<configure node='{NS_B}'/>", type="get", owner=True)
    values = {
        f.get("var"): f.findtext("{jabber:x:data}value")
        for f in config.iter("{jabber:x:data}field")
    }
    assert (values["pubsub#max_items"], values["pubsub#access_model"]) == ("max", "whitelist")
    assert values["pubsub#send_last_published_item"] == "never"
    # a XEP-0402 client adds one: the XEP-0048 client reads three
    three = f"<conference xmlns='{NS_B}' name='Three'/>"
    await pubsub(client, publish(NS_B, three, "three@muc.localhost"))
    got = await ask(client, private("get"))
    assert sorted(conferences(got)) == [
        ("room@muc.localhost", "Room"),
        ("three@muc.localhost", "Three"),
        ("two@muc.localhost", None),
    ]
    nick = got.find(
        ".//{storage:bookmarks}conference[@jid='room@muc.localhost']/{storage:bookmarks}nick"
    )
    assert nick is not None and nick.text == "al"
    # the XEP-0048 client writes one back: the others are retracted; nothing: all go
    one = "<conference jid='room@muc.localhost' name='Room'/>"
    one = f"<storage xmlns='storage:bookmarks'>{one}</storage>"
    await ask(client, private("set", one))
    assert item_ids(await pubsub(client, f"<items node='{NS_B}'/>", type="get")) == [
        "room@muc.localhost"
    ]
    await ask(client, private("set"))
    assert item_ids(await pubsub(client, f"<items node='{NS_B}'/>", type="get")) == []
    # other private XML is mod_private's
    other = "<x xmlns='other:ns'>kept</x>"
    assert (await ask(client, private("set", other))).get("type") == "result"
    assert (await ask(client, private("get", "<x xmlns='other:ns'/>"))).findtext(
        "*/{other:ns}x"
    ) == "kept"


async def test_pep_storage_bookmarks_and_the_old_namespace(srv: TestServer) -> None:
    client = await alice(srv)
    legacy = f"<storage xmlns='storage:bookmarks'>{ROOMS}</storage>"
    reply = await pubsub(client, publish("storage:bookmarks", legacy, "current"))
    same_xml(reply, "<iq type='result' to='alice@localhost/r'/>")  # Prosody: no pubsub child
    assert item_ids(await pubsub(client, f"<items node='{NS_B}'/>", type="get")) == [
        "room@muc.localhost",
        "two@muc.localhost",
    ]
    got = await pubsub(client, "<items node='storage:bookmarks'/>", type="get")
    assert item_ids(got) == ["current"]
    assert sorted(conferences(got)) == [("room@muc.localhost", "Room"), ("two@muc.localhost", None)]
    # Prosody: XEP-0402 0.3.0's namespace is refused with this text
    assert error_of(
        await pubsub(client, publish("urn:xmpp:bookmarks:0", "<x xmlns='y'/>", "c"))
    ) == (
        "modify",
        "not-allowed",
        None,
        "Your client does XEP-0402 version 0.3.0 but 0.4.0+ is required",
    )
    info = await client.iq(f"<query xmlns='{NS_INFO}'/>")
    features = {f.get("var") for f in info.iter(f"{{{NS_INFO}}}feature")}
    assert {f"{NS_B}#compat", f"{NS_B}#compat-pep", "urn:xmpp:bookmarks-conversion:0"} <= features


async def test_what_older_clients_left_moves_to_pep_at_login(tmp_path: Path) -> None:
    stored = f"<storage xmlns='storage:bookmarks'>{ROOMS}</storage>"
    async with running_server(tmp_path, modules=["disco", "pep", "private"]) as before:
        await before.create_user("alice", PASSWORD)
        client = await alice(before)
        assert (await ask(client, private("set", stored))).get("type") == "result"
        await client.close()
    async with running_server(tmp_path, modules=MODULES) as after:
        client = await alice(after)
        assert item_ids(await pubsub(client, f"<items node='{NS_B}'/>", type="get")) == [
            "room@muc.localhost",
            "two@muc.localhost",
        ]
        api = after.server.hosts["localhost"].modules["private"].api
        assert await api.get("alice", "storage", "storage:bookmarks") is None  # moved, not copied
        config = await pubsub(
            client, "<configure node='storage:bookmarks'/>", type="get", owner=True
        )
        values = {
            f.get("var"): f.findtext("{jabber:x:data}value")
            for f in config.iter("{jabber:x:data}field")
        }
        assert (values["pubsub#access_model"], values["pubsub#persist_items"]) == ("whitelist", "0")


async def test_xep_0411_notifications_of_the_whole_list(srv: TestServer) -> None:
    from tests.modules.test_mod_pep_notify import Client

    old = Client(await alice(srv, "old"), "alice@localhost/old")
    await old.available(["storage:bookmarks"])  # an older client: XEP-0048 through PEP
    new = await alice(srv, "new")
    await pubsub(
        new,
        publish(
            NS_B,
            f"<conference xmlns='{NS_B}' name='Room'/>",
            "room@muc.localhost",
            pubsub__max_items="max",
            pubsub__access_model="whitelist",
        ),
    )
    (event,) = events(await until_pong(old.raw))
    items = event.find(f"{{{NS_EVENT}}}event/{{{NS_EVENT}}}items")
    assert items is not None and items.get("node") == "storage:bookmarks"
    assert item_ids(event, NS_EVENT) == ["current"]
    assert conferences(event) == [("room@muc.localhost", "Room")]
