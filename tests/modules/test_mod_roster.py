"""Rosters over the wire: get, versioning, set, remove, pushes, errors, persistence."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from minixmpp.testing import TestServer, running_server
from tests.xmpp import RawClient, login, same_xml, stanza_error

NS = "jabber:iq:roster"
Q = f"{{{NS}}}query"
ITEM = f"{{{NS}}}item"


def items(reply: etree._Element) -> dict[str, dict[str, str]]:
    query = reply.find(Q)
    assert query is not None
    return {i.get("jid", ""): dict(i.attrib) for i in query.iter(ITEM)}


async def roster_get(client: RawClient, ver: str | None = None, id: str = "g") -> etree._Element:
    ver_attr = "" if ver is None else f" ver='{ver}'"
    return await client.iq(f"<query xmlns='{NS}'{ver_attr}/>", id=id)


async def roster_set(client: RawClient, item: str, id: str = "s") -> etree._Element:
    return await client.iq(f"<query xmlns='{NS}'>{item}</query>", type="set", id=id)


async def test_get_set_push_and_versioning(server: TestServer) -> None:
    alice, jid = await login(server.c2s_port, server.ca_file, "alice", "alice-secret", "one")
    empty = await roster_get(alice)
    same_xml(empty, f"<iq type='result' id='g' to='{jid}'><query xmlns='{NS}' ver='0'/></iq>")

    # The result first, then the push (Prosody's order); the push carries the new version.
    await alice.send(
        f"<iq type='set' id='add'><query xmlns='{NS}'><item jid='Bob@LocalHost' name='Bobby'>"
        "<group>Friends</group><group>Work</group></item></query></iq>"
    )
    same_xml(await alice.next(), f"<iq type='result' id='add' to='{jid}'/>")
    push = await alice.next()
    same_xml(
        push,
        f"<iq type='set'><query xmlns='{NS}' ver='1'><item jid='bob@localhost' name='Bobby'"
        " subscription='none'><group>Friends</group><group>Work</group></item></query></iq>",
    )
    assert push.get("id") and push.get("to") is None and push.get("from") is None
    await alice.send(f"<iq type='result' id='{push.get('id')}'/>")  # acknowledged: no reply
    await alice.nothing()

    full = await roster_get(alice, "0", id="g2")
    same_xml(
        full,
        f"<iq type='result' id='g2' to='{jid}'><query xmlns='{NS}' ver='1'><item"
        " jid='bob@localhost' name='Bobby' subscription='none'><group>Friends</group>"
        "<group>Work</group></item></query></iq>",
    )
    unchanged = await roster_get(alice, "1", id="g3")  # RFC 6121 §2.6.3: nothing changed
    same_xml(unchanged, f"<iq type='result' id='g3' to='{jid}'/>")
    for stale in ("", "2", "abc", "1.0"):  # versions are opaque: anything else gets it all
        assert items(await roster_get(alice, stale, id="g4")) == items(full)

    await alice.send(
        f"<iq type='set' id='upd'><query xmlns='{NS}'><item jid='bob@localhost'/></query></iq>"
    )
    same_xml(await alice.next(), f"<iq type='result' id='upd' to='{jid}'/>")
    same_xml(
        await alice.next(),
        f"<iq type='set'><query xmlns='{NS}' ver='2'><item jid='bob@localhost'"
        " subscription='none'/></query></iq>",
    )
    await alice.send(  # the same again changes nothing: no push, same version
        f"<iq type='set' id='upd2'><query xmlns='{NS}'><item jid='bob@localhost'/></query></iq>"
    )
    same_xml(await alice.next(), f"<iq type='result' id='upd2' to='{jid}'/>")
    await alice.nothing()

    await alice.send(
        f"<iq type='set' id='rm'><query xmlns='{NS}'><item jid='bob@localhost'"
        " subscription='remove'/></query></iq>"
    )
    same_xml(await alice.next(), f"<iq type='result' id='rm' to='{jid}'/>")
    same_xml(
        await alice.next(),
        f"<iq type='set'><query xmlns='{NS}' ver='3'><item jid='bob@localhost'"
        " subscription='remove'/></query></iq>",
    )
    same_xml(
        await roster_get(alice, id="g5"),
        f"<iq type='result' id='g5' to='{jid}'><query xmlns='{NS}' ver='3'/></iq>",
    )


async def test_pushes_go_to_resources_that_asked(server: TestServer) -> None:
    asked, _ = await login(server.c2s_port, server.ca_file, "alice", "alice-secret", "asked")
    await roster_get(asked)
    silent, _ = await login(server.c2s_port, server.ca_file, "alice", "alice-secret", "silent")
    other, _ = await login(server.c2s_port, server.ca_file, "alice", "alice-secret", "other")
    await roster_get(other)
    await roster_set(silent, "<item jid='carol@localhost'/>")
    assert (await asked.expect("iq")).get("type") == "set"
    assert (await other.expect("iq")).get("type") == "set"
    await silent.nothing()


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("", ("modify", "bad-request")),
        ("<item jid='a@localhost'/><item jid='b@localhost'/>", ("modify", "bad-request")),
        ("<foo jid='a@localhost'/>", ("modify", "bad-request")),
        ("<item xmlns='urn:other' jid='a@localhost'/>", ("modify", "bad-request")),
        ("<item jid='@localhost'/>", ("modify", "bad-request")),
        ("<item jid='a@b@c'/>", ("modify", "bad-request")),
        ("<item jid=''/>", ("modify", "bad-request")),
        ("<item/>", ("modify", "bad-request")),
        ("<item jid='a@localhost/res'/>", ("modify", "bad-request")),
        ("<item jid='alice@localhost/one'/>", ("modify", "bad-request")),
        ("<item jid='alice@localhost'/>", ("cancel", "not-allowed")),
        ("<item jid='Alice@LOCALHOST'/>", ("cancel", "not-allowed")),
        (
            "<item jid='a@localhost'><group>x</group><group>x</group></item>",
            ("modify", "bad-request"),
        ),
        ("<item jid='a@localhost'><group/></item>", ("modify", "not-acceptable")),
        (f"<item jid='a@localhost' name='{'n' * 1024}'/>", ("modify", "not-acceptable")),
        (
            f"<item jid='a@localhost'><group>{'g' * 1024}</group></item>",
            ("modify", "not-acceptable"),
        ),
        ("<item jid='nobody@localhost' subscription='remove'/>", ("cancel", "item-not-found")),
    ],
)
async def test_set_errors(server: TestServer, body: str, error: tuple[str, str]) -> None:
    alice, _ = await login(server.c2s_port, server.ca_file, "alice", "alice-secret", "one")
    await roster_get(alice)  # interested: an error must not push anything
    reply = await roster_set(alice, body)
    assert stanza_error(reply)[:2] == error
    await alice.nothing()
    assert items(await roster_get(alice)) == {}


async def test_limits_are_inclusive(server: TestServer) -> None:
    alice, _ = await login(server.c2s_port, server.ca_file, "alice", "alice-secret")
    name, group = "n" * 1023, "g" * 1023
    await roster_set(alice, f"<item jid='a@localhost' name='{name}'><group>{group}</group></item>")
    assert items(await roster_get(alice))["a@localhost"]["name"] == name


async def test_client_cannot_set_subscription_state(server: TestServer) -> None:
    alice, _ = await login(server.c2s_port, server.ca_file, "alice", "alice-secret")
    await roster_set(
        alice, "<item jid='bob@localhost' subscription='both' ask='subscribe' approved='true'/>"
    )
    await roster_set(alice, "<item jid='carol@localhost' subscription='bogus'/>")
    await roster_set(alice, "<item jid='localhost'/>")  # a server is a fine contact
    assert items(await roster_get(alice)) == {
        "bob@localhost": {"jid": "bob@localhost", "subscription": "none"},
        "carol@localhost": {"jid": "carol@localhost", "subscription": "none"},
        "localhost": {"jid": "localhost", "subscription": "none"},
    }


async def test_roster_of_another_user_is_refused(server: TestServer) -> None:
    alice, jid = await login(server.c2s_port, server.ca_file, "alice", "alice-secret")
    for target, kind in [("bob@localhost", "get"), ("bob@localhost", "set"), ("localhost", "get")]:
        body = f"<query xmlns='{NS}'>" + ("<item jid='x@localhost'/>" if kind == "set" else "")
        reply = await alice.iq(body + "</query>", to=target, type=kind, id="other")
        same_xml(
            reply,
            f"<iq type='error' id='other' from='{target}' to='{jid}'><error type='cancel'>"
            "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        )
    own = await alice.iq(f"<query xmlns='{NS}'/>", to="alice@localhost", id="own")
    assert own.get("type") == "result"  # the own bare JID is the account itself


async def test_rosters_survive_a_restart(tmp_path: Path) -> None:
    async with running_server(tmp_path) as srv:
        await srv.create_user("alice", "pw")
        alice, _ = await login(srv.c2s_port, srv.ca_file, "alice", "pw")
        await roster_set(alice, "<item jid='bob@localhost' name='B'><group>G</group></item>")
        version = (await roster_get(alice)).find(Q).get("ver")  # type: ignore[union-attr]
        await alice.close()
    async with running_server(tmp_path) as srv:
        alice, _ = await login(srv.c2s_port, srv.ca_file, "alice", "pw")
        reply = await roster_get(alice)
        assert reply.find(Q).get("ver") == version  # type: ignore[union-attr]
        assert items(reply)["bob@localhost"]["name"] == "B"
