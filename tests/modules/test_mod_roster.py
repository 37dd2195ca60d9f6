"""Rosters over the wire: get, versioning, set, remove, pushes, errors, persistence."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from minixmpp.roster import RosterItem
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
        (
            f"<item jid='a@localhost'><group>{'g' * 256}</group></item>",
            ("modify", "not-acceptable"),
        ),
        (
            "<item jid='a@localhost'>"
            + "".join(f"<group>{i}</group>" for i in range(17))
            + "</item>",
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
    name, group = "n" * 1023, "g" * 255
    groups = "".join(f"<group>{group[:-2]}{i:02}</group>" for i in range(16))
    await roster_set(alice, f"<item jid='a@localhost' name='{name}'>{groups}</item>")
    reply = await roster_get(alice)
    assert items(reply)["a@localhost"]["name"] == name
    assert len(reply.findall(f"{Q}/{ITEM}/{{{NS}}}group")) == 16


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


async def ping_is_next(client: RawClient, id: str = "quiet") -> None:
    """Nothing reached this client but the answer to a ping it sends now (the server answers it
    after everything sent to this stream before)."""
    await client.send(f"<iq type='get' id='{id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    reply = await client.next()
    assert (reply.tag, reply.get("id")) == ("iq", id), etree.tostring(reply)


async def test_groups_per_item_and_group_names_are_limited(server: TestServer) -> None:
    # 240 groups of 1 KB on each of 20 items pushed 4.9 MB to every resource: by default an
    # item has at most 16 groups of at most 255 characters (RFC 6121 §2.3.3: not-acceptable).
    alice, _ = await login(server.c2s_port, server.ca_file, "alice", "alice-secret")
    await roster_get(alice)  # interested: a refused set must push nothing
    many = "".join(f"<group>{'g' * 1000}{i}</group>" for i in range(240))
    reply = await roster_set(alice, f"<item jid='bob@localhost'>{many}</item>")
    assert stanza_error(reply) == ("modify", "not-acceptable", "Items are limited to 16 groups")
    reply = await roster_set(alice, f"<item jid='bob@localhost'><group>{'g' * 256}</group></item>")
    assert stanza_error(reply) == (
        "modify",
        "not-acceptable",
        "Group names are limited to 255 characters",
    )
    await ping_is_next(alice)
    assert items(await roster_get(alice)) == {}


async def test_the_number_of_items_is_limited(tmp_path: Path) -> None:
    async with running_server(tmp_path, options={"roster_max_items": 2}) as srv:
        for name in ("alice", "carol"):
            await srv.create_user(name, "pw")
        alice, _ = await login(srv.c2s_port, srv.ca_file, "alice", "pw", presence=True)
        carol, _ = await login(srv.c2s_port, srv.ca_file, "carol", "pw", presence=True)
        for contact in ("a", "b"):
            reply = await roster_set(alice, f"<item jid='{contact}@localhost'/>", id=contact)
            assert reply.get("type") == "result"
        reply = await roster_set(alice, "<item jid='c@localhost'/>", id="c")
        assert stanza_error(reply) == (
            "wait",
            "resource-constraint",
            "Roster limit reached; only 2 items allowed",
        )
        reply = await roster_set(alice, "<item jid='a@localhost' name='A'/>", id="rename")
        assert reply.get("type") == "result"  # the items there can still change

        # Subscription presences would add items too: refused, and not routed.
        await carol.send("<presence to='alice@localhost' type='subscribe'/>")
        assert (await alice.expect_where("presence", type="subscribe")).get("from") == (
            "carol@localhost"
        )
        for kind in ("subscribe", "subscribed"):  # asking; approving carol's request
            await alice.send(f"<presence to='carol@localhost' type='{kind}' id='{kind}'/>")
            error = await alice.expect_where("presence", type="error", id=kind)
            assert (error.get("from"), stanza_error(error)[:2]) == (
                "carol@localhost",
                ("wait", "resource-constraint"),
            )
        await alice.send("<presence to='d@localhost' type='subscribed' id='pre'/>")  # pre-approval
        error = await alice.expect_where("presence", type="error", id="pre")
        assert stanza_error(error)[:2] == ("wait", "resource-constraint")
        await ping_is_next(alice)
        await carol.expect_where("presence", type="unavailable", from_="alice@localhost")  # the ack
        await ping_is_next(carol)  # nothing routed to carol
        assert await srv.server.rosters.is_pending("localhost", "alice", "carol@localhost")
        assert set(items(await roster_get(alice))) == {"a@localhost", "b@localhost"}

        # Removing one makes room.
        await roster_set(alice, "<item jid='b@localhost' subscription='remove'/>", id="rm")
        reply = await roster_set(alice, "<item jid='c@localhost'/>", id="c2")
        assert reply.get("type") == "result"


async def test_a_roster_holds_1000_items_by_default(server: TestServer) -> None:
    storage, rosters = server.server.storage, server.server.rosters
    assert storage is not None
    async with storage.transaction() as tx:
        for i in range(1000):
            await rosters.save_in(tx, "localhost", "alice", RosterItem(f"c{i}@localhost"))
    rosters.forget("localhost", "alice")
    alice, _ = await login(server.c2s_port, server.ca_file, "alice", "alice-secret")
    reply = await roster_set(alice, "<item jid='one-more@localhost'/>")
    assert stanza_error(reply)[1:] == (
        "resource-constraint",
        "Roster limit reached; only 1000 items allowed",
    )
