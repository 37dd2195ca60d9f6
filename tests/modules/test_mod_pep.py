"""mod_pep (XEP-0163): each account's PubSub service, over real sockets; Prosody 0.12.3's
replies (recorded against it with the same requests) where it has them. Notifications and
caps: test_mod_pep_notify.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from minixmpp.pubsub.node import PEP_NODE_CHANGED, NodeChange
from minixmpp.roster import RosterItem
from minixmpp.testing import TestServer, running_server
from tests.pubsub import (
    NS,
    NS_EVENT,
    NS_INFO,
    NS_ITEMS,
    contacts,
    error_of,
    events,
    form,
    item_ids,
    publish,
    pubsub,
    rsm_of,
    until_pong,
)
from tests.stored import stored
from tests.xmpp import RawClient, login, same_xml

USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}
NICK = "<nick xmlns='http://jabber.org/protocol/nick'>{}</nick>"
MAX = {"pubsub__max_items": "max"}


@pytest.fixture
async def srv(tmp_path: Path) -> AsyncIterator[TestServer]:
    async with running_server(tmp_path, modules=["disco", "ping", "pep"]) as server:
        for name, password in USERS.items():
            await server.create_user(name, password)
        yield server


async def user(srv: TestServer, name: str, resource: str = "r") -> RawClient:
    client, _ = await login(srv.c2s_port, srv.ca_file, name, USERS[name], resource)
    return client


def config_values(reply: Any) -> dict[str, str | None]:
    return {
        f.get("var"): f.findtext("{jabber:x:data}value") for f in reply.iter("{jabber:x:data}field")
    }


async def test_publishing_creates_the_node_as_prosody(srv: TestServer) -> None:
    alice = await user(srv, "alice")
    reply = await pubsub(alice, publish("urn:xmpp:nick", NICK.format("Al"), "current"))
    # Prosody: the result names the node and the item, with no 'from' (own account)
    same_xml(
        reply,
        f"<iq type='result' to='alice@localhost/r'><pubsub xmlns='{NS}'>"
        "<publish node='urn:xmpp:nick'><item id='current'/></publish></pubsub></iq>",
    )
    config = await pubsub(alice, "<configure node='urn:xmpp:nick'/>", type="get", owner=True)
    values = config_values(config)
    assert (
        values["pubsub#max_items"],
        values["pubsub#access_model"],
        values["pubsub#send_last_published_item"],
        values["pubsub#persist_items"],
    ) == ("1", "presence", "on_sub_and_presence", "1")
    # an item without an id gets a UUID
    reply = await pubsub(alice, publish("n2", "<x xmlns='y'/>"))
    assert len(item_ids(reply)[0] or "") == 36
    # a second item replaces the first (max_items 1)
    await pubsub(alice, publish("urn:xmpp:nick", NICK.format("Al2"), "second"))
    assert item_ids(await pubsub(alice, "<items node='urn:xmpp:nick'/>", type="get")) == ["second"]


async def test_publish_options_create_and_guard_the_node(srv: TestServer) -> None:
    alice = await user(srv, "alice")
    node = "eu.siacs.conversations.axolotl.devicelist"
    devices = "<list xmlns='eu.siacs.conversations.axolotl'><device id='1'/></list>"
    reply = await pubsub(alice, publish(node, devices, "current", pubsub__access_model="open"))
    assert reply.get("type") == "result"
    config = await pubsub(alice, f"<configure node='{node}'/>", type="get", owner=True)
    assert config_values(config)["pubsub#access_model"] == "open"
    # Prosody: precondition-not-met, inside a cancel/conflict naming the field
    reply = await pubsub(alice, publish(node, devices, "current", pubsub__access_model="whitelist"))
    same_xml(
        reply,
        "<iq type='error' to='alice@localhost/r'><error type='cancel'>"
        "<conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Field does not match: access_model"
        "</text><precondition-not-met xmlns='http://jabber.org/protocol/pubsub#errors'/>"
        "</error></iq>",
    )
    # what a client then does (Conversations): configure the node, and publish again
    change = form("node_config", pubsub__access_model="whitelist")
    reply = await pubsub(alice, f"<configure node='{node}'>{change}</configure>", owner=True)
    assert reply.get("type") == "result"
    reply = await pubsub(alice, publish(node, devices, "current", pubsub__access_model="whitelist"))
    assert reply.get("type") == "result"
    # Prosody's form errors: a bad value, and an access model PEP does not offer
    reply = await pubsub(alice, publish("n", "<x xmlns='y'/>", "1", pubsub__max_items="300"))
    assert error_of(reply) == ("modify", "bad-request", None, "max_items: out of bounds")
    reply = await pubsub(alice, publish("n", "<x xmlns='y'/>", "1", pubsub__max_items="abc"))
    assert error_of(reply)[3] == "max_items: not a number"
    reply = await pubsub(
        alice, publish("n", "<x xmlns='y'/>", "1", pubsub__access_model="authorize")
    )
    assert error_of(reply)[:2] == ("modify", "not-acceptable")
    reply = await pubsub(alice, publish("n", "<x xmlns='y'/>", "1", pubsub__foo="ignored"))
    assert reply.get("type") == "result"  # an unknown field is ignored, as by Prosody


async def test_items_retract_and_errors(srv: TestServer) -> None:
    alice = await user(srv, "alice")
    for i in range(1, 5):
        await pubsub(alice, publish("n", f"<x xmlns='y'>{i}</x>", str(i), pubsub__max_items="max"))
    assert item_ids(await pubsub(alice, "<items node='n'/>", type="get")) == ["1", "2", "3", "4"]
    reply = await pubsub(alice, "<items node='n' max_items='2'/>", type="get")
    assert item_ids(reply) == ["3", "4"]
    rsm = "<set xmlns='http://jabber.org/protocol/rsm'><max>3</max></set>"
    reply = await pubsub(alice, f"<items node='n'/>{rsm}", type="get")
    assert item_ids(reply) == ["4", "3", "2"]
    assert rsm_of(reply) == ("4", "0", "2", "4")
    # retract: an unknown item is item-not-found (Prosody), a known one goes
    reply = await pubsub(alice, "<retract node='n'><item id='zz'/></retract>")
    assert error_of(reply)[:2] == ("cancel", "item-not-found")
    assert (await pubsub(alice, "<retract node='n'><item id='2'/></retract>")).get("type") == (
        "result"
    )
    assert item_ids(await pubsub(alice, "<items node='n'/>", type="get")) == ["1", "3", "4"]
    assert error_of(await pubsub(alice, "<retract><item id='1'/></retract>"))[2] == (
        "nodeid-required"
    )
    assert error_of(await pubsub(alice, "<items node='nope'/>", type="get"))[:2] == (
        "cancel",
        "item-not-found",
    )
    assert error_of(await pubsub(alice, "<items/>", type="get"))[:3] == (
        "modify",
        "bad-request",
        "nodeid-required",
    )
    # purge and delete
    assert (await pubsub(alice, "<purge node='n'/>", owner=True)).get("type") == "result"
    assert item_ids(await pubsub(alice, "<items node='n'/>", type="get")) == []
    assert (await pubsub(alice, "<delete node='n'/>", owner=True)).get("type") == "result"
    assert error_of(await pubsub(alice, "<delete node='n'/>", owner=True))[1] == "item-not-found"
    # a bad item creates no node (Prosody creates it first)
    assert error_of(await pubsub(alice, "<publish node='fresh'><item id='1'/></publish>"))[3] == (
        "invalid item"
    )
    assert error_of(await pubsub(alice, "<items node='fresh'/>", type="get"))[1] == "item-not-found"
    # a node that keeps no items
    await pubsub(alice, publish("t", "<x xmlns='y'/>", "1", pubsub__persist_items="0"))
    assert error_of(await pubsub(alice, "<items node='t'/>", type="get"))[:3] == (
        "cancel",
        "feature-not-implemented",
        "unsupported",
    )


async def test_access_models(srv: TestServer) -> None:
    await contacts(srv, "alice", "bob", "from")  # bob receives alice's presence
    alice, bob, carol = await user(srv, "alice"), await user(srv, "bob"), await user(srv, "carol")
    await pubsub(alice, publish("urn:xmpp:nick", NICK.format("Al"), "current"))
    await pubsub(alice, publish("open", "<x xmlns='y'/>", "1", pubsub__access_model="open"))
    await pubsub(alice, publish("wl", "<x xmlns='y'/>", "1", pubsub__access_model="whitelist"))
    await pubsub(
        alice,
        publish(
            "grp",
            "<x xmlns='y'/>",
            "1",
            pubsub__access_model="roster",
            pubsub__roster_groups_allowed="Friends",
        ),
    )

    async def read(client: RawClient, node: str) -> str | None:
        reply = await pubsub(client, f"<items node='{node}'/>", type="get", to="alice@localhost")
        return "ok" if reply.get("type") == "result" else error_of(reply)[1]

    assert [await read(bob, n) for n in ("urn:xmpp:nick", "open", "wl", "grp")] == [
        "ok",
        "ok",
        "forbidden",
        "forbidden",
    ]
    assert [await read(carol, n) for n in ("urn:xmpp:nick", "open", "wl", "grp")] == [
        "forbidden",
        "ok",
        "forbidden",
        "forbidden",
    ]
    # a member affiliation opens the whitelist; a roster group opens the roster node
    members = "<affiliations node='wl'><affiliation jid='bob@localhost' affiliation='member'/>"
    await pubsub(alice, members + "</affiliations>", owner=True)
    rosters = srv.server.hosts["localhost"].rosters
    await rosters.save("localhost", "alice", RosterItem("carol@localhost", groups=("Friends",)))
    assert await read(bob, "wl") == "ok"
    assert await read(carol, "grp") == "ok"
    # nobody but the owner publishes, configures or deletes; a missing account refuses all
    for body, owner in (
        (publish("open", "<x xmlns='y'/>"), False),
        ("<delete node='open'/>", True),
    ):
        reply = await pubsub(carol, body, to="alice@localhost", owner=owner)
        assert error_of(reply)[:2] == ("auth", "forbidden")
    reply = await pubsub(bob, "<items node='n'/>", type="get", to="nobody@localhost")
    assert error_of(reply)[:2] == ("auth", "forbidden")


async def test_subscriptions(srv: TestServer) -> None:
    await contacts(srv, "alice", "bob", "from")
    alice, bob = await user(srv, "alice"), await user(srv, "bob")
    await bob.send("<presence/>")  # a headline to a bare JID reaches available resources
    await pubsub(alice, publish("urn:xmpp:nick", NICK.format("Al"), "current"))
    reply = await pubsub(
        bob, "<subscribe node='urn:xmpp:nick' jid='bob@localhost'/>", to="alice@localhost"
    )
    same_xml(
        reply,
        f"<iq type='result' from='alice@localhost' to='bob@localhost/r'><pubsub xmlns='{NS}'>"
        "<subscription node='urn:xmpp:nick' jid='bob@localhost' subscription='subscribed'/>"
        "</pubsub></iq>",
    )
    # then, as Prosody, the last item to the subscribed JID
    (last,) = events(await until_pong(bob))
    same_xml(
        last,
        f"<message from='alice@localhost' to='bob@localhost' type='headline'>"
        f"<event xmlns='{NS_EVENT}'><items node='urn:xmpp:nick'>"
        "<item id='current' publisher='alice@localhost'>"
        "<nick xmlns='http://jabber.org/protocol/nick'>Al</nick></item></items></event></message>",
    )
    reply = await pubsub(
        bob, "<subscribe node='urn:xmpp:nick' jid='carol@localhost'/>", to="alice@localhost"
    )
    assert error_of(reply)[:2] == ("auth", "forbidden")  # Prosody: another's JID
    listed = await pubsub(bob, "<subscriptions/>", type="get", to="alice@localhost")
    assert [(s.get("node"), s.get("jid")) for s in listed.iter(f"{{{NS}}}subscription")] == [
        ("urn:xmpp:nick", "bob@localhost")
    ]
    options = await pubsub(
        bob, "<options node='urn:xmpp:nick' jid='bob@localhost'/>", type="get", to="alice@localhost"
    )
    assert config_values(options)["FORM_TYPE"] == f"{NS}#subscribe_options"
    # a change of access model drops who may no longer subscribe
    change = form("node_config", pubsub__access_model="whitelist")
    await pubsub(alice, f"<configure node='urn:xmpp:nick'>{change}</configure>", owner=True)
    listed = await pubsub(alice, "<subscriptions node='urn:xmpp:nick'/>", type="get", owner=True)
    assert list(listed.iter(f"{{{NS}}}subscription")) == []
    reply = await pubsub(
        bob, "<unsubscribe node='urn:xmpp:nick' jid='bob@localhost'/>", to="alice@localhost"
    )
    assert error_of(reply)[1] == "forbidden"
    change = form("node_config", pubsub__access_model="presence")
    await pubsub(alice, f"<configure node='urn:xmpp:nick'>{change}</configure>", owner=True)
    await pubsub(bob, "<subscribe node='urn:xmpp:nick' jid='bob@localhost'/>", to="alice@localhost")
    unsubscribe = "<unsubscribe node='urn:xmpp:nick' jid='bob@localhost'/>"
    reply = await pubsub(bob, unsubscribe, to="alice@localhost")
    assert reply.find(f".//{{{NS}}}subscription").get("subscription") == "none"
    # Prosody: not-subscribed inside unexpected-request
    assert error_of(await pubsub(bob, unsubscribe, to="alice@localhost"))[:3] == (
        "modify",
        "unexpected-request",
        "not-subscribed",
    )


async def test_disco_of_an_account(srv: TestServer) -> None:
    await contacts(srv, "alice", "bob", "from")
    alice, bob, carol = await user(srv, "alice"), await user(srv, "bob"), await user(srv, "carol")
    await pubsub(alice, publish("urn:xmpp:nick", NICK.format("Al"), "current"))
    await pubsub(alice, publish("wl", "<x xmlns='y'/>", "1", pubsub__access_model="whitelist"))
    for client, to in ((alice, None), (bob, "alice@localhost")):
        info = await client.iq(f"<query xmlns='{NS_INFO}'/>", to=to)
        assert info.get("from") == "alice@localhost"
        identities = {
            (i.get("category"), i.get("type")) for i in info.iter(f"{{{NS_INFO}}}identity")
        }
        assert identities == {("account", "registered"), ("pubsub", "pep")}
        features = {f.get("var") for f in info.iter(f"{{{NS_INFO}}}feature")}
        assert {
            NS,
            f"{NS}#publish-options",
            f"{NS}#auto-create",
            f"{NS}#filtered-notifications",
            f"{NS}#access-presence",
            f"{NS}#last-published",
        } <= features
    # a stranger learns nothing (Prosody: not a contact)
    info = await carol.iq(f"<query xmlns='{NS_INFO}'/>", to="alice@localhost")
    assert error_of(info)[1] == "service-unavailable"
    # the nodes each may read
    own = await alice.iq(f"<query xmlns='{NS_ITEMS}'/>")
    assert sorted(i.get("node") for i in own.iter(f"{{{NS_ITEMS}}}item")) == ["urn:xmpp:nick", "wl"]
    theirs = await bob.iq(f"<query xmlns='{NS_ITEMS}'/>", to="alice@localhost")
    same_xml(
        theirs[0],
        f"<query xmlns='{NS_ITEMS}'><item jid='alice@localhost' node='urn:xmpp:nick'/></query>",
    )
    node = await bob.iq(f"<query xmlns='{NS_INFO}' node='urn:xmpp:nick'/>", to="alice@localhost")
    assert config_values(node)["pubsub#access_model"] == "presence"
    hidden = await bob.iq(f"<query xmlns='{NS_INFO}' node='wl'/>", to="alice@localhost")
    assert error_of(hidden)[1] == "item-not-found"
    names = await bob.iq(f"<query xmlns='{NS_ITEMS}' node='urn:xmpp:nick'/>", to="alice@localhost")
    same_xml(
        names[0],
        f"<query xmlns='{NS_ITEMS}' node='urn:xmpp:nick'>"
        "<item jid='alice@localhost' name='current'/></query>",
    )


async def test_limits_per_account(tmp_path: Path) -> None:
    options = {"pep_max_nodes": 2, "pep_max_item_size": 100, "pep_max_bytes": 250}
    async with running_server(tmp_path, modules=["pep"], options=options) as srv:
        await srv.create_user("alice", USERS["alice"])
        alice = await user(srv, "alice")
        item = "<x xmlns='y'>" + "z" * 60 + "</x>"  # 79 bytes
        assert (await pubsub(alice, publish("a", item, "1"))).get("type") == "result"
        assert (await pubsub(alice, publish("b", item, "1"))).get("type") == "result"
        assert error_of(await pubsub(alice, publish("c", item, "1")))[:3] == (
            "modify",
            "policy-violation",
            "max-nodes-exceeded",
        )
        big = "<x xmlns='y'>" + "z" * 100 + "</x>"
        assert error_of(await pubsub(alice, publish("a", big)))[:3] == (
            "modify",
            "not-acceptable",
            "payload-too-big",
        )
        more = {"pubsub__max_items": "max"}
        assert (await pubsub(alice, publish("a", item, "2", **{"pubsub__max_items": "1"}))).get(
            "type"
        ) == "result"  # replaces "1": 2 items of 79 bytes
        change = form("node_config", **more)
        await pubsub(alice, f"<configure node='a'>{change}</configure>", owner=True)
        assert (await pubsub(alice, publish("a", item, "3"))).get("type") == "result"
        reply = await pubsub(alice, publish("a", item, "4"))  # a 4th: 316 bytes > 250
        assert error_of(reply)[:2] == ("modify", "policy-violation")
        assert item_ids(await pubsub(alice, "<items node='a'/>", type="get")) == ["2", "3"]
        long_name = "n" * 1024
        assert error_of(await pubsub(alice, publish(long_name, item)))[1] == "not-acceptable"


async def test_a_deleted_account_takes_its_nodes(srv: TestServer) -> None:
    alice = await user(srv, "alice")
    await pubsub(alice, publish("urn:xmpp:nick", NICK.format("Al"), "current"))
    await alice.close()
    await srv.server.hosts["localhost"].users.delete("alice")
    await srv.create_user("alice", USERS["alice"])
    alice = await user(srv, "alice")
    reply = await pubsub(alice, "<items node='urn:xmpp:nick'/>", type="get")
    assert error_of(reply)[1] == "item-not-found"
    assert list((await alice.iq(f"<query xmlns='{NS_ITEMS}'/>")).iter(f"{{{NS_ITEMS}}}item")) == []


async def test_nodes_and_items_survive_a_restart(tmp_path: Path) -> None:
    async with running_server(tmp_path, modules=["pep"]) as first:
        await first.create_user("alice", USERS["alice"])
        alice = await user(first, "alice")
        await pubsub(alice, publish("n", "<x xmlns='y'>1</x>", "1", pubsub__access_model="open"))
        await alice.close()
    async with running_server(tmp_path, modules=["pep"]) as second:
        alice = await user(second, "alice")
        assert item_ids(await pubsub(alice, "<items node='n'/>", type="get")) == ["1"]
        config = await pubsub(alice, "<configure node='n'/>", type="get", owner=True)
        assert config_values(config)["pubsub#access_model"] == "open"


async def test_other_modules_keep_in_step_through_the_api(srv: TestServer) -> None:
    """The hook of a XEP-0048 bookmarks sync: pep-node-changed, and publishing as the user."""
    host = srv.server.hosts["localhost"]
    seen: list[NodeChange] = []

    async def record(change: NodeChange) -> None:
        seen.append(change)

    host.events.hook(PEP_NODE_CHANGED, record)
    alice = await user(srv, "alice")
    bookmark = "<conference xmlns='urn:xmpp:bookmarks:1'/>"
    await pubsub(alice, publish("urn:xmpp:bookmarks:1", bookmark, "r@muc", pubsub__max_items="max"))
    (change,) = seen
    assert (change.service, change.node, change.kind, change.item_id, change.actor) == (
        "alice@localhost",
        "urn:xmpp:bookmarks:1",
        "items",
        "r@muc",
        "alice@localhost/r",
    )
    assert change.payload is not None and change.payload.tag == "{urn:xmpp:bookmarks:1}conference"
    pep = host.modules["pep"].api
    item = etree.fromstring(
        f"<item xmlns='{NS}' id='s@muc'><conference xmlns='urn:xmpp:bookmarks:1'/></item>"
    )
    assert await pep.publish("alice", "urn:xmpp:bookmarks:1", item) == "s@muc"
    await pep.retract("alice", "urn:xmpp:bookmarks:1", "r@muc")
    assert [(c.kind, c.item_id, c.actor) for c in seen[1:]] == [
        ("items", "s@muc", "alice@localhost"),
        ("retract", "r@muc", "alice@localhost"),
    ]
    reply = await pubsub(alice, "<items node='urn:xmpp:bookmarks:1'/>", type="get")
    assert item_ids(reply) == ["s@muc"]
    await pubsub(alice, "<delete node='urn:xmpp:bookmarks:1'/>", owner=True)
    assert seen[-1].kind == "delete"


async def test_pep_max_items_is_what_max_means(tmp_path: Path) -> None:
    async with running_server(tmp_path, modules=["ping", "pep"], options={"pep_max_items": 3}) as s:
        await s.create_user("alice", USERS["alice"])
        alice = await user(s, "alice")
        for i in range(5):
            reply = await pubsub(alice, publish("n", f"<x xmlns='y'>{i}</x>", str(i), **MAX))
            assert reply.get("type") == "result"
        assert item_ids(await pubsub(alice, "<items node='n'/>", type="get")) == ["2", "3", "4"]
        assert (await stored(s, "alice", "pep/alice/n"))[0] == 3
        reply = await pubsub(alice, publish("m", "<x xmlns='y'/>", "1", pubsub__max_items="4"))
        assert error_of(reply) == ("modify", "bad-request", None, "max_items: out of bounds")
        assert await until_pong(alice) == []


async def test_pep_max_subscriptions_per_node(tmp_path: Path) -> None:
    options = {"pep_max_subscriptions": 1}
    async with running_server(tmp_path, modules=["ping", "pep"], options=options) as s:
        for name, password in USERS.items():
            await s.create_user(name, password)
        alice, bob, carol = [await user(s, name) for name in USERS]
        open_node = publish("n", "<x xmlns='y'/>", "1", pubsub__access_model="open")
        assert (await pubsub(alice, open_node)).get("type") == "result"
        sub = "<subscribe node='n' jid='{}'/>"
        reply = await pubsub(bob, sub.format("bob@localhost"), to="alice@localhost")
        assert reply.get("type") == "result"
        reply = await pubsub(carol, sub.format("carol@localhost"), to="alice@localhost")
        assert error_of(reply) == (
            "modify",
            "policy-violation",
            None,
            "Too many subscriptions to this node",
        )
        reply = await pubsub(bob, sub.format("bob@localhost"), to="alice@localhost")
        assert reply.get("type") == "result"  # bob's again: no new subscription
        assert await until_pong(carol) == []  # refused, and served on


async def test_a_flooding_publisher_keeps_a_bounded_pep(tmp_path: Path) -> None:
    """A client publishing ever more items to ever more nodes: what its account keeps stays
    within pep_max_nodes, pep_max_items and pep_max_bytes, counted in the database rows, and
    another account is served meanwhile."""
    options = {"pep_max_nodes": 4, "pep_max_items": 5, "pep_max_bytes": 12_000}
    async with running_server(tmp_path, modules=["ping", "pep"], options=options) as s:
        for name, password in USERS.items():
            await s.create_user(name, password)
        alice, bob = await user(s, "alice"), await user(s, "bob")
        payload = "<x xmlns='y'>" + "z" * 1000 + "</x>"
        refused: set[str | None] = set()
        for node in range(8):
            for item in range(10):
                reply = await pubsub(alice, publish(f"n{node}", payload, str(item), **MAX))
                if reply.get("type") == "error":
                    refused.add(error_of(reply)[1])
            assert await until_pong(bob) == []
        assert refused == {"policy-violation"}
        rows, size = await stored(s, "alice", "pep/alice/", prefix=True)
        assert 0 < rows <= 4 * 5 and size <= 12_000, (rows, size)
        assert (await stored(s, "alice", "pep"))[0] <= 4  # node records
        reply = await pubsub(bob, publish("mine", NICK.format("Bob"), "current"))
        assert reply.get("type") == "result"
