"""Client State Indication (XEP-0352) over real sockets: what an inactive client is spared.

A stanza the server held carries a ``<delay/>`` from the user's bare JID, which one sent at
once never does: that is how these tests see what was held, without waiting for nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from minixmpp.roster import RosterItem
from minixmpp.testing import TestServer, running_server
from tests.conftest import PASSWORDS
from tests.xmpp import NS_SASL, RawClient, login

CSI = "urn:xmpp:csi:0"
DELAY = "{urn:xmpp:delay}delay"
CHATSTATES = "http://jabber.org/protocol/chatstates"
CARBONS = "urn:xmpp:carbons:2"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


async def start(tmp_path: Path, **options: Any) -> AsyncIterator[TestServer]:
    modules = ["disco", "ping", "presence", "roster", "carbons", "csi"]
    async with running_server(tmp_path, modules=modules, options=options) as srv:
        for name, password in PASSWORDS.items():
            await srv.create_user(name, password)
        rosters = srv.server.rosters
        await rosters.save("localhost", "alice", RosterItem("bob@localhost", subscription="both"))
        await rosters.save("localhost", "bob", RosterItem("alice@localhost", subscription="both"))
        yield srv


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[TestServer]:
    async for srv in start(tmp_path):
        yield srv


async def online(srv: TestServer, user: str, resource: str) -> RawClient:
    client, _ = await login(srv.c2s_port, srv.ca_file, user, PASSWORDS[user], resource)
    await client.iq("<query xmlns='jabber:iq:roster'/>", id="roster")
    await client.send("<presence/>")
    await client.expect_where("presence", from_=f"{user}@localhost/{resource}")
    return client


async def until_pong(client: RawClient, id: str = "rt") -> list[etree._Element]:
    """Everything that arrives before the answer to a ping (so: all the server sent before)."""
    await client.send(f"<iq type='get' id='{id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    got = []
    while True:
        el = await client.next()
        if el.tag == "iq" and el.get("id") == id:
            return got
        got.append(el)


async def pair(srv: TestServer) -> tuple[RawClient, RawClient]:
    """alice (going inactive) and bob, each seeing the other online, nothing left to read."""
    alice = await online(srv, "alice", "phone")
    bob = await online(srv, "bob", "desk")
    await alice.expect_where("presence", from_="bob@localhost/desk")
    await until_pong(alice)
    await alice.send(f"<inactive xmlns='{CSI}'/>")
    return alice, bob


def to_phone(id: str, payload: str, type: str = "normal") -> str:
    return f"<message to='alice@localhost/phone' id='{id}' type='{type}'>{payload}</message>"


def held(el: etree._Element) -> bool:
    delay = el.find(DELAY)
    if delay is None:
        return False
    assert delay.get("from") == "alice@localhost" and delay.get("stamp", "").endswith("Z")
    return True


def summary(elements: list[etree._Element]) -> list[tuple[str, str | None, bool]]:
    """(tag, id or show or chat state, held) of each element."""

    def what(el: etree._Element) -> str | None:
        if el.tag == "presence":
            return el.get("type") or el.findtext("show") or "available"
        states = [etree.QName(c).localname for c in el if etree.QName(c).namespace == CHATSTATES]
        return el.get("id") or (states[0] if states else None)

    return [(el.tag, what(el), held(el)) for el in elements]


async def test_the_feature_is_offered_once_authenticated(server: TestServer) -> None:
    client = await RawClient.connect(server.c2s_port)
    features = await client.open()
    assert features.find(f"{{{CSI}}}csi") is None
    await client.starttls(server.ca_file)
    assert (await client.scram("alice", PASSWORDS["alice"])).tag == f"{{{NS_SASL}}}success"
    features = await client.open()
    assert features.find(f"{{{CSI}}}csi") is not None


async def test_before_authentication_it_is_an_unknown_element(server: TestServer) -> None:
    client = await RawClient.connect(server.c2s_port)
    await client.open()
    await client.send(f"<inactive xmlns='{CSI}'/>")
    assert await client.stream_error() == ("unsupported-stanza-type", None)


async def test_updates_are_held_and_folded_until_active(server: TestServer) -> None:
    alice, bob = await pair(server)
    for show in ("away", "dnd", "xa"):
        await bob.send(f"<presence><show>{show}</show></presence>")
    for state in ("composing", "paused"):
        await bob.send(
            f"<message to='alice@localhost' type='chat'><{state} xmlns='{CHATSTATES}'/></message>"
        )
    for i in (1, 2):
        await bob.send(to_phone(f"rcpt{i}", f"<received xmlns='urn:xmpp:receipts' id='{i}'/>"))
    await bob.send(
        "<message to='alice@localhost/phone' type='headline' id='news'><body>n</body></message>"
    )
    await until_pong(bob)  # the server has handled all of it
    await alice.send(f"<active xmlns='{CSI}'/>")
    got = await until_pong(alice)
    assert summary(got) == [
        ("presence", "xa", True),  # the last of three
        ("message", "paused", True),  # the last chat state
        ("message", "rcpt1", True),  # receipts are not folded
        ("message", "rcpt2", True),
        ("message", "news", True),
    ]
    # active again: nothing is held
    await bob.send("<presence><show>chat</show></presence>")
    assert summary([await alice.expect("presence")]) == [("presence", "chat", False)]


async def test_a_message_with_a_body_comes_at_once_after_what_was_held(server: TestServer) -> None:
    alice, bob = await pair(server)
    await bob.send("<presence><show>away</show></presence>")
    await bob.send(to_phone("m1", f"<body>hi</body><active xmlns='{CHATSTATES}'/>", "chat"))
    first, second = await alice.next(), await alice.next()  # alice does nothing: it comes
    assert summary([first, second]) == [("presence", "away", True), ("message", "m1", False)]
    # then, for csi_resume_inactive_delay (5 s by default), updates go at once
    await bob.send("<presence><show>dnd</show></presence>")
    assert summary([await alice.expect("presence")]) == [("presence", "dnd", False)]


URGENT = [
    to_phone("subject", "<subject>room topic</subject>"),
    to_phone("err", f"<error type='cancel'><item-not-found xmlns='{STANZAS}'/></error>", "error"),
    to_phone("invite", "<x xmlns='jabber:x:conference' jid='room@muc.localhost'/>"),
    to_phone("omemo", "<encryption xmlns='urn:xmpp:eme:0' namespace='eu.siacs.conversations'/>"),
    to_phone("call", "<propose xmlns='urn:xmpp:jingle-message:0' id='c1'/>"),
    to_phone("muc", "<x xmlns='http://jabber.org/protocol/muc#user'><invite from='a@b'/></x>"),
    to_phone("jingle", "<jingle xmlns='urn:xmpp:jingle:1'/>"),  # csi_important_payloads
    "<presence to='alice@localhost' type='unsubscribe' id='sub'/>",
]


@pytest.mark.parametrize("stanza", URGENT, ids=lambda s: etree.fromstring(s).get("id"))
async def test_what_is_urgent(tmp_path: Path, stanza: str) -> None:
    async for srv in start(tmp_path, csi_important_payloads=["{urn:xmpp:jingle:1}jingle"]):
        alice, bob = await pair(srv)
        await bob.send(to_phone("chatty", f"<gone xmlns='{CHATSTATES}'/>"))
        await bob.send(stanza)
        got = [await alice.next(), await alice.next()]  # alice does nothing: they come
        wanted_id = etree.fromstring(stanza).get("id")
        assert [(el.get("id"), held(el)) for el in got] == [("chatty", True), (wanted_id, False)]


async def test_what_is_not_urgent_stays_held(server: TestServer) -> None:
    alice, bob = await pair(server)
    await bob.send(to_phone("jingle", "<jingle xmlns='urn:xmpp:jingle:1'/>"))  # not configured
    await bob.send(
        "<presence to='alice@localhost/phone' type='error' id='perr'><error "
        f"type='cancel'><gone xmlns='{STANZAS}'/></error></presence>"
    )
    await until_pong(bob)
    await alice.send(f"<active xmlns='{CSI}'/>")
    assert [(el.get("id"), held(el)) for el in await until_pong(alice)] == [
        ("jingle", True),
        ("perr", True),
    ]


async def test_client_activity_flushes(server: TestServer) -> None:
    alice, bob = await pair(server)
    await bob.send("<presence><show>away</show></presence>")
    await until_pong(bob)
    # alice writes to bob: whatever was held for her comes at once
    await alice.send(
        "<message to='bob@localhost' type='chat' id='out'><body>hello</body></message>"
    )
    assert summary([await alice.next()]) == [("presence", "away", True)]
    assert (await bob.expect("message")).get("id") == "out"


async def test_only_the_inactive_resource_is_spared(server: TestServer) -> None:
    alice, bob = await pair(server)
    desk = await online(server, "alice", "desk")
    await desk.expect_where("presence", from_="bob@localhost/desk")  # the probe's answer
    await bob.send("<presence><show>away</show></presence>")
    assert summary([await desk.expect_where("presence", from_="bob@localhost/desk")]) == [
        ("presence", "away", False)
    ]
    await alice.send(f"<active xmlns='{CSI}'/>")
    got = [el for el in await until_pong(alice) if el.get("from") == "bob@localhost/desk"]
    assert summary(got) == [("presence", "away", True)]  # its own copy got the delay


async def test_carbons_of_what_the_user_sent_are_urgent(server: TestServer) -> None:
    alice, _ = await pair(server)
    desk = await online(server, "alice", "desk")
    await alice.iq(f"<enable xmlns='{CARBONS}'/>", type="set", id="cb")  # flushes desk's presence
    await alice.send(f"<inactive xmlns='{CSI}'/>")
    await until_pong(alice)
    await desk.send(
        f"<message to='bob@localhost' type='chat'><composing xmlns='{CHATSTATES}'/></message>"
    )
    await desk.send("<message to='bob@localhost' type='chat' id='c2'><body>x</body></message>")
    first, second = await alice.next(), await alice.next()
    # the chat state's sent carbon is urgent too (Prosody: a carbon of one's own message)
    assert [(el.find(f"{{{CARBONS}}}sent") is not None, held(el)) for el in (first, second)] == [
        (True, False),
        (True, False),
    ]


async def test_the_queue_limit_flushes(tmp_path: Path) -> None:
    async for srv in start(tmp_path, csi_queue_size=3):
        alice, bob = await pair(srv)
        for i in range(3):
            await bob.send(to_phone(f"h{i}", f"<body>{i}</body>", "headline"))
        got = [await alice.next() for _ in range(3)]  # alice does nothing
        assert summary(got) == [("message", f"h{i}", True) for i in range(3)]


async def test_inactive_again_after_the_grace_period(tmp_path: Path) -> None:
    async for srv in start(tmp_path, csi_resume_inactive_delay=0.05):
        alice, bob = await pair(srv)
        await bob.send("<message to='alice@localhost' type='chat' id='m'><body>1</body></message>")
        assert (await alice.expect("message")).get("id") == "m"
        session = srv.server.hosts["localhost"].sessions.get("alice@localhost/phone")
        holder = session.data["csi"]
        async with asyncio.timeout(5):
            while not holder.holding:  # noqa: ASYNC110  # it ends on the server's own timer
                await asyncio.sleep(0.01)
        await bob.send("<presence><show>xa</show></presence>")
        await until_pong(bob)
        assert summary(await until_pong(alice)) == [("presence", "xa", True)]
