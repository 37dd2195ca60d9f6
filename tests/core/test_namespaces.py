"""Namespace errors on the wire (RFC 6120 §11.3): the sender's stream ends with not-well-formed,
nothing reaches or is stored for anyone else, and what older versions stored is skipped."""

from __future__ import annotations

import logging

import pytest
from lxml import etree

from minixmpp.testing import TestServer
from tests.xmpp import HEADER, RawClient, login

PING = "<ping xmlns='urn:xmpp:ping'/>"


async def before_pong(client: RawClient, id: str = "rt") -> list[etree._Element]:
    """Ping the server and return what arrived before the answer: the server handles a
    stream's input in order, so anything the earlier input caused has been sent by then."""
    await client.send(f"<iq type='get' id='{id}' to='localhost'>{PING}</iq>")
    got = []
    while True:
        el = await client.next()
        if el.tag == "iq" and el.get("id") == id:
            assert el.get("type") == "result"
            return got
        got.append(el)


BAD = [
    "<message to='bob@localhost' type='chat'><x:body>boom</x:body></message>",
    "<message to='bob@localhost' type='chat'><body xmlns:xml='urn:x'>boom</body></message>",
    "<message to='bob@localhost' type='chat' x:id='1'><body>boom</body></message>",
]


@pytest.mark.parametrize("bad", BAD)
async def test_a_namespace_error_reaches_nobody(server: TestServer, bad: str) -> None:
    bob, _ = await login(server.c2s_port, server.ca_file, "bob", "bob-secret", presence=True)
    alice, _ = await login(server.c2s_port, server.ca_file, "alice", "alice-secret")
    await alice.send(bad)
    assert await alice.stream_error() == ("not-well-formed", None)
    assert await before_pong(bob) == []


async def test_a_namespace_error_to_an_offline_user_is_not_stored(server: TestServer) -> None:
    alice, _ = await login(server.c2s_port, server.ca_file, "alice", "alice-secret")
    await alice.send(BAD[0])
    assert await alice.stream_error() == ("not-well-formed", None)
    alice, _ = await login(server.c2s_port, server.ca_file, "alice", "alice-secret")
    await alice.send("<message to='bob@localhost' type='chat' id='good'><body>hi</body></message>")
    await before_pong(alice)

    bob, _ = await login(server.c2s_port, server.ca_file, "bob", "bob-secret")
    await bob.send("<presence/>")
    got = await before_pong(bob)
    assert [(el.tag, el.get("id")) for el in got if el.tag == "message"] == [("message", "good")]


async def test_a_subscription_request_with_a_namespace_error_is_not_stored(
    server: TestServer,
) -> None:
    alice, _ = await login(server.c2s_port, server.ca_file, "alice", "alice-secret")
    await alice.send("<presence to='bob@localhost' type='subscribe'><x:nick>A</x:nick></presence>")
    assert await alice.stream_error() == ("not-well-formed", None)
    bob, _ = await login(server.c2s_port, server.ca_file, "bob", "bob-secret")
    await bob.send("<presence/>")
    got = await before_pong(bob)
    assert [el.get("type") for el in got if el.tag == "presence"] == [None]  # its own only


async def test_unreadable_stored_items_are_dropped_and_the_rest_delivered(
    server: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A database written by a version that stored namespace errors: each bad item is dropped
    with one log line, and the items behind it are delivered."""
    storage = server.server.storage
    assert storage is not None
    rows = [
        b"<message to='bob@localhost' from='alice@localhost/a' type='chat' id='bad'>"
        b"<x:body>boom</x:body></message>",
        b"<message to='bob@localhost' from='alice@localhost/a' type='chat' id='good'>"
        b"<body>hi</body></message>",
    ]
    offline = storage.archive("localhost", "offline")  # what mod_offline stores in
    for row in rows:
        await offline.append("bob", row)
    rosters = server.server.hosts["localhost"].rosters
    await rosters.add_pending(
        "localhost",
        "bob",
        "alice@localhost",
        b"<presence from='alice@localhost' to='bob@localhost' type='subscribe'>"
        b"<x:nick>A</x:nick></presence>",
    )
    await rosters.add_pending(
        "localhost",
        "bob",
        "carol@localhost",
        b"<presence from='carol@localhost' to='bob@localhost' type='subscribe'/>",
    )
    caplog.set_level(logging.INFO, logger="minixmpp")
    # The offline module learns who holds messages at its first delivery: these rows count.
    bob, _ = await login(server.c2s_port, server.ca_file, "bob", "bob-secret")
    await bob.send("<presence/>")
    got = await before_pong(bob)
    assert [(el.tag, el.get("type"), el.get("from")) for el in got if el.get("type")] == [
        ("presence", "subscribe", "carol@localhost"),
        ("message", "chat", "alice@localhost/a"),
    ]
    dropped = [r for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(dropped) == 2, [r.getMessage() for r in dropped]
    assert not any(r.exc_info for r in caplog.records)

    # Both were removed: the next login gets neither again.
    bob2, _ = await login(server.c2s_port, server.ca_file, "bob", "bob-secret", "two")
    await bob2.send("<presence/>")
    got = await before_pong(bob2)
    assert [el.get("from") for el in got if el.get("type") == "subscribe"] == ["carol@localhost"]
    assert [el for el in got if el.tag == "message"] == []
    assert len([r for r in caplog.records if "unreadable" in r.getMessage()]) == 2


async def test_a_flood_of_namespace_errors_before_login_costs_one_error(
    server: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="minixmpp")
    client = await RawClient.connect(server.c2s_port)
    await client.send(HEADER.format(to="localhost") + "<x:a/>" * 20_000)
    assert await client.stream_error() == ("not-well-formed", None)
    assert not any(r.exc_info for r in caplog.records)
    assert len(caplog.records) < 10  # a few lines for the connection, not one per element


@pytest.mark.parametrize(
    "after_header",
    [
        HEADER.format(to="localhost"),
        "<presence/>" + HEADER.format(to="localhost") + "<message/>",
        "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/>",
    ],
)
async def test_a_stream_header_inside_the_stream(server: TestServer, after_header: str) -> None:
    client = await RawClient.connect(server.c2s_port)
    await client.open()
    await client.send(after_header)
    assert (await client.stream_error())[0] == "not-well-formed"


async def test_a_self_closing_stream_header(server: TestServer) -> None:
    client = await RawClient.connect(server.c2s_port)
    await client.send(HEADER.format(to="localhost")[:-1] + "/>")
    assert (await client.stream_error())[0] == "not-well-formed"


async def test_restated_jabber_client_keeps_its_namespace_under_another(
    server: TestServer,
) -> None:
    """A stanza that restates xmlns='jabber:client' gets plain tags, but only down to the first
    element of another namespace: below it, a jabber:client element is relayed in jabber:client
    (written plain there, it would land in that element's default namespace)."""
    bob, _ = await login(server.c2s_port, server.ca_file, "bob", "bob-secret", presence=True)
    alice, _ = await login(server.c2s_port, server.ca_file, "alice", "alice-secret")
    await alice.send(
        "<message xmlns='jabber:client' to='bob@localhost' type='chat' id='m1'>"
        "<body>outer</body><x xmlns='urn:x'><body xmlns='jabber:client'>inner</body></x>"
        "</message>"
    )
    message = await bob.expect("message")
    assert message.get("id") == "m1"
    assert message.findtext("body") == "outer"
    assert message.findtext("{urn:x}x/{jabber:client}body") == "inner"
    assert message.find("{urn:x}x/{urn:x}body") is None
