"""mod_pep's notifications (XEP-0163 §4): to explicit subscribers and, filtered by entity
capabilities (XEP-0115), to the resources that want a node (``+notify``); last items at login,
on approval of a subscription and on a subscriber's probe. Prosody 0.12.3's stanzas where it has
them (a disco#info with id 'disco' from the account's bare JID; events from it, naming the
publisher)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from lxml import etree

from minixmpp.testing import TestServer, running_server
from tests.pubsub import (
    NS_CAPS,
    NS_EVENT,
    NS_INFO,
    contacts,
    events,
    item_ids,
    publish,
    pubsub,
    until_pong,
)
from tests.xmpp import RawClient, login, same_xml

USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}
NICK_NS = "http://jabber.org/protocol/nick"
NICK = f"<nick xmlns='{NICK_NS}'>{{}}</nick>"
AVATAR_NS = "urn:xmpp:avatar:metadata"
AVATAR = f"<metadata xmlns='{AVATAR_NS}'><info id='abc' bytes='1' type='image/png'/></metadata>"


@pytest.fixture
async def srv(tmp_path: Path) -> AsyncIterator[TestServer]:
    async with running_server(tmp_path, modules=["disco", "ping", "pep"]) as server:
        for name, password in USERS.items():
            await server.create_user(name, password)
        yield server


def disco_info(notify: list[str], name: str = "test") -> tuple[str, str]:
    """(ver, the disco#info answer's children) of a client wanting ``notify``'s events."""
    features = sorted([NS_INFO, *(f"{n}+notify" for n in notify)])
    text = f"client/pc//{name}<" + "".join(f"{f}<" for f in features)
    ver = base64.b64encode(hashlib.sha1(text.encode()).digest()).decode()
    info = f"<identity category='client' type='pc' name='{name}'/>" + "".join(
        f"<feature var='{f}'/>" for f in features
    )
    return ver, info


class Client:
    """A raw client that advertises caps and answers the server's disco#info questions."""

    def __init__(self, raw: RawClient, jid: str) -> None:
        self.raw, self.jid = raw, jid
        self.ver, self.info = disco_info([])
        self.questions: list[etree._Element] = []

    async def available(
        self, notify: list[str], *, info: str | None = None
    ) -> list[etree._Element]:
        self.ver, self.info = disco_info(notify)
        if info is not None:  # answer with other features than the hash says
            self.info = info
        caps = f"<c xmlns='{NS_CAPS}' hash='sha-1' node='http://test' ver='{self.ver}'/>"
        await self.raw.send(f"<presence>{caps}</presence>")
        return await self.serve()

    async def serve(self) -> list[etree._Element]:
        """Answer questions until a ping round trip brings none; what else came."""
        got: list[etree._Element] = []
        for _ in range(10):
            batch = await until_pong(self.raw)
            asked = [
                s for s in batch if s.tag == "iq" and s.find(f"{{{NS_INFO}}}query") is not None
            ]
            for q in asked:
                node = q[0].get("node")
                await self.raw.send(
                    f"<iq type='result' id='{q.get('id')}' to='{q.get('from')}'>"
                    f"<query xmlns='{NS_INFO}' node='{node}'>{self.info}</query></iq>"
                )
            self.questions += asked
            got += [s for s in batch if s not in asked]
            if not asked:
                return got
        raise AssertionError("the server keeps asking")


async def client(srv: TestServer, name: str, resource: str = "r") -> Client:
    raw, jid = await login(srv.c2s_port, srv.ca_file, name, USERS[name], resource)
    return Client(raw, jid)


def event_items(
    stanzas: list[etree._Element],
) -> list[tuple[str | None, str | None, list[str | None]]]:
    """(from, node, item ids) of each event among ``stanzas``."""
    found = []
    for message in events(stanzas):
        items = message.find(f"{{{NS_EVENT}}}event/{{{NS_EVENT}}}items")
        assert items is not None
        ids = [c.get("id") for c in items]
        found.append((message.get("from"), items.get("node"), ids))
    return found


async def test_contacts_that_want_a_node_hear_of_it(srv: TestServer) -> None:
    await contacts(srv, "alice", "bob")
    alice, bob, bob2 = (
        await client(srv, "alice"),
        await client(srv, "bob"),
        await client(srv, "bob", "r2"),
    )
    own = await alice.available([NICK_NS])
    # Prosody: its own service asks the client, from the account's bare JID, id 'disco'
    same_xml(
        alice.questions[0],
        f"<iq type='get' id='disco' from='alice@localhost' to='alice@localhost/r'>"
        f"<query xmlns='{NS_INFO}' node='http://test#{alice.ver}'/></iq>",
    )
    assert event_items(own) == []
    await bob.available([NICK_NS])
    await bob2.available([])  # wants nothing
    await pubsub(alice.raw, publish(NICK_NS, NICK.format("Al"), "current"))
    (event,) = events(await until_pong(bob.raw))
    same_xml(
        event,
        f"<message from='alice@localhost' to='bob@localhost/r' type='headline'>"
        f"<event xmlns='{NS_EVENT}'><items node='{NICK_NS}'>"
        f"<item id='current' publisher='alice@localhost'><nick xmlns='{NICK_NS}'>Al</nick>"
        "</item></items></event></message>",
    )
    assert events(await until_pong(bob2.raw)) == []
    # alice's own resource wants it too: the event comes before the result (Prosody's order)
    await alice.raw.send(
        f"<iq type='set' id='own'><pubsub xmlns='http://jabber.org/protocol/pubsub'>"
        f"{publish(NICK_NS, NICK.format('Al'), 'current')}</pubsub></iq>"
    )
    got = await until_pong(alice.raw)
    assert [(s.tag, s.get("to")) for s in got] == [
        ("message", "alice@localhost/r"),
        ("iq", "alice@localhost/r"),
    ]
    assert event_items(got) == [("alice@localhost", NICK_NS, ["current"])]
    await until_pong(bob.raw)
    # a retraction with notify='1' is told; without, it is not (Prosody)
    await pubsub(alice.raw, f"<retract node='{NICK_NS}' notify='1'><item id='current'/></retract>")
    (event,) = events(await until_pong(bob.raw))
    retract = event.find(f".//{{{NS_EVENT}}}retract")
    assert retract is not None and retract.get("id") == "current"
    await pubsub(alice.raw, publish(NICK_NS, NICK.format("Al"), "x"))
    await pubsub(alice.raw, f"<retract node='{NICK_NS}'><item id='x'/></retract>")
    assert event_items(await until_pong(bob.raw)) == [("alice@localhost", NICK_NS, ["x"])]
    # once unavailable, bob hears nothing more
    await bob.raw.send("<presence type='unavailable'/>")
    await until_pong(bob.raw)
    await pubsub(alice.raw, publish(NICK_NS, NICK.format("Al3"), "y"))
    assert events(await until_pong(bob.raw)) == []


async def test_the_last_items_come_at_login(srv: TestServer) -> None:
    await contacts(srv, "alice", "bob")
    alice = await client(srv, "alice")
    await pubsub(alice.raw, publish(NICK_NS, NICK.format("Al"), "current"))
    await pubsub(alice.raw, publish(AVATAR_NS, AVATAR, "abc"))
    bob = await client(srv, "bob")
    got = await bob.available([NICK_NS])
    assert len(bob.questions) == 2  # bob's own service and alice's asked (a new hash)
    assert event_items(got) == [("alice@localhost", NICK_NS, ["current"])]
    # the same client on another device: the hash is known, nobody asks
    bob2 = await client(srv, "bob", "r2")
    got = await bob2.available([NICK_NS])
    assert bob2.questions == []
    assert event_items(got) == [("alice@localhost", NICK_NS, ["current"])]
    # a presence update with the same caps sends nothing again
    await bob2.raw.send(f"<presence><show>away</show>{caps_of(bob2)}</presence>")
    assert event_items(await bob2.serve()) == []
    # wanting more: the nodes newly wanted send their last item
    got = await bob2.available([NICK_NS, AVATAR_NS])
    assert event_items(got) == [("alice@localhost", AVATAR_NS, ["abc"])]


def caps_of(c: Client) -> str:
    return f"<c xmlns='{NS_CAPS}' hash='sha-1' node='http://test' ver='{c.ver}'/>"


async def test_a_caps_answer_that_does_not_match_its_hash_is_not_cached(srv: TestServer) -> None:
    await contacts(srv, "alice", "bob")
    await contacts(srv, "alice", "carol")
    alice = await client(srv, "alice")
    await pubsub(alice.raw, publish(NICK_NS, NICK.format("Al"), "current"))
    await pubsub(alice.raw, publish(AVATAR_NS, AVATAR, "abc"))
    # bob's presence says "nick", his answer says "avatar": it serves bob, and no one else
    _, lie = disco_info([AVATAR_NS])
    liar = await client(srv, "bob")
    got = await liar.available([NICK_NS], info=lie)
    assert event_items(got) == [("alice@localhost", AVATAR_NS, ["abc"])]
    honest = await client(srv, "carol")
    got = await honest.available([NICK_NS])  # the same hash: asked again
    assert len(honest.questions) == 2
    assert event_items(got) == [("alice@localhost", NICK_NS, ["current"])]
    # an answer nobody asked for changes nothing
    await honest.raw.send(
        f"<iq type='result' id='disco' to='alice@localhost'><query xmlns='{NS_INFO}'>"
        f"<feature var='{AVATAR_NS}+notify'/></query></iq>"
    )
    await until_pong(honest.raw)
    await pubsub(alice.raw, publish(AVATAR_NS, AVATAR, "def"))
    assert events(await until_pong(honest.raw)) == []


async def test_what_others_may_not_read_they_do_not_hear(srv: TestServer) -> None:
    await contacts(srv, "alice", "bob")
    alice = await client(srv, "alice")
    bob = await client(srv, "bob")
    await bob.available(["urn:xmpp:bookmarks:1", "open"])
    bookmark = "<conference xmlns='urn:xmpp:bookmarks:1' name='Room'/>"
    await pubsub(
        alice.raw,
        publish(
            "urn:xmpp:bookmarks:1",
            bookmark,
            "room@muc.localhost",
            pubsub__access_model="whitelist",
            pubsub__max_items="max",
        ),
    )
    await pubsub(alice.raw, publish("open", "<x xmlns='y'/>", "1", pubsub__access_model="open"))
    assert event_items(await until_pong(bob.raw)) == [("alice@localhost", "open", ["1"])]
    # a stranger's presence, directed at alice, does not make it a recipient of 'presence' nodes
    carol = await client(srv, "carol")
    await carol.raw.send(f"<presence to='alice@localhost'>{caps_of(carol)}</presence>")
    await carol.serve()
    await pubsub(alice.raw, publish(NICK_NS, NICK.format("Al"), "current"))
    assert events(await until_pong(carol.raw)) == []


async def test_approving_a_subscription_sends_the_last_items(srv: TestServer) -> None:
    alice = await client(srv, "alice")
    await alice.raw.send("<presence/>")
    await pubsub(alice.raw, publish(NICK_NS, NICK.format("Al"), "current"))
    bob = await client(srv, "bob")
    await bob.available([NICK_NS])
    await bob.raw.send("<presence to='alice@localhost' type='subscribe'/>")
    await until_pong(bob.raw)
    await alice.raw.send("<presence to='bob@localhost' type='subscribed'/>")
    await until_pong(alice.raw)
    assert event_items(await bob.serve()) == [("alice@localhost", NICK_NS, ["current"])]


async def test_a_one_way_subscriber_hears_through_its_probe(srv: TestServer) -> None:
    await contacts(srv, "alice", "bob", "from")  # bob is subscribed to alice, not she to him
    alice = await client(srv, "alice")
    await pubsub(alice.raw, publish(NICK_NS, NICK.format("Al"), "current"))
    bob = await client(srv, "bob")
    got = await bob.available([NICK_NS])  # bob's presence does not reach alice; his probe does
    assert event_items(got) == [("alice@localhost", NICK_NS, ["current"])]
    await pubsub(alice.raw, publish(NICK_NS, NICK.format("Al2"), "next"))
    assert event_items(await until_pong(bob.raw)) == [("alice@localhost", NICK_NS, ["next"])]


async def test_subscribers_hear_once_and_of_deletion(srv: TestServer) -> None:
    await contacts(srv, "alice", "bob")
    alice = await client(srv, "alice")
    bob = await client(srv, "bob")
    await bob.available([NICK_NS])
    await pubsub(alice.raw, publish(NICK_NS, NICK.format("Al"), "current"))
    await until_pong(bob.raw)
    reply = await pubsub(
        bob.raw, f"<subscribe node='{NICK_NS}' jid='bob@localhost'/>", to="alice@localhost"
    )
    assert reply.get("type") == "result"
    await until_pong(bob.raw)  # the last item
    await pubsub(alice.raw, publish(NICK_NS, NICK.format("Al2"), "next"))
    # to the subscribed bare JID only, not also to the +notify resource
    got = events(await until_pong(bob.raw))
    assert [(m.get("to"), item_ids(m, NS_EVENT)) for m in got] == [("bob@localhost", ["next"])]
    await pubsub(alice.raw, f"<delete node='{NICK_NS}'/>", owner=True)
    (event,) = events(await until_pong(bob.raw))
    same_xml(
        event,
        f"<message from='alice@localhost' to='bob@localhost' type='headline'>"
        f"<event xmlns='{NS_EVENT}'><delete node='{NICK_NS}'/></event></message>",
    )
