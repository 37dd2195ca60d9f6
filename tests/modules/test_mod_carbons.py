"""Message Carbons (XEP-0280) over real sockets, with Prosody's copying rules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from lxml import etree

from minixmpp.testing import TestServer, running_server
from tests.conftest import PASSWORDS
from tests.xmpp import RawClient, login, stanza_error, until_pong

NS = "urn:xmpp:carbons:2"
FORWARD = "urn:xmpp:forward:0"


@pytest.fixture
async def carbons(tmp_path: Path) -> AsyncIterator[TestServer]:
    async with running_server(tmp_path, modules=["disco", "ping", "carbons"]) as srv:
        for name, password in PASSWORDS.items():
            await srv.create_user(name, password)
        yield srv


async def online(srv: TestServer, user: str, resource: str, *, enable: bool = True) -> RawClient:
    client, _ = await login(srv.c2s_port, srv.ca_file, user, PASSWORDS[user], resource)
    await client.send("<presence/>")
    await client.expect("presence")
    if enable:
        reply = await client.iq(f"<enable xmlns='{NS}'/>", type="set", id="carbons")
        assert reply.get("type") == "result"
    return client


def forwarded(carbon: etree._Element, direction: str) -> etree._Element:
    wrapper = carbon.find(f"{{{NS}}}{direction}")
    assert wrapper is not None, etree.tostring(carbon)
    inner = wrapper.find(f"{{{FORWARD}}}forwarded/{{jabber:client}}message")
    assert inner is not None, etree.tostring(carbon)
    return inner


async def test_sent_and_received_copies(carbons: TestServer) -> None:
    phone = await online(carbons, "alice", "phone")
    desk = await online(carbons, "alice", "desk")
    bob = await online(carbons, "bob", "laptop", enable=False)
    await phone.send("<message to='bob@localhost' type='chat' id='out'><body>hi</body></message>")
    assert (await bob.expect("message")).get("id") == "out"
    carbon = await desk.expect("message")
    assert (carbon.get("from"), carbon.get("to")) == ("alice@localhost", "alice@localhost/desk")
    inner = forwarded(carbon, "sent")
    assert (inner.get("id"), inner.get("from"), inner.get("to")) == (
        "out",
        "alice@localhost/phone",
        "bob@localhost",
    )
    assert [m.get("id") for m in await until_pong(phone) if m.tag == "message"] == []

    # bob answers alice's phone (a full JID): the desk gets a received copy
    await bob.send(
        "<message to='alice@localhost/phone' type='chat' id='back'><body>yo</body></message>"
    )
    assert (await phone.expect("message")).get("id") == "back"
    inner = forwarded(await desk.expect("message"), "received")
    assert inner.get("id") == "back" and inner.findtext("{jabber:client}body") == "yo"


async def test_no_copy_for_the_top_resources_of_a_bare_message(carbons: TestServer) -> None:
    phone = await online(carbons, "alice", "phone")
    desk = await online(carbons, "alice", "desk")
    bob = await online(carbons, "bob", "laptop", enable=False)
    await bob.send("<message to='alice@localhost' type='chat' id='b1'><body>x</body></message>")
    await until_pong(bob)  # the server has routed b1 before the pings below
    # both have priority 0: both get it by routing, neither gets a copy
    for client in (phone, desk):
        got = [m for m in await until_pong(client) if m.tag == "message"]
        assert [(m.get("id"), m.find(f"{{{NS}}}received")) for m in got] == [("b1", None)]


async def test_what_is_not_copied(carbons: TestServer) -> None:
    phone = await online(carbons, "alice", "phone")
    desk = await online(carbons, "alice", "desk")
    bob = await online(carbons, "bob", "laptop", enable=False)
    for i, payload in enumerate(
        [
            f"type='chat'><body>p</body><private xmlns='{NS}'/>",
            "type='chat'><body>h</body><no-copy xmlns='urn:xmpp:hints'/>",
            "type='headline'><body>news</body>",
            "><subject>only a subject</subject>",  # normal without a body
        ]
    ):
        await phone.send(f"<message to='bob@localhost/laptop' id='n{i}' {payload}</message>")
    await until_pong(phone)
    received = [m for m in await until_pong(bob) if m.tag == "message"]
    assert [m.get("id") for m in received] == ["n0", "n1", "n2", "n3"]
    assert received[0].find(f"{{{NS}}}private") is None  # taken out on the way in
    assert [m for m in await until_pong(desk) if m.tag == "message"] == []


async def test_disable_and_only_enabled_resources(carbons: TestServer) -> None:
    phone = await online(carbons, "alice", "phone")
    desk = await online(carbons, "alice", "desk")
    tablet = await online(carbons, "alice", "tablet", enable=False)
    assert (await desk.iq(f"<disable xmlns='{NS}'/>", type="set", id="off")).get("type") == "result"
    await phone.send("<message to='bob@localhost' type='chat' id='x'><body>1</body></message>")
    await until_pong(phone)  # bob is offline: stored, nothing else
    for client in (desk, tablet):
        assert [m for m in await until_pong(client) if m.tag == "message"] == []


async def test_enable_needs_a_set_to_ones_own_account(carbons: TestServer) -> None:
    phone = await online(carbons, "alice", "phone", enable=False)
    reply = await phone.iq(f"<enable xmlns='{NS}'/>", type="get", id="g")
    assert stanza_error(reply)[1] == "service-unavailable"
    reply = await phone.iq(f"<enable xmlns='{NS}'/>", type="set", id="h", to="bob@localhost")
    assert reply.get("type") == "error"
    info = await phone.iq(
        "<query xmlns='http://jabber.org/protocol/disco#info'/>", to="localhost", id="d"
    )
    features = {f.get("var") for f in info.iter("{http://jabber.org/protocol/disco#info}feature")}
    assert {NS, "urn:xmpp:carbons:rules:0"} <= features
