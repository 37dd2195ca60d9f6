"""Routing between real clients, with the replies a live Prosody 0.12.3 gave (recorded)."""

from __future__ import annotations

import pytest

from minixmpp.testing import TestServer
from tests.xmpp import RawClient, login, same_xml

SU = (
    "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
    "</error>"
)


def bad_request(text: str) -> str:
    return (
        "<error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
        f"<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{text}</text></error>"
    )


@pytest.fixture
async def alice(server: TestServer) -> RawClient:
    client, _ = await login(server.c2s_port, server.ca_file, "alice", "alice-secret", "r1")
    return client


@pytest.fixture
async def bob(server: TestServer) -> RawClient:
    client, _ = await login(
        server.c2s_port, server.ca_file, "bob", "bob-secret", "phone", presence=True
    )
    return client


A = "alice@localhost/r1"


@pytest.mark.parametrize(
    ("request_xml", "reply"),
    [
        (
            "<iq type='get' id='u1' to='localhost'><query xmlns='urn:unknown'/></iq>",
            f"<iq to='{A}' id='u1' from='localhost' type='error'>{SU}</iq>",
        ),
        (
            "<iq type='set' id='u1s' to='localhost'><query xmlns='urn:unknown'/></iq>",
            f"<iq to='{A}' id='u1s' from='localhost' type='error'>{SU}</iq>",
        ),
        (
            "<iq type='get' id='u1b'><query xmlns='urn:unknown'/></iq>",
            f"<iq to='{A}' id='u1b' type='error'>{SU}</iq>",
        ),
        (
            "<iq type='get' id='u2' to='alice@localhost'><query xmlns='urn:unknown'/></iq>",
            f"<iq to='{A}' id='u2' type='error'>{SU}</iq>",  # own account: no 'from'
        ),
        (
            "<iq type='get' id='u2b' to='bob@localhost'><query xmlns='urn:unknown'/></iq>",
            f"<iq to='{A}' id='u2b' from='bob@localhost' type='error'>{SU}</iq>",
        ),
        (
            "<iq type='get' id='u3' to='nobody@localhost'><query xmlns='jabber:iq:version'/></iq>",
            f"<iq to='{A}' id='u3' from='nobody@localhost' type='error'>{SU}</iq>",
        ),
        (
            "<iq type='get' id='u4' to='alice@localhost/none'><ping xmlns='urn:xmpp:ping'/></iq>",
            f"<iq to='{A}' id='u4' from='alice@localhost/none' type='error'>{SU}</iq>",
        ),
        (
            "<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
            "<iq type='error' from='localhost'>"
            + bad_request("Missing required 'id' attribute")
            + "</iq>",
        ),
        (
            "<iq type='get' id='two' to='localhost'><ping xmlns='urn:xmpp:ping'/>"
            "<x xmlns='y'/></iq>",
            "<iq type='error' id='two' from='localhost'>"
            + bad_request("Incorrect number of children for IQ stanza")
            + "</iq>",
        ),
        (
            "<iq type='get' id='zero' to='localhost'/>",
            "<iq type='error' id='zero' from='localhost'>"
            + bad_request("Incorrect number of children for IQ stanza")
            + "</iq>",
        ),
        (
            "<iq type='bogus' id='bt' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
            "<iq type='error' id='bt' from='localhost'>" + bad_request("Invalid IQ type") + "</iq>",
        ),
        (
            "<iq id='nt'><ping xmlns='urn:xmpp:ping'/></iq>",
            "<iq type='error' id='nt'>" + bad_request("Invalid IQ type") + "</iq>",
        ),
        (
            "<iq type='get' id='bj' to='@localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
            f"<iq to='{A}' id='bj' from='@localhost' type='error'><error type='modify'>"
            "<jid-malformed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
            "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>The destination address is invalid:"
            " @localhost</text></error></iq>",
        ),
        (
            "<iq type='get' id='rm' to='example.invalid'><ping xmlns='urn:xmpp:ping'/></iq>",
            f"<iq to='{A}' id='rm' from='example.invalid' type='error'><error type='cancel'>"
            "<not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
            "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Communication with remote domains"
            " is not enabled</text></error></iq>",
        ),
        (
            "<presence type='bogus' id='p4' to='bob@localhost'/>",
            f"<presence to='{A}' id='p4' from='bob@localhost' type='error'><error type='modify'>"
            "<bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
            "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Invalid presence type</text>"
            "</error></presence>",
        ),
        (
            "<message to='nobody@localhost' type='chat' id='m1'><body>hi</body></message>",
            f"<message to='{A}' id='m1' from='nobody@localhost' type='error'>{SU}</message>",
        ),
        (
            "<message to='nobody@localhost' id='m2'><body>hi</body></message>",
            f"<message to='{A}' id='m2' from='nobody@localhost' type='error'>{SU}</message>",
        ),
        (
            "<message to='nobody@localhost/res' type='groupchat' id='m3'><body>hi</body></message>",
            f"<message to='{A}' id='m3' from='nobody@localhost/res' type='error'>{SU}</message>",
        ),
        (
            "<message to='localhost' type='chat' id='m4'><body>hi</body></message>",
            f"<message to='{A}' id='m4' from='localhost' type='error'>{SU}</message>",
        ),
    ],
)
async def test_errors_match_prosody(alice: RawClient, request_xml: str, reply: str) -> None:
    await alice.send(request_xml)
    same_xml(await alice.next(), reply, ignore=())


@pytest.mark.parametrize(
    "request_xml",
    [
        "<iq type='result' id='r1' to='localhost'/>",
        "<iq type='error' id='r2' to='localhost'><error type='cancel'/></iq>",
        "<iq type='result' id='r3'/>",
        "<message to='nobody@localhost' type='headline'><body>x</body></message>",
        "<message to='nobody@localhost' type='error'><error type='cancel'/></message>",
        "<presence to='nobody@localhost'/>",
        "<presence to='nobody@localhost' type='subscribe'/>",
        "<presence to='nobody@localhost' type='probe'/>",
        "<message to='alice@localhost/offline' type='headline'><body>x</body></message>",
    ],
)
async def test_silently_dropped(alice: RawClient, request_xml: str) -> None:
    await alice.send(request_xml)
    await alice.nothing()


async def test_spoofed_from_is_replaced(alice: RawClient, bob: RawClient) -> None:
    await alice.send(
        "<message from='carol@localhost/x' to='bob@localhost/phone' id='s'>"
        "<body>hi</body></message>"
    )
    assert (await bob.expect("message")).get("from") == A


async def test_message_to_bare_and_full_jid(alice: RawClient, bob: RawClient) -> None:
    await alice.send(
        "<message to='bob@localhost' type='chat' id='m1'><body>hello bare</body></message>"
    )
    same_xml(
        await bob.expect("message"),
        f"<message to='bob@localhost' id='m1' xml:lang='en' from='{A}' type='chat'>"
        "<body>hello bare</body></message>",
        ignore=(),
    )
    await alice.send(
        "<message to='bob@localhost/phone' type='chat' id='m2' xml:lang='fr'>"
        "<body>it's here</body><thread>t1</thread><x xmlns='urn:ext'><y/></x></message>"
    )
    same_xml(
        await bob.expect("message"),
        f"<message to='bob@localhost/phone' id='m2' xml:lang='fr' from='{A}' type='chat'>"
        "<body>it's here</body><thread>t1</thread><x xmlns='urn:ext'><y/></x></message>",
        ignore=(),
    )
    # an offline resource: delivered to the available one, 'to' unchanged (Prosody)
    await alice.send(
        "<message to='bob@localhost/other' type='chat' id='m3'><body>x</body></message>"
    )
    assert (await bob.expect("message")).get("to") == "bob@localhost/other"
    await alice.nothing()


async def test_message_to_a_connected_but_unavailable_user(
    server: TestServer, alice: RawClient
) -> None:
    # carol is bound but sent no presence: not a recipient for her bare JID; the message waits
    # offline and comes with her initial presence.
    carol, _ = await login(server.c2s_port, server.ca_file, "carol", "carol-secret")
    await alice.send("<message to='carol@localhost' type='chat' id='c1'><body>x</body></message>")
    await alice.nothing()
    await carol.nothing()
    await carol.send("<presence/>")
    message = await carol.expect("message")
    assert message.get("id") == "c1"
    assert message.find("{urn:xmpp:delay}delay") is not None


async def test_message_to_highest_priority_resources(server: TestServer, alice: RawClient) -> None:
    high, _ = await login(server.c2s_port, server.ca_file, "bob", "bob-secret", "high")
    low, _ = await login(server.c2s_port, server.ca_file, "bob", "bob-secret", "low")
    await high.send("<presence><priority>5</priority></presence>")
    await high.expect("presence")  # its echo
    await low.send("<presence><priority>1</priority></presence>")
    await low.expect("presence")  # its echo
    await low.expect("presence")  # high's presence, on low's initial presence
    await high.expect("presence")  # low's broadcast
    await alice.send("<message to='bob@localhost' type='chat' id='p'><body>x</body></message>")
    assert (await high.expect("message")).get("id") == "p"
    await low.nothing()
    await alice.send("<message to='bob@localhost' type='headline' id='h'><body>x</body></message>")
    assert (await high.expect("message")).get("id") == "h"
    assert (await low.expect("message")).get("id") == "h"  # headlines: every non-negative
    # a headline to a resource that is not there is dropped (RFC 6121 §8.5.3.2.1); a chat is not
    for kind in ("headline", "chat"):
        await alice.send(
            f"<message to='bob@localhost/gone' type='{kind}' id='{kind}'><body>x</body></message>"
        )
    chat = await high.next()
    assert (chat.get("id"), chat.get("to")) == ("chat", "bob@localhost/gone")
    await low.nothing()
    await alice.nothing()


async def test_iq_between_clients(alice: RawClient, bob: RawClient) -> None:
    await alice.send(
        "<iq type='get' id='p2' to='bob@localhost/phone'><ping xmlns='urn:xmpp:ping'/></iq>"
    )
    same_xml(
        await bob.expect("iq"),
        f"<iq to='bob@localhost/phone' id='p2' type='get' from='{A}' xml:lang='en'>"
        "<ping xmlns='urn:xmpp:ping'/></iq>",
        ignore=(),
    )
    await bob.send(f"<iq type='result' id='p2' to='{A}'/>")
    same_xml(
        await alice.expect("iq"),
        f"<iq to='{A}' id='p2' type='result' from='bob@localhost/phone' xml:lang='en'/>",
        ignore=(),
    )
    # a ping to a bare JID is answered by the server on the account's behalf
    await alice.send("<iq type='get' id='p3' to='bob@localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    same_xml(
        await alice.expect("iq"),
        f"<iq to='{A}' id='p3' from='bob@localhost' type='result'/>",
        ignore=(),
    )
    await bob.nothing()


async def test_presence_echo_and_directed_presence(
    server: TestServer, alice: RawClient, bob: RawClient
) -> None:
    await alice.send("<presence id='ip'/>")
    same_xml(
        await alice.expect("presence"), f"<presence id='ip' xml:lang='en' from='{A}'/>", ignore=()
    )
    await alice.send("<presence to='bob@localhost/phone'><show>away</show></presence>")
    same_xml(
        await bob.expect("presence"),
        f"<presence to='bob@localhost/phone' from='{A}' xml:lang='en'><show>away</show></presence>",
        ignore=(),
    )
    await alice.send("</stream:stream>")
    await alice.closed()
    same_xml(
        await bob.expect("presence"),
        f"<presence type='unavailable' from='{A}' to='bob@localhost/phone'/>",
        ignore=(),
    )


async def test_unavailable_after_a_dropped_connection_says_why(
    server: TestServer, bob: RawClient
) -> None:
    alice, jid = await login(server.c2s_port, server.ca_file, "alice", "alice-secret", "r1")
    await alice.send("<presence to='bob@localhost/phone'/>")
    await bob.expect("presence")
    alice.writer.transport.abort()  # no </stream:stream>, no TLS close_notify
    gone = await bob.expect("presence")
    assert gone.get("type") == "unavailable" and gone.get("from") == jid
    assert (gone.findtext("status") or "").startswith("Disconnected: ")


async def test_own_resources_see_each_other(server: TestServer) -> None:
    one, jid1 = await login(
        server.c2s_port, server.ca_file, "alice", "alice-secret", "one", presence=True
    )
    two, jid2 = await login(server.c2s_port, server.ca_file, "alice", "alice-secret", "two")
    await two.send("<presence/>")
    echo = await two.expect("presence")
    others = await two.expect("presence")
    assert {echo.get("from"), others.get("from")} == {jid1, jid2}
    assert (await one.expect("presence")).get("from") == jid2
    await two.send("<presence type='unavailable'/>")
    assert (await one.expect("presence")).get("type") == "unavailable"
