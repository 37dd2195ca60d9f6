"""slixmpp's own plugins against mod_pep and mod_pubsub: XEP-0060 on a pubsub component (RSM
paging with XEP-0059), XEP-0163 with XEP-0115 caps (+notify), avatars (XEP-0084), nickname
(XEP-0172), bookmarks (XEP-0402) and an OMEMO device list published open, as clients do it
right after their first login. Subscriptions between users come from the clients' own
presence stanzas (slixmpp approves and subscribes back by itself)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from minixmpp.testing import TestServer, running_server
from tests.xmpp import TIMEOUT, SlixClient, slix_login

PEP = ("xep_0030", "xep_0199", "xep_0004", "xep_0060", "xep_0115", "xep_0163")
SERVICE = "pubsub.localhost"


async def login(
    srv: TestServer, jid: str, *plugins: str, watch: tuple[str, ...] = ()
) -> SlixClient:
    client = await slix_login(
        srv.c2s_port, srv.ca_file, jid, "pw", plugins=(*PEP, *plugins), watch=watch
    )
    # caps are computed as plugins register their +notify features: announce the final ones
    await client.client.plugin["xep_0115"].update_caps()
    await client.settle()
    return client


async def befriend(srv: TestServer, a: SlixClient, b: SlixClient) -> None:
    """A mutual subscription, by the clients' own stanzas (slixmpp approves and asks back)."""
    rosters = srv.server.hosts["localhost"].rosters
    a_user, b_jid = a.client.boundjid.user, b.client.boundjid.bare
    a.client.send_presence_subscription(pto=b_jid)
    for _ in range(100):
        await a.settle()
        await b.settle()
        item = await rosters.item("localhost", a_user, b_jid)
        if item is not None and item.subscription == "both":
            return
    raise AssertionError(f"no mutual subscription: {item}")


def options(**fields: str) -> Any:
    """A publish-options form (``pubsub__access_model`` for ``pubsub#access_model``)."""
    from slixmpp.plugins.xep_0004.stanza import Form

    form = Form()
    form["type"] = "submit"
    form.add_field(
        var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/pubsub#publish-options"
    )
    for name, value in fields.items():
        form.add_field(var=name.replace("__", "#"), value=value)
    return form


async def test_xep_0060_on_a_pubsub_component(tmp_path: Path) -> None:
    from slixmpp import ET
    from slixmpp.plugins.xep_0059.stanza import Set
    from slixmpp.plugins.xep_0060.stanza import Pubsub
    from slixmpp.xmlstream import register_stanza_plugin

    register_stanza_plugin(Pubsub, Set)
    async with running_server(
        tmp_path,
        modules=["disco", "ping"],
        options={"admins": ["admin@localhost"]},
        components={SERVICE: {"component_module": "pubsub"}},
    ) as srv:
        for name in ("admin", "alice"):
            await srv.create_user(name, "pw")
        admin = await login(srv, "admin@localhost/a", "xep_0059")
        alice = await login(srv, "alice@localhost/a", "xep_0059", watch=("pubsub_publish",))
        pubsub = admin.client.plugin["xep_0060"]
        await pubsub.create_node(SERVICE, "news", timeout=TIMEOUT)
        form = await pubsub.get_node_config(SERVICE, "news", timeout=TIMEOUT)
        config = form["pubsub_owner"]["configure"]["form"]
        config["type"] = "submit"
        config.field["pubsub#max_items"]["value"] = "50"
        await pubsub.set_node_config(SERVICE, "news", config, timeout=TIMEOUT)
        await alice.client.plugin["xep_0060"].subscribe(SERVICE, "news", timeout=TIMEOUT)
        for i in range(7):
            entry = ET.fromstring(
                f"<entry xmlns='http://www.w3.org/2005/Atom'><title>{i}</title></entry>"
            )
            await pubsub.publish(SERVICE, "news", id=f"e{i}", payload=entry, timeout=TIMEOUT)
        seen = [(await alice.next_event("pubsub_publish"))["pubsub_event"]["items"]["item"]["id"]]
        while len(seen) < 7:
            event = await alice.next_event("pubsub_publish")
            seen.append(event["pubsub_event"]["items"]["item"]["id"])
        assert seen == [f"e{i}" for i in range(7)]
        # XEP-0059: three pages of three, newest first
        query = alice.client.Iq(sto=SERVICE, stype="get")
        query["pubsub"]["items"]["node"] = "news"
        pages = []
        async for page in alice.client.plugin["xep_0059"].iterate(query, "pubsub", amount=3):
            pages.append([item["id"] for item in page["pubsub"]["items"]])
        assert pages == [["e6", "e5", "e4"], ["e3", "e2", "e1"], ["e0"]]
        await pubsub.retract(SERVICE, "news", "e0", timeout=TIMEOUT)
        items = await alice.client.plugin["xep_0060"].get_items(SERVICE, "news", timeout=TIMEOUT)
        assert [item["id"] for item in items["pubsub"]["items"]] == [f"e{i}" for i in range(1, 7)]
        await pubsub.purge(SERVICE, "news", timeout=TIMEOUT)
        await pubsub.delete_node(SERVICE, "news", timeout=TIMEOUT)


async def test_nick_and_avatar_reach_contacts_that_want_them(tmp_path: Path) -> None:
    async with running_server(tmp_path, modules=["disco", "ping", "pep"]) as srv:
        for name in ("alice", "bob"):
            await srv.create_user(name, "pw")
        alice = await login(srv, "alice@localhost/a", "xep_0084", "xep_0172")
        bob = await login(
            srv,
            "bob@localhost/b",
            "xep_0084",
            "xep_0172",
            watch=("user_nick_publish", "avatar_metadata_publish"),
        )
        await befriend(srv, bob, alice)
        # the server resolved slixmpp's caps hash, and it agreed with its own XEP-0115 sum
        pep = srv.server.hosts["localhost"].modules["pep"].api
        ver = await bob.client.plugin["xep_0115"].get_verstring(bob.client.boundjid)
        assert pep.caps.get(f"sha-1:{ver}") is not None
        await alice.client.plugin["xep_0172"].publish_nick("Alice", timeout=TIMEOUT)
        event = await bob.event_from("user_nick_publish", "alice@localhost")
        assert event["pubsub_event"]["items"]["item"]["nick"]["nick"] == "Alice"
        png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
        avatars = alice.client.plugin["xep_0084"]
        await avatars.publish_avatar(png, timeout=TIMEOUT)
        info = {"id": avatars.generate_id(png), "type": "image/png", "bytes": len(png)}
        await avatars.publish_avatar_metadata([info], timeout=TIMEOUT)
        event = await bob.event_from("avatar_metadata_publish", "alice@localhost")
        metadata = event["pubsub_event"]["items"]["item"]["avatar_metadata"]
        assert metadata["info"]["id"] == info["id"]
        data = await bob.client.plugin["xep_0084"].retrieve_avatar(
            "alice@localhost", info["id"], timeout=TIMEOUT
        )
        assert data["pubsub"]["items"]["item"]["avatar_data"]["value"] == png
        # a new login of bob's gets the last nick at once (send_last_published_item)
        again = await login(srv, "bob@localhost/c", "xep_0172", watch=("user_nick_publish",))
        event = await again.event_from("user_nick_publish", "alice@localhost")
        assert event["pubsub_event"]["items"]["item"]["nick"]["nick"] == "Alice"


async def test_bookmarks_and_omemo_as_clients_publish_them(tmp_path: Path) -> None:
    from slixmpp import ET
    from slixmpp.plugins.xep_0402.stanza import Conference

    async with running_server(tmp_path, modules=["disco", "ping", "pep"]) as srv:
        for name in ("alice", "bob", "carol"):
            await srv.create_user(name, "pw")
        phone = await login(srv, "alice@localhost/phone", "xep_0402")
        desk = await login(srv, "alice@localhost/desk", "xep_0402", watch=("pubsub_publish",))
        desk.client.plugin["xep_0163"].add_interest("urn:xmpp:bookmarks:1")
        await desk.client.plugin["xep_0115"].update_caps()
        await desk.settle()
        bob = await login(srv, "bob@localhost/b", watch=("pubsub_publish",))
        bob.client.plugin["xep_0163"].add_interest("eu.siacs.conversations.axolotl.devicelist")
        await bob.client.plugin["xep_0115"].update_caps()
        await befriend(srv, bob, phone)
        # XEP-0402 §3: a conference per item, whitelist, max_items=max, never sent on login
        conference = Conference()
        conference["name"] = "The Room"
        conference["autojoin"] = True
        conference["nick"] = "alice"
        bookmark_options = options(
            pubsub__persist_items="true",
            pubsub__max_items="max",
            pubsub__send_last_published_item="never",
            pubsub__access_model="whitelist",
        )
        pubsub = phone.client.plugin["xep_0060"]
        await pubsub.publish(
            None,
            "urn:xmpp:bookmarks:1",
            id="room@muc.localhost",
            payload=conference,
            options=bookmark_options,
            timeout=TIMEOUT,
        )
        event = await desk.event_from("pubsub_publish", "alice@localhost")
        published = event["pubsub_event"]["items"]["item"].xml
        assert published.find("{urn:xmpp:bookmarks:1}conference").get("name") == "The Room"
        items = await pubsub.get_items(None, "urn:xmpp:bookmarks:1", timeout=TIMEOUT)
        assert [i["id"] for i in items["pubsub"]["items"]] == ["room@muc.localhost"]
        try:
            await bob.client.plugin["xep_0060"].get_items(
                "alice@localhost", "urn:xmpp:bookmarks:1", timeout=TIMEOUT
            )
            raise AssertionError("bob read alice's bookmarks")
        except Exception as exc:  # IqError
            assert "forbidden" in str(exc)
        # OMEMO (Conversations' axolotl and OMEMO 2): device lists and bundles, open to all
        open_access = options(pubsub__access_model="open")
        devicelist = ET.fromstring(
            "<list xmlns='eu.siacs.conversations.axolotl'><device id='4223'/></list>"
        )
        await pubsub.publish(
            None,
            "eu.siacs.conversations.axolotl.devicelist",
            id="current",
            payload=devicelist,
            options=open_access,
            timeout=TIMEOUT,
        )
        bundle = ET.fromstring(
            "<bundle xmlns='eu.siacs.conversations.axolotl'><signedPreKeyPublic"
            " signedPreKeyId='1'>BQ==</signedPreKeyPublic></bundle>"
        )
        await pubsub.publish(
            None,
            "eu.siacs.conversations.axolotl.bundles:4223",
            id="current",
            payload=bundle,
            options=open_access,
            timeout=TIMEOUT,
        )
        devices2 = ET.fromstring("<devices xmlns='urn:xmpp:omemo:2'><device id='4223'/></devices>")
        await pubsub.publish(
            None,
            "urn:xmpp:omemo:2:devices",
            id="current",
            payload=devices2,
            options=open_access,
            timeout=TIMEOUT,
        )
        event = await bob.event_from("pubsub_publish", "alice@localhost")
        assert event["pubsub_event"]["items"]["node"] == "eu.siacs.conversations.axolotl.devicelist"
        carol = await login(srv, "carol@localhost/c")  # no contact of alice's
        for node in (
            "eu.siacs.conversations.axolotl.devicelist",
            "eu.siacs.conversations.axolotl.bundles:4223",
            "urn:xmpp:omemo:2:devices",
        ):
            got = await carol.client.plugin["xep_0060"].get_items(
                "alice@localhost", node, timeout=TIMEOUT
            )
            assert [i["id"] for i in got["pubsub"]["items"]] == ["current"]
        # publishing again with the same options is accepted (the preconditions hold)
        await pubsub.publish(
            None,
            "eu.siacs.conversations.axolotl.devicelist",
            id="current",
            payload=devicelist,
            options=open_access,
            timeout=TIMEOUT,
        )


async def test_xep_0048_and_xep_0402_clients_share_bookmarks(tmp_path: Path) -> None:
    from slixmpp.plugins.xep_0048.stanza import Bookmarks

    async with running_server(
        tmp_path, modules=["disco", "ping", "pep", "private", "bookmarks"]
    ) as srv:
        await srv.create_user("alice", "pw")
        old = await login(srv, "alice@localhost/old", "xep_0048", "xep_0049", "xep_0223")
        new = await login(srv, "alice@localhost/new", "xep_0402", watch=("pubsub_publish",))
        new.client.plugin["xep_0163"].add_interest("urn:xmpp:bookmarks:1")
        await new.client.plugin["xep_0115"].update_caps()
        await new.settle()
        # the old client stores XEP-0048 bookmarks in private XML storage (XEP-0049)
        marks = Bookmarks()
        marks.add_conference("room@muc.localhost", "al", name="Room", autojoin=True)
        await old.client.plugin["xep_0048"].set_bookmarks(marks, timeout=TIMEOUT)
        event = await new.event_from("pubsub_publish", "alice@localhost")
        assert event["pubsub_event"]["items"]["item"]["id"] == "room@muc.localhost"
        items = await new.client.plugin["xep_0060"].get_items(
            None, "urn:xmpp:bookmarks:1", timeout=TIMEOUT
        )
        conference = items["pubsub"]["items"]["item"]["conference"]
        assert (conference["name"], conference["autojoin"], conference["nick"]) == (
            "Room",
            True,
            "al",
        )
        # the new client adds one (XEP-0402); the old one reads both, through either method
        from slixmpp.plugins.xep_0402.stanza import Conference

        second = Conference()
        second["name"] = "Other"
        await new.client.plugin["xep_0060"].publish(
            None,
            "urn:xmpp:bookmarks:1",
            id="other@muc.localhost",
            payload=second,
            options=options(pubsub__max_items="max", pubsub__access_model="whitelist"),
            timeout=TIMEOUT,
        )
        for method in ("xep_0049", "xep_0223"):
            got = await old.client.plugin["xep_0048"].get_bookmarks(method=method, timeout=TIMEOUT)
            xml = got.xml
            rooms = sorted(c.get("jid") for c in xml.iter("{storage:bookmarks}conference"))
            assert rooms == ["other@muc.localhost", "room@muc.localhost"], method
