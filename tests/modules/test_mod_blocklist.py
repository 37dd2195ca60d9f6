"""Blocking Command (XEP-0191) over real sockets: the list, pushes, and what a block does to
stanzas in both directions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from minixmpp.roster import RosterItem
from minixmpp.testing import TestServer, running_server
from tests.conftest import PASSWORDS
from tests.stored import stored
from tests.xmpp import RawClient, login, same_xml, stanza_error, until_pong

NS = "urn:xmpp:blocking"
BLOCKED = "<blocked xmlns='urn:xmpp:blocking:errors'/>"


@pytest.fixture
async def srv(tmp_path: Path) -> AsyncIterator[TestServer]:
    async with running_server(
        tmp_path,
        modules=["disco", "ping", "blocklist"],
        options={"blocklist_max_items": 3},
    ) as server:
        for name, password in PASSWORDS.items():
            await server.create_user(name, password)
        yield server


async def online(srv: TestServer, user: str, resource: str) -> RawClient:
    client, _ = await login(srv.c2s_port, srv.ca_file, user, PASSWORDS[user], resource)
    await client.send("<presence/>")
    await client.expect("presence")
    return client


async def befriend(srv: TestServer, a: str, b: str) -> None:
    rosters = srv.server.hosts["localhost"].rosters
    await rosters.save("localhost", a, RosterItem(f"{b}@localhost", subscription="both"))
    await rosters.save("localhost", b, RosterItem(f"{a}@localhost", subscription="both"))


async def block(client: RawClient, *jids: str, action: str = "block") -> None:
    items = "".join(f"<item jid='{j}'/>" for j in jids)
    reply = await client.iq(f"<{action} xmlns='{NS}'>{items}</{action}>", type="set", id=action)
    assert reply.get("type") == "result"


async def test_list_block_unblock_and_pushes(srv: TestServer) -> None:
    phone = await online(srv, "alice", "phone")
    desk = await online(srv, "alice", "desk")  # never asks for the list: no pushes
    listing = await phone.iq(f"<blocklist xmlns='{NS}'/>", id="l1")
    same_xml(
        listing, f"<iq type='result' to='alice@localhost/phone'><blocklist xmlns='{NS}'/></iq>"
    )
    await phone.send(
        f"<iq type='set' id='b1'><block xmlns='{NS}'>"
        "<item jid='Bob@LocalHost'/><item jid='spam.example'/></block></iq>"
    )
    same_xml(
        await phone.expect_where("iq", id="b1"), "<iq type='result' to='alice@localhost/phone'/>"
    )
    push = await phone.expect_where("iq", id="blocklist-push")
    same_xml(
        push,
        f"<iq type='set' to='alice@localhost/phone'><block xmlns='{NS}'>"
        "<item jid='bob@localhost'/><item jid='spam.example'/></block></iq>",
    )
    assert [el for el in await until_pong(desk) if el.tag == "iq"] == []
    listing = await desk.iq(f"<blocklist xmlns='{NS}'/>", id="l2")
    assert [i.get("jid") for i in listing[0]] == ["bob@localhost", "spam.example"]
    # now the desk asked: it gets the unblock push too
    await phone.send(
        f"<iq type='set' id='u1'><unblock xmlns='{NS}'><item jid='spam.example'/></unblock></iq>"
    )
    for client in (phone, desk):
        push = await client.expect_where("iq", id="blocklist-push")
        assert [i.get("jid") for i in push[0]] == ["spam.example"]
    await block(phone, action="unblock")  # unblock all
    push = await desk.expect_where("iq", id="blocklist-push")
    same_xml(push, f"<iq type='set' to='alice@localhost/desk'><unblock xmlns='{NS}'/></iq>")
    assert len((await desk.iq(f"<blocklist xmlns='{NS}'/>", id="l3"))[0]) == 0


async def test_errors_and_limit(srv: TestServer) -> None:
    alice = await online(srv, "alice", "phone")
    reply = await alice.iq(f"<block xmlns='{NS}'/>", type="set")
    assert stanza_error(reply) == ("modify", "bad-request", "A block needs at least one item")
    reply = await alice.iq(
        f"<block xmlns='{NS}'><item jid='ok@x'/><item jid='a@b@c'/></block>", type="set"
    )
    assert stanza_error(reply)[:2] == ("modify", "jid-malformed")
    assert len((await alice.iq(f"<blocklist xmlns='{NS}'/>"))[0]) == 0  # all or nothing
    await block(alice, "a@x", "b@x", "c@x")
    reply = await alice.iq(f"<block xmlns='{NS}'><item jid='d@x'/></block>", type="set")
    assert stanza_error(reply) == (
        "wait",
        "resource-constraint",
        "Blocklists are limited to 3 items",
    )
    await block(alice, "a@x")  # already there: no growth
    reply = await alice.iq(f"<blocklist xmlns='{NS}'/>", to="bob@localhost")
    assert stanza_error(reply)[1] == "service-unavailable"  # only one's own list


async def test_what_a_blocked_contact_gets(srv: TestServer) -> None:
    alice = await online(srv, "alice", "phone")
    bob = await online(srv, "bob", "laptop")
    await block(alice, "bob@localhost")
    await bob.send("<message to='alice@localhost' type='chat' id='m1'><body>hi</body></message>")
    same_xml(
        await bob.expect("message"),
        "<message type='error' from='alice@localhost' to='bob@localhost/laptop'>"
        "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
        "</error></message>",
    )
    await bob.send("<message to='alice@localhost/phone' id='m2'><body>hi</body></message>")
    reply = await bob.expect("message")
    assert (reply.get("id"), stanza_error(reply)) == ("m2", ("cancel", "service-unavailable", None))
    await bob.send("<message to='alice@localhost' type='headline' id='h'><body>x</body></message>")
    await bob.send("<presence to='alice@localhost/phone' id='p'/>")
    await bob.send("<presence to='alice@localhost' type='subscribe' id='s'/>")
    reply = await bob.iq("<query xmlns='jabber:iq:version'/>", to="alice@localhost/phone", id="v")
    assert stanza_error(reply) == ("cancel", "service-unavailable", None)
    await bob.send("<iq type='result' id='r' to='alice@localhost/phone'/>")
    assert [el.tag for el in await until_pong(bob)] == []  # dropped, no answers
    assert await until_pong(alice) == []  # nothing reached alice
    assert await srv.server.hosts["localhost"].rosters.pending("localhost", "alice") == []
    # offline: not stored, answered
    await alice.close()
    await bob.send("<message to='alice@localhost' type='chat' id='m3'><body>hi</body></message>")
    assert stanza_error(await bob.expect("message"))[1] == "service-unavailable"
    # others still get through
    carol = await online(srv, "carol", "c")
    await carol.send("<message to='bob@localhost' type='chat' id='c1'><body>yo</body></message>")
    assert (await bob.expect("message")).get("id") == "c1"


async def test_sending_to_a_blocked_jid_is_refused(srv: TestServer) -> None:
    alice = await online(srv, "alice", "phone")
    bob = await online(srv, "bob", "laptop")
    await block(alice, "bob@localhost")
    await alice.send("<message to='bob@localhost' type='chat' id='m1'><body>hi</body></message>")
    same_xml(
        await alice.expect("message"),
        "<message type='error' from='bob@localhost' to='alice@localhost/phone'>"
        "<error type='cancel'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>You have blocked this JID</text>"
        f"{BLOCKED}</error></message>",
    )
    for stanza in (
        "<iq type='get' id='x1' to='bob@localhost/laptop'><ping xmlns='urn:xmpp:ping'/></iq>",
        "<presence to='bob@localhost/laptop' id='x2'/>",
        "<presence to='bob@localhost' id='x3'/>",  # directed presence to the bare JID
    ):
        await alice.send(stanza)
        error = await alice.next()
        assert stanza_error(error)[:2] == ("cancel", "not-acceptable")
        assert error.find(f"error/{{{NS}:errors}}blocked") is not None
    await alice.send("<iq type='result' id='x4' to='bob@localhost/laptop'/>")  # dropped
    assert await until_pong(alice) == []
    assert await until_pong(bob) == []
    # to one resource only
    await block(alice, "bob@localhost", action="unblock")
    await block(alice, "bob@localhost/laptop")
    await alice.send(
        "<message to='bob@localhost/laptop' type='chat' id='m2'><body>1</body></message>"
    )
    assert stanza_error(await alice.expect("message"))[1] == "not-acceptable"
    await alice.send("<message to='bob@localhost' type='chat' id='m3'><body>2</body></message>")
    assert (await bob.expect("message")).get("id") == "m3"


async def test_presence_on_block_and_unblock(srv: TestServer) -> None:
    await befriend(srv, "alice", "bob")
    alice = await online(srv, "alice", "phone")
    bob = await online(srv, "bob", "laptop")
    await until_pong(alice)
    await until_pong(bob)
    await block(alice, "bob@localhost")
    gone = await bob.expect("presence")
    same_xml(gone, "<presence type='unavailable' from='alice@localhost/phone' to='bob@localhost'/>")
    # alice's later broadcasts do not reach bob, bob's do not reach alice
    await alice.send("<presence><show>away</show></presence>")
    await bob.send("<presence><show>dnd</show></presence>")
    assert [el.get("from") for el in await until_pong(alice)] == ["alice@localhost/phone"]
    assert [el.get("from") for el in await until_pong(bob)] == ["bob@localhost/laptop"]
    # a new resource of bob probes alice: no answer
    bob2 = await online(srv, "bob", "tablet")
    assert "alice@localhost/phone" not in [el.get("from") for el in await until_pong(bob2)]
    await block(alice, "bob@localhost", action="unblock")
    back = [el for el in await until_pong(bob) if el.get("from", "").startswith("alice")]
    assert [(el.get("from"), el.findtext("show")) for el in back] == [
        ("alice@localhost/phone", "away")
    ]


async def test_pending_request_from_a_blocked_contact_is_dropped(srv: TestServer) -> None:
    alice = await online(srv, "alice", "phone")
    bob = await online(srv, "bob", "laptop")
    await bob.send("<presence to='alice@localhost' type='subscribe'/>")
    await until_pong(bob)
    assert (await alice.expect("presence")).get("type") == "subscribe"
    rosters = srv.server.hosts["localhost"].rosters
    assert [c for c, _ in await rosters.pending("localhost", "alice")] == ["bob@localhost"]
    await block(alice, "bob@localhost")
    assert await rosters.pending("localhost", "alice") == []


async def test_a_hostile_client_keeps_a_bounded_blocklist(srv: TestServer) -> None:
    """JIDs blocked one by one and a hundred at a time: the stored list stays at
    blocklist_max_items (the database row), refused on the wire, another user served."""
    alice = await online(srv, "alice", "phone")
    bob = await online(srv, "bob", "laptop")
    codes = []
    for i in range(12):
        items = "".join(f"<item jid='u{i}-{j}@example.com'/>" for j in range(1 if i < 5 else 100))
        reply = await alice.iq(f"<block xmlns='{NS}'>{items}</block>", type="set", id=f"b{i}")
        codes.append(reply.get("type") if reply.get("type") == "result" else stanza_error(reply))
        assert await until_pong(bob) == []
    refusal = ("wait", "resource-constraint", "Blocklists are limited to 3 items")
    assert codes == ["result"] * 3 + [refusal] * 9
    rows, size = await stored(srv, "alice", "blocklist")
    assert rows == 1 and size < 200, (rows, size)  # three JIDs of about 20 bytes
    listed = await alice.iq(f"<blocklist xmlns='{NS}'/>", id="get")
    assert len(list(listed.iter(f"{{{NS}}}item"))) == 3
