"""The mutual-subscription journey, stanza by stanza, as each client receives it.

The expected stanzas are what a local Prosody 0.12.3 sends for the same journey (run side by
side with this server), except where RFC 6121 asks for more than Prosody sends: an inbound
``unsubscribe`` is followed by ``unavailable`` from the contact's resources (§3.3.3), and
``unavailable`` precedes a routed ``unsubscribed`` (§3.2.2). Roster push ids are random; every
other attribute is compared, and nothing else may arrive.
"""

from __future__ import annotations

from lxml import etree

from minixmpp.testing import TestServer
from tests.xmpp import RawClient, login, receives

R = "xmlns='jabber:iq:roster'"


async def online(server: TestServer, user: str, resource: str) -> RawClient:
    client, jid = await login(server.c2s_port, server.ca_file, user, f"{user}-secret", resource)
    await client.send("<iq type='get' id='r0'><query xmlns='jabber:iq:roster'/></iq>")
    await client.send("<presence/>")
    await receives(
        client,
        f"<iq type='result' id='r0' to='{jid}'><query {R} ver='0'/></iq>",
        f"<presence from='{jid}' xml:lang='en'/>",
    )
    return client


async def test_mutual_subscription_journey(server: TestServer) -> None:
    alice = await online(server, "alice", "desk")
    bob = await online(server, "bob", "phone")

    # 1. alice asks to see bob's presence: pending out for her, a request for him
    await alice.send("<presence to='bob@localhost' type='subscribe' id='sub1'/>")
    await receives(
        alice,
        f"<iq type='set'><query {R} ver='1'><item jid='bob@localhost' ask='subscribe'"
        " subscription='none'/></query></iq>",
        "<presence type='unavailable' from='bob@localhost' to='alice@localhost'/>",
    )
    await receives(
        bob,
        "<presence to='bob@localhost' from='alice@localhost' xml:lang='en' id='sub1'"
        " type='subscribe'/>",
    )

    # 2. bob approves: alice is subscribed 'to' bob and sees his presence at once
    await bob.send("<presence to='alice@localhost' type='subscribed' id='ok1'/>")
    await receives(
        bob,
        f"<iq type='set'><query {R} ver='1'><item jid='alice@localhost'"
        " subscription='from'/></query></iq>",
    )
    await receives(
        alice,
        "<presence to='alice@localhost' from='bob@localhost' xml:lang='en' id='ok1'"
        " type='subscribed'/>",
        f"<iq type='set'><query {R} ver='2'><item jid='bob@localhost'"
        " subscription='to'/></query></iq>",
        "<presence xml:lang='en' from='bob@localhost/phone' to='alice@localhost'>"
        "<delay xmlns='urn:xmpp:delay' from='localhost' stamp=''/></presence>",
    )

    # 3. bob asks back
    await bob.send("<presence to='alice@localhost' type='subscribe' id='sub2'/>")
    await receives(
        bob,
        f"<iq type='set'><query {R} ver='2'><item jid='alice@localhost' ask='subscribe'"
        " subscription='from'/></query></iq>",
        "<presence type='unavailable' from='alice@localhost' to='bob@localhost'/>",
    )
    await receives(
        alice,
        "<presence to='alice@localhost' from='bob@localhost' xml:lang='en' id='sub2'"
        " type='subscribe'/>",
    )

    # 4. alice approves: both ways now; each sees the other's presence
    await alice.send("<presence to='bob@localhost' type='subscribed' id='ok2'/>")
    await receives(
        alice,
        f"<iq type='set'><query {R} ver='3'><item jid='bob@localhost'"
        " subscription='both'/></query></iq>",
        "<presence xml:lang='en' from='bob@localhost/phone' to='alice@localhost'>"
        "<delay xmlns='urn:xmpp:delay' from='localhost' stamp=''/></presence>",
    )
    await receives(
        bob,
        "<presence to='bob@localhost' from='alice@localhost' xml:lang='en' id='ok2'"
        " type='subscribed'/>",
        f"<iq type='set'><query {R} ver='3'><item jid='alice@localhost'"
        " subscription='both'/></query></iq>",
        "<presence xml:lang='en' from='alice@localhost/desk' to='bob@localhost'>"
        "<delay xmlns='urn:xmpp:delay' from='localhost' stamp=''/></presence>",
    )
    await alice.send("<iq type='get' id='ga'><query xmlns='jabber:iq:roster'/></iq>")
    await receives(
        alice,
        f"<iq type='result' id='ga' to='alice@localhost/desk'><query {R} ver='3'>"
        "<item jid='bob@localhost' subscription='both'/></query></iq>",
    )

    # 5. presence changes reach the subscriber, without a delay
    await alice.send("<presence><show>away</show></presence>")
    await receives(
        alice, "<presence from='alice@localhost/desk' xml:lang='en'><show>away</show></presence>"
    )
    await receives(
        bob,
        "<presence xml:lang='en' from='alice@localhost/desk' to='bob@localhost'>"
        "<show>away</show></presence>",
    )

    # 6. alice removes bob: both subscriptions are cancelled (RFC 6121 §2.5.2)
    await alice.send(
        "<iq type='set' id='rm'><query xmlns='jabber:iq:roster'><item jid='bob@localhost'"
        " subscription='remove'/></query></iq>"
    )
    await receives(
        alice,
        "<presence type='unavailable' from='bob@localhost/phone' to='alice@localhost'/>",
        "<iq type='result' id='rm' to='alice@localhost/desk'/>",
        f"<iq type='set'><query {R} ver='4'><item jid='bob@localhost'"
        " subscription='remove'/></query></iq>",
    )
    await receives(
        bob,
        "<presence type='unavailable' from='alice@localhost/desk' to='bob@localhost'/>",
        "<presence type='unsubscribed' from='alice@localhost' to='bob@localhost'/>",
        f"<iq type='set'><query {R} ver='4'><item jid='alice@localhost'"
        " subscription='from'/></query></iq>",
        "<presence type='unsubscribe' from='alice@localhost' to='bob@localhost'/>",
        f"<iq type='set'><query {R} ver='5'><item jid='alice@localhost'"
        " subscription='none'/></query></iq>",
    )
    for client, jid in ((alice, "alice@localhost/desk"), (bob, "bob@localhost/phone")):
        await client.send("<iq type='get' id='end'><query xmlns='jabber:iq:roster'/></iq>")
        reply = await client.next()
        items = [dict(i.attrib) for i in reply.iter("{jabber:iq:roster}item")]
        assert reply.get("to") == jid and items == (
            [] if client is alice else [{"jid": "alice@localhost", "subscription": "none"}]
        ), etree.tostring(reply)
