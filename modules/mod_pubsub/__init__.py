"""Publish-Subscribe (XEP-0060) as a service of its own, Prosody's mod_pubsub: usually a
Component (``[Component."pubsub.example.com"]`` with ``component_module = "pubsub"``), whose
JID is the service; on a VirtualHost the host's JID is.

Who may create nodes: the service's admins (the server's ``admins``, and the host itself), who
are owners of every node (``default_admin_affiliation``); anyone else publishes where a node's
affiliations or ``publish_model`` allow it, and reads and subscribes as its access model
(``open`` or ``whitelist``) allows. Nodes, subscriptions and affiliations live in the map store
``pubsub_nodes``, items in an archive store per node (minixmpp/pubsub/store.py). Notifications
come from the service's JID; a subscriber that asked for ``pubsub#include_body`` gets a body
summarising Atom entries. Limits: ``pubsub_max_items`` per node (what ``max`` means),
``pubsub_max_nodes``, ``pubsub_max_item_size`` bytes per item, ``pubsub_max_bytes`` for all
items, ``pubsub_max_subscriptions`` per node.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from lxml import etree

from minixmpp.config import PositiveInt
from minixmpp.events import (
    HOST_DISCO_INFO_NODE,
    HOST_DISCO_ITEMS,
    HOST_DISCO_ITEMS_NODE,
    SERVER_RESETTING,
    DiscoNode,
    ServerEvent,
    StanzaEvent,
)
from minixmpp.module import Module
from minixmpp.pubsub import disco, protocol
from minixmpp.pubsub.items import Limits
from minixmpp.pubsub.notify import atom_summary
from minixmpp.pubsub.service import Service
from minixmpp.pubsub.store import Item, ServiceStore


@dataclass
class Options:
    pubsub_max_items: PositiveInt = 256  # items per node; what max_items "max" means
    pubsub_max_nodes: PositiveInt = 1000
    pubsub_max_item_size: PositiveInt = 256 * 1024  # bytes of one item's payload
    pubsub_max_bytes: PositiveInt = 100 * 1024 * 1024  # bytes of all the service's items
    pubsub_max_subscriptions: PositiveInt = 1000  # per node
    autocreate_on_publish: bool = False
    autocreate_on_subscribe: bool = False
    expose_publisher: bool = False
    default_admin_affiliation: str = "owner"
    name: str = "minixmpp PubSub Service"  # the disco#info identity's name (Prosody's option)


class PubsubService(Service):
    def __init__(self, module: Module, opts: Options) -> None:
        limits = Limits(
            max_items=opts.pubsub_max_items,
            max_nodes=opts.pubsub_max_nodes,
            max_item_size=opts.pubsub_max_item_size,
            max_bytes=opts.pubsub_max_bytes,
            max_subscriptions=opts.pubsub_max_subscriptions,
        )
        store = ServiceStore(module, module.open_store("pubsub_nodes", "map"), None, "pubsub/")
        # Prosody's default of 20 items, within the service's maximum
        defaults = {"max_items": min(20, opts.pubsub_max_items)}
        super().__init__(module.host, store, defaults, limits)
        self.module = module
        self.admin_affiliation = opts.default_admin_affiliation
        self.autocreate_on_publish = opts.autocreate_on_publish
        self.autocreate_on_subscribe = opts.autocreate_on_subscribe
        self.expose_publisher = opts.expose_publisher

    async def service_affiliation(self, actor: str) -> str | None:
        if actor == self.module.host or self.module.is_admin(actor):
            return self.admin_affiliation
        return None

    async def send(self, stanza: etree._Element) -> None:
        await self.module.send(stanza)

    def summary(self, item: Item, child: etree._Element | None) -> str | None:
        payload = None if child is None else next(iter(child), None)
        return None if payload is None else atom_summary(payload)


def load(module: Module) -> PubsubService:
    opts = module.options(Options)
    module.depends("disco")
    service = PubsubService(module, opts)
    loaded = asyncio.Lock()
    ready = False

    async def get() -> PubsubService:
        nonlocal ready
        async with loaded:
            if not ready:
                await service.load()
                ready = True
        return service

    @module.hook(SERVER_RESETTING)
    async def reset(_event: ServerEvent) -> None:
        """A test harness restores the stores: the nodes are read again."""
        nonlocal ready
        async with loaded:
            service.nodes.clear()
            service.items.sizes.clear()
            ready = False

    module.add_identity("pubsub", "service", opts.name)
    for feature in disco.features(PubsubService, {}):
        module.add_feature(feature)

    async def handle(event: StanzaEvent) -> bool | None:
        return await protocol.handle(await get(), event)

    for ns in (protocol.NS, protocol.NS_OWNER):
        for kind in ("get", "set"):
            module.hook(f"iq-{kind}/host/{ns}:pubsub")(handle)

    def actor(event: DiscoNode) -> str:
        return event.event.stanza.get("from") or event.event.session.jid.full

    @module.hook(HOST_DISCO_INFO_NODE)
    async def node_info(event: DiscoNode) -> bool | None:
        return await disco.node_info(await get(), actor(event), event.node, event.query) or None

    @module.hook(HOST_DISCO_ITEMS_NODE)
    async def node_items(event: DiscoNode) -> bool | None:
        return await disco.node_items(await get(), actor(event), event.node, event.query) or None

    @module.hook(HOST_DISCO_ITEMS)
    async def nodes(event: DiscoNode) -> None:
        await disco.nodes(await get(), actor(event), event.query)

    return service
