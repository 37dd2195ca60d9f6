"""Presence with rosters, stanza by stanza: login, logout, connection loss, probes, pending
requests, pre-approval, who receives what, account deletion.

Expected stanzas are what a local Prosody 0.12.3 sends in the same scenarios, where it was
compared; the differences are RFC 6121's, named where they occur.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from lxml import etree

from minixmpp.roster import RosterItem
from minixmpp.testing import TestServer, running_server
from tests.xmpp import NS_BIND, NS_SASL, RawClient, login, receives, stanza_error

R = "xmlns='jabber:iq:roster'"
DELAY = "<delay xmlns='urn:xmpp:delay' from='localhost' stamp=''/>"


async def subscribe_both(server: TestServer, a: str, b: str) -> None:
    rosters = server.server.rosters
    await rosters.save("localhost", a, RosterItem(f"{b}@localhost", subscription="both"))
    await rosters.save("localhost", b, RosterItem(f"{a}@localhost", subscription="both"))


async def connect(
    server: TestServer, user: str, resource: str, *, roster: bool = True, password: str = ""
) -> RawClient:
    """Log in; request the roster (an 'interested' resource) unless told not to."""
    client, _ = await login(
        server.c2s_port, server.ca_file, user, password or f"{user}-secret", resource
    )
    if roster:
        await client.iq("<query xmlns='jabber:iq:roster'/>", id="roster")
    return client


async def test_login_logout_and_connection_loss(server: TestServer) -> None:
    await subscribe_both(server, "alice", "bob")
    bob = await connect(server, "bob", "phone")
    bob_presence = "<show>xa</show><status>at work</status><priority>3</priority>"
    await bob.send(f"<presence>{bob_presence}</presence>")
    await receives(
        bob,
        f"<presence from='bob@localhost/phone' xml:lang='en'>{bob_presence}</presence>",
        "<presence type='unavailable' from='alice@localhost' to='bob@localhost/phone'/>",
    )  # the probe's answer: alice is offline

    alice = await connect(server, "alice", "r1")
    await alice.send("<presence><status>back</status></presence>")
    await receives(
        alice,
        "<presence from='alice@localhost/r1' xml:lang='en'><status>back</status></presence>",
        "<presence xml:lang='en' from='bob@localhost/phone' to='alice@localhost/r1'>"
        f"{bob_presence}{DELAY}</presence>",
    )
    await receives(
        bob,
        "<presence xml:lang='en' from='alice@localhost/r1' to='bob@localhost'>"
        "<status>back</status></presence>",
    )
    await alice.send("<presence><show>away</show></presence>")
    await receives(
        alice, "<presence from='alice@localhost/r1' xml:lang='en'><show>away</show></presence>"
    )
    await receives(
        bob,
        "<presence xml:lang='en' from='alice@localhost/r1' to='bob@localhost'>"
        "<show>away</show></presence>",
    )

    alice.writer.transport.abort()  # no </stream:stream>, no TLS close_notify
    gone = await bob.next()
    status = gone.findtext("status") or ""
    assert status.startswith("Disconnected: ")
    await receives(bob)
    assert (gone.get("type"), gone.get("from"), gone.get("to")) == (
        "unavailable",
        "alice@localhost/r1",
        "bob@localhost",
    )

    alice = await connect(server, "alice", "r2")
    await alice.send("<presence/>")
    await bob.next()
    await alice.send("</stream:stream>")  # a clean close: no status
    await receives(
        bob, "<presence type='unavailable' from='alice@localhost/r2' to='bob@localhost'/>"
    )


async def test_probe_answers(server: TestServer) -> None:
    await subscribe_both(server, "alice", "bob")
    alice = await connect(server, "alice", "r1")
    await alice.send("<presence type='probe' to='bob@localhost' id='pr0'/>")
    await receives(
        alice, "<presence type='unavailable' from='bob@localhost' to='alice@localhost/r1'/>"
    )

    bob = await connect(server, "bob", "phone")
    await bob.send("<presence><show>dnd</show></presence>")
    await receives(
        bob,
        "<presence from='bob@localhost/phone' xml:lang='en'><show>dnd</show></presence>",
        "<presence type='unavailable' from='alice@localhost' to='bob@localhost/phone'/>",
    )  # alice is connected, but not available
    phone = (
        "<presence xml:lang='en' from='bob@localhost/phone' to='alice@localhost/r1'>"
        f"<show>dnd</show>{DELAY}</presence>"
    )
    for target in ("bob@localhost", "bob@localhost/phone"):  # a full JID: all resources
        await alice.send(f"<presence type='probe' to='{target}' id='pr1'/>")
        await receives(alice, phone)  # the probe's id is not copied

    laptop = await connect(server, "bob", "laptop")
    await laptop.send("<presence><priority>-3</priority></presence>")
    await alice.send("<presence type='probe' to='bob@localhost' id='pr2'/>")
    await receives(
        alice,
        phone,
        "<presence xml:lang='en' from='bob@localhost/laptop' to='alice@localhost/r1'>"
        f"<priority>-3</priority>{DELAY}</presence>",
    )

    for stranger in ("carol@localhost", "nobody@localhost"):  # not a subscriber: nothing shown
        await alice.send(f"<presence type='probe' to='{stranger}' id='pr3'/>")
        await receives(alice)
    carol = await connect(server, "carol", "x")
    await carol.send("<presence type='probe' to='bob@localhost' id='pr4'/>")
    await receives(carol)

    await alice.send("<presence/>")  # what comes to the bare JID goes to available resources
    assert len(await alice.drain()) == 3  # the echo, bob's phone and laptop
    await alice.send("<presence type='probe' to='localhost' id='pr5'/>")  # the server is there
    await receives(alice, "<presence id='pr5' from='localhost' to='alice@localhost'/>")
    await alice.send("<presence type='probe' to='alice@localhost' id='pr6'/>")
    await receives(
        alice,
        "<presence type='error' id='pr6' to='alice@localhost/r1'><error type='modify'>"
        "<bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Invalid presence type</text>"
        "</error></presence>",
    )
    # nor through one's own full JID: no roster item for oneself, no request to oneself
    await alice.send("<presence type='subscribe' to='alice@localhost/r1' id='pr7'/>")
    await receives(
        alice,
        "<presence type='error' id='pr7' to='alice@localhost/r1' from='alice@localhost/r1'>"
        "<error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Invalid presence type</text>"
        "</error></presence>",
    )
    assert await server.server.rosters.item("localhost", "alice", "alice@localhost") is None


async def test_subscribing_to_the_server_and_to_nobody(server: TestServer) -> None:
    alice = await connect(server, "alice", "r1")
    await alice.send("<presence to='localhost' type='subscribe' id='h1'/>")
    await receives(
        alice,
        f"<iq type='set'><query {R} ver='1'><item jid='localhost' ask='subscribe'"
        " subscription='none'/></query></iq>",
        "<presence type='subscribed' id='h1' from='localhost' to='alice@localhost'/>",
        f"<iq type='set'><query {R} ver='2'><item jid='localhost' subscription='to'/></query></iq>",
    )
    # RFC 6121 §3.1.3: no such account, so the request is refused (Prosody stores it instead)
    await alice.send("<presence to='nobody@localhost' type='subscribe' id='n1'/>")
    await receives(
        alice,
        f"<iq type='set'><query {R} ver='3'><item jid='nobody@localhost' ask='subscribe'"
        " subscription='none'/></query></iq>",
        "<presence type='unsubscribed' from='nobody@localhost' to='alice@localhost'/>",
        f"<iq type='set'><query {R} ver='4'><item jid='nobody@localhost'"
        " subscription='none'/></query></iq>",
    )
    assert await server.server.rosters.pending("localhost", "nobody") == []


async def test_pending_request_kept_whole_and_redelivered(tmp_path: Path) -> None:
    request = (
        "<presence to='bob@localhost' type='subscribe' id='sub1' xml:lang='fr'>"
        "<status>please add me</status><preauth xmlns='urn:xmpp:pars:0' token='abc'/>"
        "<nick xmlns='http://jabber.org/protocol/nick'>Al</nick></presence>"
    )
    stored = request.replace("<presence ", "<presence from='alice@localhost' ")
    async with running_server(tmp_path) as srv:
        for name in ("alice", "bob"):
            await srv.create_user(name, "pw")
        alice, _ = await login(srv.c2s_port, srv.ca_file, "alice", "pw")
        await alice.send(request)
        await alice.send(request.replace(">Al<", ">Al2<"))  # the first request wins
        await alice.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")
    async with running_server(tmp_path) as srv:  # survives a restart
        bob, _ = await login(srv.c2s_port, srv.ca_file, "bob", "pw", "c1")
        await bob.iq("<query xmlns='jabber:iq:roster'/>", id="roster")
        await receives(bob)  # nothing at bind or roster get
        await bob.send("<presence/>")
        await receives(bob, "<presence from='bob@localhost/c1' xml:lang='en'/>", stored)
        # a second resource, without a roster get, gets it at its initial presence too
        second, _ = await login(srv.c2s_port, srv.ca_file, "bob", "pw", "c2")
        await second.send("<presence/>")
        await receives(
            second,
            "<presence from='bob@localhost/c2' xml:lang='en'/>",
            f"<presence xml:lang='en' from='bob@localhost/c1' to='bob@localhost/c2'>{DELAY}"
            "</presence>",
            stored,
        )
        await receives(
            bob, "<presence xml:lang='en' from='bob@localhost/c2' to='bob@localhost/c1'/>"
        )
        await bob.send("<presence><show>away</show></presence>")  # not initial: not again
        await bob.next()
        await receives(bob)


async def test_pre_approval(server: TestServer) -> None:
    bob = await connect(server, "bob", "phone")
    await bob.send("<presence/>")
    await bob.next()
    carol = await connect(server, "carol", "c1")
    await carol.send("<presence/>")
    await carol.next()

    await bob.send("<presence to='carol@localhost' type='subscribed' id='pre1'/>")
    # RFC 6121 §2.1.2.1: the server SHOULD show the pre-approval (Prosody never does)
    await receives(
        bob,
        f"<iq type='set'><query {R} ver='1'><item jid='carol@localhost' subscription='none'"
        " approved='true'/></query></iq>",
    )
    await receives(carol)  # not routed

    # bob renames the item: the pre-approval stays (Prosody loses it here)
    await bob.send(
        f"<iq type='set' id='ren'><query {R}><item jid='carol@localhost' name='C'/></query></iq>"
    )
    await receives(
        bob,
        "<iq type='result' id='ren' to='bob@localhost/phone'/>",
        f"<iq type='set'><query {R} ver='2'><item jid='carol@localhost' name='C'"
        " subscription='none' approved='true'/></query></iq>",
    )

    await carol.send("<presence to='bob@localhost' type='subscribe' id='sub1'/>")
    await receives(
        bob,  # approved at once: bob never sees the request
        f"<iq type='set'><query {R} ver='3'><item jid='carol@localhost' name='C'"
        " subscription='from'/></query></iq>",
    )
    await receives(
        carol,
        f"<iq type='set'><query {R} ver='1'><item jid='bob@localhost' ask='subscribe'"
        " subscription='none'/></query></iq>",
        "<presence type='subscribed' from='bob@localhost' to='carol@localhost'/>",
        f"<iq type='set'><query {R} ver='2'><item jid='bob@localhost'"
        " subscription='to'/></query></iq>",
        f"<presence xml:lang='en' from='bob@localhost/phone' to='carol@localhost'>{DELAY}"
        "</presence>",
    )


async def test_cancelling_a_pre_approval_is_not_routed(server: TestServer) -> None:
    bob = await connect(server, "bob", "phone")
    carol = await connect(server, "carol", "c1")
    await carol.send("<presence/>")
    await carol.next()
    await bob.send("<presence to='carol@localhost' type='subscribed'/>")
    await bob.next()
    await bob.send("<presence to='carol@localhost' type='unsubscribed'/>")  # RFC 6121 §3.2.2
    await receives(
        bob,
        f"<iq type='set'><query {R} ver='2'><item jid='carol@localhost'"
        " subscription='none'/></query></iq>",
    )
    await receives(carol)
    await carol.send("<presence to='bob@localhost' type='subscribe' id='s'/>")
    await carol.next()  # her push
    await carol.next()  # the acknowledgement: the request now waits for bob
    await receives(bob)  # bob is not available: it is stored
    assert await server.server.rosters.is_pending("localhost", "bob", "carol@localhost")


async def test_interested_and_available_resources(server: TestServer) -> None:
    avail = await connect(server, "alice", "avail", roster=False)
    await avail.send("<presence/>")
    inter = await connect(server, "alice", "inter")
    both = await connect(server, "alice", "both")
    await both.send("<presence/>")
    for client in (avail, both):
        await client.drain()  # echoes and each other's presence
    carol = await connect(server, "carol", "c1")
    await carol.send("<presence/>")
    await carol.next()

    await carol.send("<presence to='alice@localhost' type='subscribe' id='s1'/>")
    request = (
        "<presence to='alice@localhost' from='carol@localhost' xml:lang='en' id='s1'"
        " type='subscribe'/>"
    )
    await receives(avail, request)  # a request goes to available resources
    await receives(both, request)
    await receives(inter)
    await carol.next()
    await carol.next()

    await both.send("<presence to='carol@localhost' type='subscribed'/>")
    push = (
        f"<iq type='set'><query {R} ver='1'><item jid='carol@localhost'"
        " subscription='from'/></query></iq>"
    )
    await receives(inter, push)  # pushes go to interested resources
    await receives(both, push)
    await receives(avail)

    await carol.send("<presence to='alice@localhost' type='unsubscribe' id='u1'/>")
    unsubscribe = (
        "<presence to='alice@localhost' from='carol@localhost' xml:lang='en' id='u1'"
        " type='unsubscribe'/>"
    )
    push = (
        f"<iq type='set'><query {R} ver='2'><item jid='carol@localhost'"
        " subscription='none'/></query></iq>"
    )
    await receives(inter, unsubscribe, push)  # and so do subscribed/unsubscribe(d)
    await receives(both, unsubscribe, push)
    await receives(avail)


async def test_deleting_an_account_tells_its_contacts(server: TestServer) -> None:
    await subscribe_both(server, "alice", "bob")
    await server.server.rosters.add_pending(
        "localhost", "bob", "carol@localhost", b"<presence type='subscribe'/>"
    )
    alice = await connect(server, "alice", "desk")
    await alice.send("<presence/>")
    await alice.next()
    await receives(
        alice, "<presence type='unavailable' from='bob@localhost' to='alice@localhost/desk'/>"
    )
    bob = await connect(server, "bob", "phone")
    await bob.send("<presence/>")
    await alice.next()
    carol = await connect(server, "carol", "c")
    await carol.send(f"<iq type='set' id='a'><query {R}><item jid='bob@localhost'/></query></iq>")
    await carol.next()
    await carol.next()

    assert await server.server.hosts["localhost"].users.delete("bob")
    assert await bob.stream_error() == ("not-authorized", "Account deleted")
    await receives(
        alice,
        "<presence type='unavailable' from='bob@localhost/phone' to='alice@localhost'/>",
        "<presence type='unsubscribed' from='bob@localhost' to='alice@localhost'/>",
        f"<iq type='set'><query {R} ver='2'><item jid='bob@localhost'"
        " subscription='from'/></query></iq>",
        "<presence type='unsubscribe' from='bob@localhost' to='alice@localhost'/>",
        f"<iq type='set'><query {R} ver='3'><item jid='bob@localhost'"
        " subscription='none'/></query></iq>",
        # alice's own resources stop being visible to bob: RFC 6121 §3.3.3
    )
    await receives(carol)  # bob had only her request: refused, and she had no 'ask'
    rosters = server.server.rosters
    assert await rosters.items("localhost", "bob") == {}
    assert await rosters.pending("localhost", "bob") == []
    assert (await rosters.item("localhost", "alice", "bob@localhost")).subscription == "none"  # type: ignore[union-attr]


async def test_deleting_an_account_answers_requests_and_withdraws_pre_approvals(
    server: TestServer,
) -> None:
    await server.create_user("dave", "dave-secret")
    carol = await connect(server, "carol", "c")
    dave = await connect(server, "dave", "d")
    await dave.send("<presence/>")
    await dave.expect("presence")
    await carol.send("<presence to='bob@localhost' type='subscribe'/>")  # pending for bob
    await carol.drain()
    await dave.send("<presence to='bob@localhost' type='subscribed'/>")  # pre-approval (§3.4)
    await receives(
        dave,
        f"<iq type='set'><query {R} ver='1'><item jid='bob@localhost' subscription='none'"
        " approved='true'/></query></iq>",
    )
    assert await server.server.hosts["localhost"].users.delete("bob")
    await receives(
        carol,
        "<presence type='unsubscribed' from='bob@localhost' to='carol@localhost'/>",
        f"<iq type='set'><query {R} ver='2'><item jid='bob@localhost'"
        " subscription='none'/></query></iq>",
    )  # her request is refused and her 'ask' goes
    await receives(
        dave,
        f"<iq type='set'><query {R} ver='2'><item jid='bob@localhost'"
        " subscription='none'/></query></iq>",
    )  # the approval was for that account, not for the next one of that name
    await server.create_user("bob", "bob-secret")
    bob = await connect(server, "bob", "new")
    await bob.send("<presence to='dave@localhost' type='subscribe'/>")
    push = await bob.expect("iq")
    item = push.find("{jabber:iq:roster}query/{jabber:iq:roster}item")
    assert item is not None and dict(item.attrib) == {
        "jid": "dave@localhost", "subscription": "none", "ask": "subscribe"
    }  # fmt: skip
    await receives(bob)  # asked, not approved
    await receives(
        dave, "<presence type='subscribe' from='bob@localhost' to='dave@localhost' xml:lang='en'/>"
    )


async def test_a_recreated_account_starts_afresh(server: TestServer) -> None:
    await subscribe_both(server, "alice", "bob")
    bob = await connect(server, "bob", "phone")  # alice's roster is now read (and kept)
    await bob.send("<presence/>")
    await bob.drain()
    carol = await connect(server, "carol", "c")
    await carol.send("<presence to='alice@localhost' type='subscribe'/>")  # pending for alice
    await carol.drain()
    users = server.server.hosts["localhost"].users
    cached = await server.server.rosters.version("localhost", "alice")
    assert cached > 0
    assert await users.delete("alice")
    await users.create("alice", "new-secret")
    alice = await connect(server, "alice", "new", password="new-secret")
    # a client that cached the old account's roster is sent the new one, whole
    await alice.send(f"<iq type='get' id='r'><query xmlns='jabber:iq:roster' ver='{cached}'/></iq>")
    await alice.send("<presence/>")
    await receives(
        alice,
        f"<iq type='result' id='r' to='alice@localhost/new'><query {R} ver='{cached + 1}'/></iq>",
        "<presence from='alice@localhost/new' xml:lang='en'/>",
    )  # no old contacts, no old request


@pytest.mark.parametrize("subscription", ["from", "both"])
async def test_approving_a_subscriber_again_is_not_routed(
    server: TestServer, subscription: str
) -> None:
    rosters = server.server.rosters
    reverse = {"from": "to", "both": "both"}[subscription]
    await rosters.save("localhost", "alice", RosterItem("bob@localhost", subscription=subscription))
    await rosters.save("localhost", "bob", RosterItem("alice@localhost", subscription=reverse))
    alice = await connect(server, "alice", "a")
    bob = await connect(server, "bob", "b")
    for client in (bob, alice):
        await client.send("<presence/>")
    for client in (bob, alice):
        await client.drain()
    await alice.send("<presence to='bob@localhost' type='subscribed'/>")
    # RFC 6121 A.2.2: no state change, not routed (Prosody routes it and sends presence again)
    await receives(bob)
    await receives(alice)
    assert (await rosters.item("localhost", "alice", "bob@localhost")).subscription == subscription  # type: ignore[union-attr]


async def test_a_replaced_resource_goes_offline_before_its_successor_comes_online(
    server: TestServer,
) -> None:
    # A new connection takes over alice/r, sending bind and its presence in one write. As
    # Prosody: contacts get the old session's unavailable first, then the new presence, so
    # they end up seeing alice/r online; the new session never hears its predecessor leave.
    await subscribe_both(server, "alice", "bob")
    bob = await connect(server, "bob", "b")
    await bob.send("<presence/>")
    await bob.drain()
    old = await connect(server, "alice", "r")
    await old.send("<presence><status>old</status></presence>")
    await bob.expect_where("presence", from_="alice@localhost/r")
    new = await RawClient.connect(server.c2s_port)
    await new.open()
    await new.starttls(server.ca_file)
    assert (await new.scram("alice", "alice-secret")).tag == f"{{{NS_SASL}}}success"
    await new.open()
    await new.send(
        f"<iq type='set' id='b'><bind xmlns='{NS_BIND}'><resource>r</resource></bind></iq>"
        "<presence><status>new</status></presence>"
    )
    assert await old.stream_error() == ("conflict", "Replaced by new connection")
    first, second = await bob.next(), await bob.next()
    assert (first.get("from"), first.get("type")) == ("alice@localhost/r", "unavailable")
    assert (second.get("from"), second.get("type")) == ("alice@localhost/r", None)
    assert second.findtext("status") == "new"
    got = await new.drain()
    assert not [el for el in got if el.get("type") == "unavailable"], got


async def test_unavailable_reaches_those_who_had_directed_presence(server: TestServer) -> None:
    # RFC 6121 §4.6.3: an explicit unavailable goes to the subscribers and to every entity
    # that was sent directed presence (not only when the stream closes)
    carol = await connect(server, "carol", "c")
    alice = await connect(server, "alice", "a")
    await alice.send("<presence/>")
    await alice.expect("presence")
    await alice.send("<presence to='carol@localhost/c'><status>hi</status></presence>")
    await carol.expect_where("presence", from_="alice@localhost/a")
    await alice.send("<presence type='unavailable'/>")
    await receives(
        carol,
        "<presence type='unavailable' from='alice@localhost/a' to='carol@localhost/c'"
        " xml:lang='en'/>",
    )
    await receives(
        alice, "<presence type='unavailable' from='alice@localhost/a' xml:lang='en'/>"
    )  # the reflection


async def test_a_pending_request_is_sent_again_at_login(server: TestServer) -> None:
    # As Prosody: at each initial presence the requests still waiting for an answer ('ask')
    # go out again, so a contact whose server lost one (a remote server, a restored backup)
    # hears it again.
    alice = await connect(server, "alice", "a")
    await alice.send("<presence to='bob@localhost' type='subscribe'/>")
    await alice.iq("<ping xmlns='urn:xmpp:ping'/>", id="sync")  # stanzas are handled in order
    assert await server.server.rosters.remove_pending("localhost", "bob", "alice@localhost")
    await alice.send("</stream:stream>")
    await alice.closed()
    alice = await connect(server, "alice", "a2")
    await alice.send("<presence/>")
    # the request has gone out again (and waits for bob) before bob logs in: routed during
    # bob's own initial presence it could reach him twice (live, and among the stored ones)
    await alice.iq("<ping xmlns='urn:xmpp:ping'/>", id="sent")
    bob = await connect(server, "bob", "b")
    await bob.send("<presence/>")
    await receives(
        bob,
        "<presence from='bob@localhost/b' xml:lang='en'/>",
        "<presence type='subscribe' from='alice@localhost' to='bob@localhost'/>",
    )


async def ping_is_next(client: RawClient, id: str = "quiet") -> None:
    """Nothing reached this client but the answer to a ping it sends now (the server answers it
    after everything sent to this stream before)."""
    await client.send(f"<iq type='get' id='{id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    reply = await client.next()
    assert (reply.tag, reply.get("id")) == ("iq", id), etree.tostring(reply)


async def test_an_oversized_subscription_request_is_refused(server: TestServer) -> None:
    # 100 requests with a 200 KB status each were 20 MB to redeliver at every login: a request
    # over subscription_max_request_size (4096 bytes as stored) is refused, neither acknowledged
    # nor stored nor delivered.
    alice, _ = await login(server.c2s_port, server.ca_file, "alice", "alice-secret", presence=True)
    bob, _ = await login(server.c2s_port, server.ca_file, "bob", "bob-secret", presence=True)
    await alice.send(
        "<presence to='bob@localhost' type='subscribe' id='big'>"
        f"<status>{'s' * 5000}</status></presence>"
    )
    error = await alice.expect_where("presence", type="error", id="big")
    assert error.get("from") == "bob@localhost"
    assert stanza_error(error) == (
        "modify",
        "not-acceptable",
        "Subscription requests are limited to 4096 bytes",
    )
    await ping_is_next(alice)  # no 'unavailable' acknowledging it
    await ping_is_next(bob)
    assert not await server.server.rosters.is_pending("localhost", "bob", "alice@localhost")
    await alice.send(
        "<presence to='bob@localhost' type='subscribe' id='ok'>"
        f"<status>{'s' * 3000}</status></presence>"
    )
    assert (await bob.expect_where("presence", type="subscribe")).get("id") == "ok"
    assert await server.server.rosters.is_pending("localhost", "bob", "alice@localhost")


async def test_pending_subscription_requests_are_limited_per_account(tmp_path: Path) -> None:
    async with running_server(tmp_path, options={"subscription_max_pending": 2}) as srv:
        users: dict[str, RawClient] = {}
        for name in ("bob", "a1", "a2", "a3"):
            await srv.create_user(name, "pw")
            if name != "bob":
                users[name], _ = await login(srv.c2s_port, srv.ca_file, name, "pw", presence=True)

        async def subscribe(name: str) -> str | None:
            """The type of bob's answer to a request from ``name``."""
            await users[name].send(f"<presence to='bob@localhost' type='subscribe' id='{name}'/>")
            answer = await users[name].expect_where("presence", from_="bob@localhost")
            return answer.get("type")

        assert [await subscribe(name) for name in ("a1", "a2", "a3")] == [
            "unavailable",  # acknowledged and stored
            "unavailable",
            "error",
        ]
        await users["a3"].send("<presence to='bob@localhost' type='subscribe' id='again'/>")
        error = await users["a3"].expect_where("presence", type="error", id="again")
        assert stanza_error(error) == (
            "wait",
            "resource-constraint",
            "Too many pending subscription requests",
        )
        assert await subscribe("a1") == "unavailable"  # already pending: not one more

        bob, _ = await login(srv.c2s_port, srv.ca_file, "bob", "pw")
        await bob.send("<presence/>")
        await bob.expect("presence")  # the reflection
        got = [await bob.next() for _ in range(2)]
        assert [(el.get("type"), el.get("from")) for el in got] == [
            ("subscribe", "a1@localhost"),
            ("subscribe", "a2@localhost"),
        ]
        await ping_is_next(bob)
        # An answer makes room for the next request.
        await bob.send("<presence to='a1@localhost' type='unsubscribed'/>")
        assert await subscribe("a3") == "unavailable"
        assert (await bob.expect_where("presence", type="subscribe")).get("from") == "a3@localhost"


async def test_a_request_routed_during_initial_presence_reaches_the_user_once(
    server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # bob is available as soon as his initial presence is handled, and his stored requests are
    # read a few awaits later: a request routed in between is delivered live and stored, and
    # must not be sent again among the stored ones (it was, seen in a loaded full run). The
    # read of bob's stored requests is held here until the live one has reached him.
    rosters = server.server.rosters
    read_pending, live = rosters.pending, asyncio.Event()

    async def pending(host: str, username: str) -> list[tuple[str, bytes]]:
        if username == "bob":
            await asyncio.wait_for(live.wait(), 10)
        return await read_pending(host, username)

    monkeypatch.setattr(rosters, "pending", pending)
    alice = await connect(server, "alice", "a")
    bob = await connect(server, "bob", "b")
    await bob.send("<presence/>")
    await bob.expect_where("presence", from_="bob@localhost/b")  # the reflection: available
    await alice.send("<presence to='bob@localhost' type='subscribe'/>")
    await bob.expect_where("presence", type="subscribe", from_="alice@localhost")
    live.set()
    await ping_is_next(bob)
