"""mod_pubsub: a XEP-0060 service at a Component, over real sockets; Prosody 0.12.3's replies
(recorded against it with the same requests) where it has them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from minixmpp.testing import TestServer, running_server
from tests.pubsub import (
    NS,
    NS_EVENT,
    NS_INFO,
    NS_ITEMS,
    NS_OWNER,
    error_of,
    events,
    form,
    item_ids,
    publish,
    pubsub,
    rsm_of,
    until_pong,
)
from tests.xmpp import RawClient, login, same_xml

SERVICE = "pubsub.localhost"
USERS = {"alice": "alice-pw", "bob": "bob-pw", "admin": "admin-pw"}
ATOM = "<entry xmlns='http://www.w3.org/2005/Atom'><title>{}</title></entry>"


def component(**options: Any) -> dict[str, dict[str, Any]]:
    return {SERVICE: {"component_module": "pubsub", **options}}


@pytest.fixture
async def srv(tmp_path: Path) -> AsyncIterator[TestServer]:
    async with running_server(
        tmp_path,
        modules=["disco", "ping"],
        options={"admins": ["admin@localhost"]},
        components=component(),
    ) as server:
        for name, password in USERS.items():
            await server.create_user(name, password)
        yield server


async def user(srv: TestServer, name: str) -> RawClient:
    client, _ = await login(srv.c2s_port, srv.ca_file, name, USERS[name], "r")
    return client


async def test_disco_of_the_service_and_its_nodes(srv: TestServer) -> None:
    alice, admin = await user(srv, "alice"), await user(srv, "admin")
    info = await alice.iq(f"<query xmlns='{NS_INFO}'/>", to=SERVICE)
    identity = info.find(f".//{{{NS_INFO}}}identity")
    assert identity is not None
    assert (identity.get("category"), identity.get("type")) == ("pubsub", "service")
    features = {f.get("var") for f in info.iter(f"{{{NS_INFO}}}feature")}
    assert {NS, f"{NS}#publish-options", f"{NS}#rsm", f"{NS}#access-open"} <= features
    assert f"{NS}#auto-create" not in features  # autocreate_on_publish is off
    reply = await pubsub(admin, "<create node='news'/>", to=SERVICE)
    assert reply.get("type") == "result"
    await pubsub(admin, publish("news", ATOM.format("Hello"), "i1"), to=SERVICE)
    items = await alice.iq(f"<query xmlns='{NS_ITEMS}'/>", to=SERVICE)
    same_xml(
        items[0],
        f"<query xmlns='{NS_ITEMS}'><item jid='{SERVICE}' node='news'/></query>",
    )
    node_items = await alice.iq(f"<query xmlns='{NS_ITEMS}' node='news'/>", to=SERVICE)
    same_xml(
        node_items[0],
        f"<query xmlns='{NS_ITEMS}' node='news'><item jid='{SERVICE}' name='i1'/></query>",
    )
    node_info = await alice.iq(f"<query xmlns='{NS_INFO}' node='news'/>", to=SERVICE)
    fields = {
        f.get("var"): f.findtext("{jabber:x:data}value")
        for f in node_info.iter("{jabber:x:data}field")
    }
    assert fields["FORM_TYPE"] == f"{NS}#meta-data"
    assert (fields["pubsub#access_model"], fields["pubsub#publish_model"]) == (
        "open",
        "publishers",
    )
    missing = await alice.iq(f"<query xmlns='{NS_INFO}' node='nope'/>", to=SERVICE)
    assert error_of(missing)[1] == "item-not-found"


async def test_only_admins_create_nodes(srv: TestServer) -> None:
    alice, admin = await user(srv, "alice"), await user(srv, "admin")
    # Prosody: <error type='auth'><forbidden/></error>
    assert error_of(await pubsub(alice, "<create node='news'/>", to=SERVICE))[:2] == (
        "auth",
        "forbidden",
    )
    assert error_of(await pubsub(alice, publish("news", "<x xmlns='y'/>"), to=SERVICE))[1] == (
        "forbidden"
    )
    configure = f"<configure>{form('node_config', pubsub__max_items='3')}</configure>"
    reply = await pubsub(admin, f"<create node='news'/>{configure}", to=SERVICE)
    same_xml(reply, "<iq type='result' from='pubsub.localhost' to='admin@localhost/r'/>")
    assert error_of(await pubsub(admin, "<create node='news'/>", to=SERVICE))[:2] == (
        "cancel",
        "conflict",
    )
    instant = await pubsub(admin, "<create/>", to=SERVICE)
    created = instant.find(f"{{{NS}}}pubsub/{{{NS}}}create")
    assert created is not None and len(created.get("node", "")) == 36  # a UUID
    config = await pubsub(admin, "<configure node='news'/>", type="get", to=SERVICE, owner=True)
    values = {
        f.get("var"): f.findtext("{jabber:x:data}value")
        for f in config.iter("{jabber:x:data}field")
    }
    assert values["pubsub#max_items"] == "3"
    assert values["pubsub#access_model"] == "open"


async def test_subscribers_get_notifications(srv: TestServer) -> None:
    alice, admin = await user(srv, "alice"), await user(srv, "admin")
    await pubsub(admin, "<create node='news'/>", to=SERVICE)
    reply = await pubsub(alice, "<subscribe node='news' jid='alice@localhost/r'/>", to=SERVICE)
    same_xml(
        reply,
        f"<iq type='result' from='{SERVICE}' to='alice@localhost/r'><pubsub xmlns='{NS}'>"
        "<subscription node='news' jid='alice@localhost/r' subscription='subscribed'/>"
        "</pubsub></iq>",
    )
    reply = await pubsub(admin, publish("news", ATOM.format("Hello"), "i1"), to=SERVICE)
    same_xml(
        reply,
        f"<iq type='result' from='{SERVICE}' to='admin@localhost/r'><pubsub xmlns='{NS}'>"
        "<publish node='news'><item id='i1'/></publish></pubsub></iq>",
    )
    (event,) = events(await until_pong(alice))
    same_xml(
        event,
        f"<message from='{SERVICE}' to='alice@localhost/r' type='headline'>"
        f"<event xmlns='{NS_EVENT}'><items node='news'><item id='i1'>"
        "<entry xmlns='http://www.w3.org/2005/Atom'><title>Hello</title></entry>"
        "</item></items></event></message>",
    )
    items = await pubsub(alice, "<items node='news'/>", type="get", to=SERVICE)
    assert item_ids(items) == ["i1"]
    assert items.find(f".//{{{NS}}}item").get("publisher") is None  # expose_publisher off
    # Asking for a body: Prosody's summary of an Atom entry
    options = form("subscribe_options", pubsub__include_body="1")
    reply = await pubsub(
        alice, f"<options node='news' jid='alice@localhost/r'>{options}</options>", to=SERVICE
    )
    assert reply.get("type") == "result"
    await pubsub(admin, publish("news", ATOM.format("Third"), "i3"), to=SERVICE)
    (event,) = events(await until_pong(alice))
    assert event.findtext("body") == "Third"
    # Without payloads: the item's id only, and no body (nothing to summarise)
    config = form("node_config", pubsub__deliver_payloads="0")
    await pubsub(admin, f"<configure node='news'>{config}</configure>", to=SERVICE, owner=True)
    await pubsub(admin, publish("news", ATOM.format("Fourth"), "i4"), to=SERVICE)
    (event,) = events(await until_pong(alice))
    same_xml(
        event,
        f"<message from='{SERVICE}' to='alice@localhost/r' type='headline'>"
        f"<event xmlns='{NS_EVENT}'><items node='news'><item id='i4'/></items></event></message>",
    )
    for body, kind in (("<purge node='news'/>", "purge"), ("<delete node='news'/>", "delete")):
        assert (await pubsub(admin, body, to=SERVICE, owner=True)).get("type") == "result"
        (event,) = events(await until_pong(alice))
        same_xml(
            event,
            f"<message from='{SERVICE}' to='alice@localhost/r' type='headline'>"
            f"<event xmlns='{NS_EVENT}'><{kind} node='news'/></event></message>",
        )


async def test_affiliations_decide_who_publishes_and_reads(srv: TestServer) -> None:
    alice, bob, admin = await user(srv, "alice"), await user(srv, "bob"), await user(srv, "admin")
    await pubsub(admin, "<create node='news'/>", to=SERVICE)
    assert error_of(await pubsub(alice, publish("news", "<x xmlns='y'/>"), to=SERVICE))[1] == (
        "forbidden"
    )
    affiliations = (
        "<affiliations node='news'>"
        "<affiliation jid='alice@localhost' affiliation='publisher'/>"
        "<affiliation jid='bob@localhost' affiliation='outcast'/></affiliations>"
    )
    assert (await pubsub(admin, affiliations, to=SERVICE, owner=True)).get("type") == "result"
    assert (await pubsub(alice, publish("news", "<x xmlns='y'/>", "a"), to=SERVICE)).get(
        "type"
    ) == "result"
    listed = await pubsub(admin, "<affiliations node='news'/>", type="get", to=SERVICE, owner=True)
    found = {
        (a.get("jid"), a.get("affiliation")) for a in listed.iter(f"{{{NS_OWNER}}}affiliation")
    }
    assert found == {
        ("admin@localhost", "owner"),
        ("alice@localhost", "publisher"),
        ("bob@localhost", "outcast"),
    }
    # an outcast may neither read nor subscribe; a publisher may not configure or delete
    assert error_of(await pubsub(bob, "<items node='news'/>", type="get", to=SERVICE))[1] == (
        "forbidden"
    )
    subscribe = "<subscribe node='news' jid='bob@localhost'/>"
    assert error_of(await pubsub(bob, subscribe, to=SERVICE))[1] == "forbidden"
    # a publisher may read the configuration (Prosody), not change it or delete the node
    config = await pubsub(alice, "<configure node='news'/>", type="get", to=SERVICE, owner=True)
    assert config.get("type") == "result"
    change = f"<configure node='news'>{form('node_config', pubsub__max_items='5')}</configure>"
    for body in ("<delete node='news'/>", change):
        assert error_of(await pubsub(alice, body, to=SERVICE, owner=True))[1] == "forbidden"
    bad = "<affiliations node='news'><affiliation jid='bob@localhost' affiliation='boss'/>"
    assert error_of(await pubsub(admin, bad + "</affiliations>", to=SERVICE, owner=True))[1] == (
        "bad-request"
    )


async def test_malformed_requests(srv: TestServer) -> None:
    admin = await user(srv, "admin")
    await pubsub(admin, "<create node='n'/>", to=SERVICE)
    # Prosody: nodeid-required inside bad-request
    assert error_of(await pubsub(admin, "<items/>", type="get", to=SERVICE))[:3] == (
        "modify",
        "bad-request",
        "nodeid-required",
    )
    assert error_of(await pubsub(admin, "<items node='nope'/>", type="get", to=SERVICE))[:2] == (
        "cancel",
        "item-not-found",
    )
    # Prosody: "invalid item" for an item without exactly one payload, or no item
    for body in (
        "<publish node='n'/>",
        "<publish node='n'><item id='1'/></publish>",
        "<publish node='n'><item id='1'><a xmlns='x'/><b xmlns='x'/></item></publish>",
    ):
        assert error_of(await pubsub(admin, body, to=SERVICE))[:4] == (
            "modify",
            "bad-request",
            None,
            "invalid item",
        )
    # an empty <pubsub/> is bad-request (type cancel, as Prosody); an unknown action is not served
    assert error_of(await pubsub(admin, "", to=SERVICE))[:2] == ("cancel", "bad-request")
    assert error_of(await pubsub(admin, "<foo/>", to=SERVICE))[1] == "service-unavailable"
    assert error_of(await pubsub(admin, "<subscribe node='n' jid='a@@b'/>", to=SERVICE))[2] == (
        "invalid-jid"
    )
    reply = await pubsub(admin, "<retract node='n'><item id='zz'/></retract>", to=SERVICE)
    assert error_of(reply)[1] == "item-not-found"


async def test_items_are_paged_with_rsm(srv: TestServer) -> None:
    admin = await user(srv, "admin")
    configure = f"<configure>{form('node_config', pubsub__max_items='10')}</configure>"
    await pubsub(admin, f"<create node='n'/>{configure}", to=SERVICE)
    for i in range(1, 6):
        await pubsub(admin, publish("n", f"<x xmlns='y'>{i}</x>", str(i)), to=SERVICE)

    async def page(rsm: str, extra: str = "") -> etree._Element:
        body = f"<items node='n'{extra}/><set xmlns='http://jabber.org/protocol/rsm'>{rsm}</set>"
        return await pubsub(admin, body, type="get", to=SERVICE)

    # newest first, two at a time
    first = await page("<max>2</max>")
    assert item_ids(first) == ["5", "4"]
    assert rsm_of(first) == ("5", "0", "4", "5")
    second = await page("<max>2</max><after>4</after>")
    assert item_ids(second) == ["3", "2"]
    assert rsm_of(second)[0::2] == ("3", "2")
    last = await page("<max>2</max><after>2</after>")
    assert item_ids(last) == ["1"]
    beyond = await page("<max>2</max><after>1</after>")  # past the end: an empty page
    assert item_ids(beyond) == []
    assert rsm_of(beyond) == (None, None, None, "5")
    oldest = await page("<max>2</max><before/>")  # the last page
    assert item_ids(oldest) == ["2", "1"]
    assert rsm_of(oldest)[:2] == ("2", "3")
    newer = await page("<max>2</max><before>3</before>")
    assert item_ids(newer) == ["5", "4"]
    assert item_ids(await page("<max>2</max><index>3</index>")) == ["2", "1"]
    count_only = await page("<max>0</max>")
    assert item_ids(count_only) == [] and rsm_of(count_only)[3] == "5"
    assert error_of(await page("<after>nope</after>"))[1] == "item-not-found"
    assert error_of(await page("<max>-1</max>"))[1] == "bad-request"
    # without RSM: the newest max_items, oldest first (Prosody's order)
    reply = await pubsub(admin, "<items node='n' max_items='2'/>", type="get", to=SERVICE)
    assert item_ids(reply) == ["4", "5"]
    ids = "<item id='3'/><item id='nope'/><item id='1'/>"
    reply = await pubsub(admin, f"<items node='n'>{ids}</items>", type="get", to=SERVICE)
    assert item_ids(reply) == ["3", "1"]  # in the order asked


async def test_nodes_items_and_subscriptions_survive_a_restart(tmp_path: Path) -> None:
    opts = {"admins": ["admin@localhost"]}
    async with running_server(
        tmp_path, modules=["disco"], options=opts, components=component()
    ) as first:
        for name, password in USERS.items():
            await first.create_user(name, password)
        admin = await user(first, "admin")
        await pubsub(admin, "<create node='n'/>", to=SERVICE)
        await pubsub(admin, publish("n", "<x xmlns='y'>kept</x>", "k"), to=SERVICE)
        await pubsub(admin, "<subscribe node='n' jid='alice@localhost'/>", to=SERVICE)
        await admin.close()
    async with running_server(
        tmp_path, modules=["disco"], options=opts, components=component()
    ) as second:
        admin, alice = await user(second, "admin"), await user(second, "alice")
        await alice.send("<presence/>")
        reply = await pubsub(alice, "<items node='n'/>", type="get", to=SERVICE)
        assert item_ids(reply) == ["k"]
        subs = await pubsub(admin, "<subscriptions node='n'/>", type="get", to=SERVICE, owner=True)
        assert [s.get("jid") for s in subs.iter(f"{{{NS_OWNER}}}subscription")] == [
            "alice@localhost"
        ]
        await pubsub(admin, publish("n", "<x xmlns='y'>new</x>", "k2"), to=SERVICE)
        assert item_ids(events(await until_pong(alice))[0], NS_EVENT) == ["k2"]


async def test_limits(tmp_path: Path) -> None:
    options = component(
        pubsub_max_nodes=2, pubsub_max_item_size=200, pubsub_max_bytes=500, pubsub_max_items=3
    )
    async with running_server(
        tmp_path, modules=["disco"], options={"admins": ["admin@localhost"]}, components=options
    ) as srv:
        await srv.create_user("admin", USERS["admin"])
        admin = await user(srv, "admin")
        for node in ("a", "b"):
            assert (await pubsub(admin, f"<create node='{node}'/>", to=SERVICE)).get(
                "type"
            ) == "result"
        assert error_of(await pubsub(admin, "<create node='c'/>", to=SERVICE))[:3] == (
            "modify",
            "policy-violation",
            "max-nodes-exceeded",
        )
        big = "<x xmlns='y'>" + "z" * 200 + "</x>"
        assert error_of(await pubsub(admin, publish("a", big), to=SERVICE))[:3] == (
            "modify",
            "not-acceptable",
            "payload-too-big",
        )
        # max_items beyond pubsub_max_items is refused; "max" is pubsub_max_items
        too_many = form("node_config", pubsub__max_items="4")
        reply = await pubsub(
            admin, f"<configure node='a'>{too_many}</configure>", to=SERVICE, owner=True
        )
        assert error_of(reply)[1:] == ("bad-request", None, "max_items: out of bounds")
        as_many = form("node_config", pubsub__max_items="max")
        await pubsub(admin, f"<configure node='a'>{as_many}</configure>", to=SERVICE, owner=True)
        item = "<x xmlns='y'>" + "z" * 100 + "</x>"  # 119 bytes
        for i in range(5):
            assert (await pubsub(admin, publish("a", item, str(i)), to=SERVICE)).get(
                "type"
            ) == "result"
        reply = await pubsub(admin, "<items node='a'/>", type="get", to=SERVICE)
        assert item_ids(reply) == ["2", "3", "4"]  # the oldest went
        rsm = "<set xmlns='http://jabber.org/protocol/rsm'><max>10</max></set>"
        reply = await pubsub(admin, f"<items node='a'/>{rsm}", type="get", to=SERVICE)
        assert item_ids(reply) == ["4", "3", "2"]
        assert rsm_of(reply)[3] == "3"
        asked = "<items node='a'><item id='0'/><item id='1'/><item id='2'/></items>"
        assert item_ids(await pubsub(admin, asked, type="get", to=SERVICE)) == ["2"]
        # 3 x 119 bytes are stored; 2 more in another node would pass 500 bytes
        assert (await pubsub(admin, publish("b", item, "b1"), to=SERVICE)).get("type") == ("result")
        kind, condition, _, text = error_of(await pubsub(admin, publish("b", item), to=SERVICE))
        assert (kind, condition) == ("modify", "policy-violation")
        assert text == "Items may take at most 500 bytes in all"
        # replacing an item (same id) takes no more room
        assert (await pubsub(admin, publish("b", item, "b1"), to=SERVICE)).get("type") == ("result")


async def test_a_harness_reset_forgets_the_nodes() -> None:
    from minixmpp.testing import XmppServer

    async with XmppServer(
        modules=["disco", "pep"],
        users=USERS,
        options={"admins": ["admin@localhost"]},
        components=component(),
    ) as srv:
        admin, alice = await user(srv, "admin"), await user(srv, "alice")
        await pubsub(admin, "<create node='n'/>", to=SERVICE)
        await pubsub(
            alice,
            publish("urn:xmpp:nick", "<nick xmlns='http://jabber.org/protocol/nick'>A</nick>"),
        )
        await srv.reset()  # the stores as at start: the nodes must go from memory too
        admin, alice = await user(srv, "admin"), await user(srv, "alice")
        assert error_of(await pubsub(admin, "<items node='n'/>", type="get", to=SERVICE))[1] == (
            "item-not-found"
        )
        assert error_of(await pubsub(alice, "<items node='urn:xmpp:nick'/>", type="get"))[1] == (
            "item-not-found"
        )
        assert (await pubsub(admin, "<create node='n'/>", to=SERVICE)).get("type") == "result"


async def test_pubsub_max_subscriptions_and_affiliations(tmp_path: Path) -> None:
    options = component(pubsub_max_subscriptions=1)
    async with running_server(
        tmp_path, modules=["ping"], options={"admins": ["admin@localhost"]}, components=options
    ) as srv:
        for name, password in USERS.items():
            await srv.create_user(name, password)
        admin, alice, bob = [await user(srv, name) for name in ("admin", "alice", "bob")]
        configure = f"<configure>{form('node_config', pubsub__access_model='open')}</configure>"
        await pubsub(admin, f"<create node='n'/>{configure}", to=SERVICE)
        sub = "<subscribe node='n' jid='{}'/>"
        reply = await pubsub(alice, sub.format("alice@localhost"), to=SERVICE)
        assert reply.get("type") == "result"
        reply = await pubsub(bob, sub.format("bob@localhost"), to=SERVICE)
        assert error_of(reply) == (
            "modify",
            "policy-violation",
            None,
            "Too many subscriptions to this node",
        )
        assert await until_pong(bob) == []  # refused, and served on
        # affiliations count against the same limit: the creator's owner affiliation fills it
        affiliate = (
            "<affiliations node='n'>"
            "<affiliation jid='alice@localhost' affiliation='publisher'/></affiliations>"
        )
        reply = await pubsub(admin, affiliate, to=SERVICE, owner=True)
        assert error_of(reply)[1:] == (
            "policy-violation",
            None,
            "Too many affiliations on this node",
        )
        assert await until_pong(admin) == []
