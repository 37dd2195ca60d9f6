"""Bookmarks kept in step (XEP-0048 <-> XEP-0402), as Prosody 0.12's mod_bookmarks.

A user's bookmarks live in PEP, one item per room in ``urn:xmpp:bookmarks:1`` (XEP-0402:
``whitelist``, ``max_items=max``, ``send_last_published_item=never``). Older clients that read
and write XEP-0048's ``<storage xmlns='storage:bookmarks'/>`` through private XML storage
(XEP-0049) or through PEP's ``storage:bookmarks`` node (XEP-0223 with XEP-0411's conversion)
see the same bookmarks: their reads are built from the PEP items, their writes become PEP
items (rooms no longer in the list are retracted, an empty list purges them; an unchanged room
is not published again). Clients that want ``storage:bookmarks`` notifications get the whole
list as XEP-0048 whenever the PEP bookmarks change, and at their initial presence.

At each login (``upgrade_legacy_bookmarks``), what an older client left behind is moved to
PEP: a ``storage:bookmarks`` PEP item (the node is then kept empty and ``whitelist``, so that
XEP-0411's notifications reach the owner only), and ``storage:bookmarks`` in private storage
(then deleted from there). Needs ``pep`` and ``private``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lxml import etree

from minixmpp.errors import StanzaError
from minixmpp.events import RESOURCE_BIND, SessionEvent, StanzaEvent
from minixmpp.module import Module
from minixmpp.pubsub.node import PEP_NODE_CHANGED, NodeChange
from minixmpp.pubsub.store import Item, serialise
from minixmpp.xml import stanza as st

NS = "urn:xmpp:bookmarks:1"
NS_OLD = "urn:xmpp:bookmarks:0"
NS_LEGACY = "storage:bookmarks"
NS_PRIVATE = "jabber:iq:private"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
DEFAULT_OPTIONS: dict[str, Any] = {
    "persist_items": True,
    "max_items": "max",
    "send_last_published_item": "never",
    "access_model": "whitelist",
}
LEGACY_NODE: dict[str, Any] = {
    "persist_items": False,
    "max_items": 1,
    "send_last_published_item": "never",
    "access_model": "whitelist",
}


@dataclass
class Options:
    upgrade_legacy_bookmarks: bool = True


def conference_of(item: etree._Element | None) -> tuple[str | None, ...] | None:
    """What XEP-0048 keeps of a room: (name, autojoin, nick, password); Prosody's comparison."""
    conference = None if item is None else item.find(f"{{{NS}}}conference")
    if conference is None:
        return None
    return (
        conference.get("name"),
        conference.get("autojoin"),
        conference.findtext(f"{{{NS}}}nick"),
        conference.findtext(f"{{{NS}}}password"),
    )


def legacy_storage(items: list[Item]) -> etree._Element:
    """XEP-0048's ``<storage/>`` of the PEP bookmarks."""
    storage = st.element(f"{{{NS_LEGACY}}}storage")
    for item in items:
        name, autojoin, nick, password = conference_of(item.element()) or (None,) * 4
        conference = st.sub(
            storage,
            f"{{{NS_LEGACY}}}conference",
            {"jid": item.id, "name": name, "autojoin": autojoin},
        )
        if nick is not None:
            st.sub(conference, f"{{{NS_LEGACY}}}nick", text=nick)
        if password is not None:
            st.sub(conference, f"{{{NS_LEGACY}}}password", text=password)
    return storage


def pep_item(conference: etree._Element) -> etree._Element:
    """The XEP-0402 item of a XEP-0048 ``<conference/>``."""
    item = st.element(f"{{{NS_PUBSUB}}}item", {"id": conference.get("jid")})
    converted = st.sub(
        item,
        f"{{{NS}}}conference",
        {"name": conference.get("name"), "autojoin": conference.get("autojoin")},
    )
    for child in ("nick", "password"):
        text = conference.findtext(f"{{{NS_LEGACY}}}{child}")
        if text is not None:
            st.sub(converted, f"{{{NS}}}{child}", text=text)
    return item


def load(module: Module) -> None:
    opts = module.options(Options)
    pep = module.depends("pep")
    private = module.depends("private")
    for feature in (f"{NS}#compat", f"{NS}#compat-pep", "urn:xmpp:bookmarks-conversion:0"):
        module.add_account_feature(feature)
    module.add_feature(NS_PRIVATE)  # on the domain, as Prosody (the XEP says nothing)

    async def bookmarks(service: Any) -> list[Item] | None:
        """The PEP bookmarks (None if the node does not exist)."""
        node = service.nodes.get(NS)
        if node is None:
            return None
        items, _ = await service.items.newest(NS, service.max_items(node))
        return list(items)

    async def publish_to_pep(username: str, storage: etree._Element, sync: bool) -> None:
        """Make the PEP bookmarks what ``storage`` says (``sync``: retract the others)."""
        service = await pep.service(username)
        async with service.lock:
            owner = service.jid
            conferences = [
                c for c in storage.iterchildren(f"{{{NS_LEGACY}}}conference") if c.get("jid")
            ]
            if not conferences:
                if sync and NS in service.nodes:
                    await service.purge(NS, owner)
                return
            current = await bookmarks(service)
            if current is None:
                await service.create(NS, owner, DEFAULT_OPTIONS)
                current = []
            else:
                config = service.config_of(service.nodes[NS])
                changes = {k: v for k, v in DEFAULT_OPTIONS.items() if config.get(k) != v}
                if changes:
                    module.log.warning("overriding the bookmarks node's configuration of %s", owner)
                    await service.configure(NS, owner, changes)
            existing = {item.id: item for item in current}
            for conference in conferences:
                item = pep_item(conference)
                room = item.get("id", "")
                old = existing.pop(room, None)
                if old is None or conference_of(item) != conference_of(old.element()):
                    await service.publish(NS, owner, item, DEFAULT_OPTIONS)
            if sync:
                for room in existing:
                    await service.retract(NS, owner, room, True)

    async def current_storage(username: str) -> etree._Element | None:
        found = await bookmarks(await pep.service(username))
        return None if found is None else legacy_storage(found)

    def own_child(event: StanzaEvent, tag: str) -> etree._Element | None:
        """The element ``tag`` in the IQ's payload, for one's own account only."""
        if event.to is not None or event.session.username is None:
            return None
        return event.stanza[0].find(tag)

    # -- XEP-0048 through private XML storage (XEP-0049) -----------------------------------

    @module.hook(f"iq-get/bare/{NS_PRIVATE}:query", 10)
    async def private_get(event: StanzaEvent) -> bool | None:
        asked = own_child(event, f"{{{NS_LEGACY}}}storage")
        if asked is None:
            return None
        assert event.session.username is not None
        storage = await current_storage(event.session.username)
        reply = st.reply(event.stanza)
        st.sub(reply, f"{{{NS_PRIVATE}}}query").append(
            storage if storage is not None else st.element(f"{{{NS_LEGACY}}}storage")
        )
        event.session.send(reply)
        return True

    @module.hook(f"iq-set/bare/{NS_PRIVATE}:query", 10)
    async def private_set(event: StanzaEvent) -> bool | None:
        storage = own_child(event, f"{{{NS_LEGACY}}}storage")
        if storage is None:
            return None
        assert event.session.username is not None
        await publish_to_pep(event.session.username, storage, True)
        event.session.send(st.reply(event.stanza))
        return True

    # -- XEP-0048 through PEP (XEP-0223, XEP-0411) -------------------------------------------

    @module.hook(f"iq-get/bare/{NS_PUBSUB}:pubsub", 10)
    async def legacy_get(event: StanzaEvent) -> bool | None:
        items = own_child(event, f"{{{NS_PUBSUB}}}items")
        if items is None or items.get("node") != NS_LEGACY:
            return None
        assert event.session.username is not None
        storage = await current_storage(event.session.username)
        if storage is None:
            raise StanzaError("item-not-found", "Failed to retrieve bookmarks from PEP")
        reply = st.reply(event.stanza)
        container = st.sub(st.sub(reply, f"{{{NS_PUBSUB}}}pubsub"), f"{{{NS_PUBSUB}}}items")
        container.set("node", NS_LEGACY)
        st.sub(container, f"{{{NS_PUBSUB}}}item", {"id": "current"}).append(storage)
        event.session.send(reply)
        return True

    @module.hook(f"iq-set/bare/{NS_PUBSUB}:pubsub", 10)
    async def legacy_publish(event: StanzaEvent) -> bool | None:
        publish = own_child(event, f"{{{NS_PUBSUB}}}publish")
        if publish is None:
            return None
        if publish.get("node") == NS_OLD:
            raise StanzaError(
                "not-allowed",
                "Your client does XEP-0402 version 0.3.0 but 0.4.0+ is required",
                type="modify",  # Prosody's
            )
        storage = publish.find(f"{{{NS_PUBSUB}}}item/{{{NS_LEGACY}}}storage")
        if publish.get("node") != NS_LEGACY or storage is None:
            return None
        assert event.session.username is not None
        await publish_to_pep(event.session.username, storage, True)  # item id, options: ignored
        event.session.send(st.reply(event.stanza))
        return True

    async def legacy_broadcast(username: str, actor: str | None) -> None:
        """XEP-0411: the whole list as XEP-0048, to who wants ``storage:bookmarks``."""
        service = await pep.service(username)
        node = service.nodes.get(NS_LEGACY)
        if node is None:
            return
        storage = legacy_storage(await bookmarks(service) or [])
        await service.broadcast(node, "items", Item("current", None, serialise(storage)), actor)

    @module.hook(PEP_NODE_CHANGED)
    async def changed(change: NodeChange) -> None:
        username, _, domain = change.service.partition("@")
        if change.node == NS and domain == module.host:
            await legacy_broadcast(username, change.actor)

    @module.hook("pre-presence/bare", 50)
    async def initial_presence(event: StanzaEvent) -> None:
        session = event.session
        initial = event.stanza.get("type") is None and session.presence is None
        if event.to is None and session.c2s and session.username is not None and initial:
            await legacy_broadcast(session.username, session.jid.full)

    # -- moving what older clients left ----------------------------------------------------

    @module.hook(RESOURCE_BIND)
    async def upgrade(event: SessionEvent) -> None:
        username = event.session.username
        if not opts.upgrade_legacy_bookmarks or username is None:
            return
        service = await pep.service(username)
        legacy = service.nodes.get(NS_LEGACY)
        if legacy is not None and service.config_of(legacy)["persist_items"]:
            items, _ = await service.items.newest(NS_LEGACY, service.max_items(legacy))
            for item in items:
                storage = item.element().find(f"{{{NS_LEGACY}}}storage")
                if storage is not None:
                    await publish_to_pep(username, storage, False)
        async with service.lock:
            if legacy is None:
                await service.create(NS_LEGACY, service.jid, LEGACY_NODE)
            elif any(service.config_of(legacy).get(k) != v for k, v in LEGACY_NODE.items()):
                await service.configure(NS_LEGACY, service.jid, LEGACY_NODE)
        stored = await private.get(username, "storage", NS_LEGACY)
        if stored is None:
            return
        await publish_to_pep(username, stored, False)
        await private.set(username, st.element(f"{{{NS_LEGACY}}}storage"))  # empty: deleted
        module.log.debug("moved the private XML bookmarks of %s to PEP", username)
