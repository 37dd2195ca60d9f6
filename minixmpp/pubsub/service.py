"""A publish-subscribe service (XEP-0060), after Prosody's util.pubsub: nodes with their
configuration, affiliations and subscriptions, items, access control and notifications.

Who may do what is Prosody's table (``CAPABILITIES``): an actor's affiliation with a node is
the node's own (``affiliations``), else the service's (``service_affiliation``: a PEP owner, a
pubsub admin), else what the node's access model gives (``open``: member; ``whitelist``:
outcast; ``presence``, ``roster``: ``access`` decides). A subclass (mod_pep, mod_pubsub) says
who owns the service, how ``presence`` and ``roster`` are judged, who else hears of items
(``recipients``: PEP's +notify contacts), and how stanzas go out (``send``).

Node records stay in memory (a service is loaded whole, its nodes bounded by
``Limits.max_nodes``); items stay in the store and are read as asked. Every change runs under
the service's lock, so that concurrent requests see each other's results. Errors are raised
as ``StanzaError`` with XEP-0060's pubsub conditions (``errors.py``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import Any

from lxml import etree

from minixmpp.errors import StanzaError
from minixmpp.pubsub import config as cfg
from minixmpp.pubsub.errors import pubsub_error
from minixmpp.pubsub.items import Limits, NodeItems
from minixmpp.pubsub.node import (
    AFFILIATIONS,
    CAPABILITIES,
    SUBSCRIPTIONS_PER_JID,
    Node,
    NodeChange,
    bare,
    check_name,
)
from minixmpp.pubsub.notify import event_item, event_message, wanted
from minixmpp.pubsub.store import Item, ServiceStore, serialise


class Service:
    """One pubsub service: an account's PEP, or a pubsub component."""

    autocreate_on_publish = False
    autocreate_on_subscribe = False
    access_models: frozenset[str] = frozenset({"open", "whitelist"})
    publisher_in_events = False  # Prosody's PEP names the publisher in notifications
    expose_publisher = False  # … and mod_pubsub in items and notifications when told to

    def __init__(
        self,
        jid: str,
        store: ServiceStore,
        node_defaults: Mapping[str, Any],
        limits: Limits,
    ) -> None:
        self.jid = jid
        self.store = store
        self.node_defaults = {**cfg.DEFAULTS, **node_defaults}
        self.limits = limits
        self.nodes: dict[str, Node] = {}
        self.items = NodeItems(store, limits)
        self.lock = asyncio.Lock()

    async def load(self) -> None:
        for name, record in (await self.store.records()).items():
            self.nodes[name] = Node(
                name,
                dict(record.get("config") or {}),
                dict(record.get("subscribers") or {}),
                dict(record.get("affiliations") or {}),
            )
            await self.items.load(name)

    # -- what subclasses decide ----------------------------------------------------------

    async def service_affiliation(self, actor: str) -> str | None:
        """The affiliation ``actor`` (a bare JID) has with the whole service."""
        return None

    async def access(self, model: str, actor: str, config: Mapping[str, Any]) -> bool:
        """Whether ``actor`` passes a ``presence`` or ``roster`` access model."""
        return False

    async def recipients(self, node: Node) -> dict[str, dict[str, Any]]:
        """Who else hears of the node's events than its subscribers (JID -> options)."""
        return {}

    async def send(self, stanza: etree._Element) -> None:
        raise NotImplementedError

    async def changed(self, change: NodeChange) -> None:
        """A node's items changed, or it went (mod_pep tells other modules: pep-node-changed)."""

    # -- access ---------------------------------------------------------------------------

    def config_of(self, node: Node | None) -> dict[str, Any]:
        return self.node_defaults if node is None else {**self.node_defaults, **node.config}

    async def affiliation(self, node: Node | None, actor: str) -> str:
        if node is not None:
            found = node.affiliations.get(actor) or node.affiliations.get(bare(actor))
            if found:
                return found
        found = await self.service_affiliation(bare(actor))
        if found:
            return found
        model = self.config_of(node)["access_model"]
        if model == "open":
            return "member"
        if model in ("presence", "roster"):
            return "member" if await self.access(model, actor, self.config_of(node)) else "outcast"
        return "outcast"  # whitelist (and anything unsupported)

    async def may(self, node: Node | None, actor: str | None, action: str) -> bool:
        """``actor`` None is the server itself, which may do anything."""
        if actor is None:
            return True
        return action in CAPABILITIES.get(await self.affiliation(node, actor), frozenset())

    async def need(self, node: Node | None, actor: str | None, action: str) -> None:
        if not await self.may(node, actor, action):
            raise pubsub_error("forbidden")

    def existing(self, name: str) -> Node:
        node = self.nodes.get(name)
        if node is None:
            raise pubsub_error("item-not-found")
        return node

    def check_config(self, config: Mapping[str, Any]) -> None:
        """Prosody's check_node_config: a supported access model, max_items within bounds."""
        full = {**self.node_defaults, **config}
        if full["access_model"] not in self.access_models:
            raise pubsub_error("not-acceptable")
        if cfg.item_limit(full["max_items"], self.limits.max_items) > self.limits.max_items:
            raise pubsub_error("not-acceptable")

    # -- nodes ----------------------------------------------------------------------------

    async def create(
        self, name: str | None, actor: str | None, config: Mapping[str, Any] | None = None
    ) -> str:
        """Create a node (an instant node with a new name if ``name`` is None)."""
        await self.need(self.nodes.get(name) if name else None, actor, "create")
        name = name or str(uuid.uuid4())
        check_name(name)
        if name in self.nodes:
            raise pubsub_error("conflict")
        if len(self.nodes) >= self.limits.max_nodes:
            raise pubsub_error(
                "policy-violation",
                "max-nodes-exceeded",
                f"A service may have at most {self.limits.max_nodes} nodes",
            )
        self.check_config(config or {})
        node = Node(name, dict(config or {}))
        if actor is not None:
            node.affiliations[bare(actor)] = "owner"
        self.nodes[name] = node
        try:
            await self.store.save(name, node.record())
        except BaseException:
            del self.nodes[name]
            raise
        self.items.created(name)
        return name

    async def delete(self, name: str, actor: str | None) -> None:
        node = self.nodes.get(name)
        await self.need(node, actor, "delete")
        node = self.existing(name)
        async with self.store.transaction() as tx:
            await self.store.delete(name, tx)
        del self.nodes[name]
        self.items.deleted(name)
        await self.broadcast(node, "delete")
        await self.changed(NodeChange(self.jid, name, "delete", None, None, actor))

    async def configure(self, name: str, actor: str | None, changes: Mapping[str, Any]) -> None:
        node = self.nodes.get(name)
        await self.need(node, actor, "configure")
        node = self.existing(name)
        old = self.config_of(node)
        new_config = {**node.config, **changes}
        self.check_config(new_config)
        before = (node.config, dict(node.subscribers))
        node.config = new_config
        new = self.config_of(node)
        try:
            await self._reconfigure(node, old, new)
        except BaseException:
            node.config, node.subscribers = before
            raise

    async def _reconfigure(self, node: Node, old: dict[str, Any], new: dict[str, Any]) -> None:
        name = node.name
        async with self.store.transaction() as tx:
            if not new["persist_items"]:
                await self.items.clear(name, tx)
            else:
                await self.items.trim(name, self.max_items(node), tx)
            if old["access_model"] != new["access_model"] or old.get(
                "roster_groups_allowed"
            ) != new.get("roster_groups_allowed"):
                for jid in list(node.subscribers):
                    if not await self.may(node, jid, "be_subscribed"):
                        del node.subscribers[jid]
            await self.store.save(name, node.record(), tx)

    def max_items(self, node: Node) -> int:
        return cfg.item_limit(self.config_of(node)["max_items"], self.limits.max_items)

    async def visible_nodes(self, actor: str) -> list[Node]:
        """The nodes ``actor`` may list and read (Prosody lists every node to anyone allowed
        get_nodes; here a node's name is shown only to who may read its items)."""
        if not await self.may(None, actor, "get_nodes"):
            return []
        return [n for n in self.nodes.values() if await self.may(n, actor, "get_items")]

    # -- publishing -----------------------------------------------------------------------

    async def publish(
        self,
        name: str,
        actor: str,
        item: etree._Element | None,
        options: Mapping[str, Any] | None = None,
    ) -> str:
        """Publish ``item`` (an ``<item/>`` with one payload); returns the item id."""
        node = self.nodes.get(name)
        if not await self.may(node, actor, "publish"):
            model = self.config_of(node)["publish_model"] if node else None
            if not (
                node is not None
                and (model == "open" or (model == "subscribers" and (actor in node.subscribers)))
            ):
                raise pubsub_error("forbidden")
        if node is not None and options:
            current = self.config_of(node)
            for key, value in options.items():
                if current.get(key) != value:
                    raise pubsub_error(
                        "conflict", "precondition-not-met", f"Field does not match: {key}"
                    )
        if item is None or len(item) != 1 or not isinstance(item[0].tag, str):
            raise StanzaError("bad-request", "invalid item")
        item_id = item.get("id") or str(uuid.uuid4())
        check_name(item_id, "Item IDs")
        stored = Item(item_id, bare(actor), serialise(item[0]))
        if len(stored.payload) > self.limits.max_item_size:
            raise pubsub_error(
                "not-acceptable",
                "payload-too-big",
                f"Items are limited to {self.limits.max_item_size} bytes",
            )
        if node is None:  # created once the item is known to be good (Prosody: before)
            if not self.autocreate_on_publish:
                raise pubsub_error("item-not-found")
            await self.create(name, None, options)
            node = self.nodes[name]
        if self.config_of(node)["persist_items"]:
            await self.items.put(name, stored, self.max_items(node))
        await self.broadcast(node, "items", stored, actor)
        await self.changed(NodeChange(self.jid, name, "items", item_id, item[0], actor))
        return item_id

    async def retract(self, name: str, actor: str, item_id: str, notify: bool) -> None:
        node = self.nodes.get(name)
        await self.need(node, actor, "retract")
        node = self.existing(name)
        if self.config_of(node)["persist_items"] and not await self.items.remove(name, item_id):
            raise pubsub_error("item-not-found")
        if notify:
            await self.broadcast(node, "retract", Item(item_id, None, b""))
        await self.changed(NodeChange(self.jid, name, "retract", item_id, None, actor))

    async def purge(self, name: str, actor: str) -> None:
        node = self.nodes.get(name)
        await self.need(node, actor, "retract")  # Prosody's capability for purging
        node = self.existing(name)
        async with self.store.transaction() as tx:
            await self.items.clear(name, tx)
        await self.broadcast(node, "purge")
        await self.changed(NodeChange(self.jid, name, "purge", None, None, actor))

    async def readable(self, name: str, actor: str) -> Node:
        """The node, if ``actor`` may read its items (forbidden, item-not-found, or
        feature-not-implemented for a node that keeps none)."""
        node = self.nodes.get(name)
        await self.need(node, actor, "get_items")
        node = self.existing(name)
        if not self.config_of(node)["persist_items"]:
            raise pubsub_error("feature-not-implemented", "unsupported", feature="persistent-items")
        return node

    # -- subscriptions and affiliations ---------------------------------------------------

    async def subscribe(
        self, name: str, actor: str, jid: str, options: dict[str, Any] | None = None
    ) -> Node:
        node = self.nodes.get(name)
        own = bare(actor) == bare(jid)
        await self.need(node, actor, "subscribe" if own else "subscribe_other")
        await self.need(node, jid, "be_subscribed")
        if node is None:
            if not self.autocreate_on_subscribe:
                raise pubsub_error("item-not-found")
            await self.create(name, None)
            node = self.nodes[name]
        if jid not in node.subscribers:
            same = sum(1 for j in node.subscribers if bare(j) == bare(jid))
            if len(node.subscribers) >= self.limits.max_subscriptions or (
                same >= SUBSCRIPTIONS_PER_JID
            ):
                raise pubsub_error("policy-violation", text="Too many subscriptions to this node")
        node.subscribers[jid] = options if options is not None else node.subscribers.get(jid, {})
        await self.store.save(name, node.record())
        return node

    async def unsubscribe(self, name: str, actor: str, jid: str) -> None:
        node = self.nodes.get(name)
        own = bare(actor) == bare(jid)
        await self.need(node, actor, "unsubscribe" if own else "unsubscribe_other")
        await self.need(node, jid, "be_unsubscribed")
        node = self.existing(name)
        if jid not in node.subscribers:
            raise pubsub_error("unexpected-request", "not-subscribed", type="modify")
        del node.subscribers[jid]
        await self.store.save(name, node.record())

    async def subscription(self, name: str, actor: str, jid: str) -> dict[str, Any] | None:
        node = self.nodes.get(name)
        own = bare(actor) == bare(jid)
        await self.need(node, actor, "get_subscription" if own else "get_subscription_other")
        return self.existing(name).subscribers.get(jid)

    async def subscriptions(
        self, name: str | None, actor: str, jid: str | None
    ) -> list[tuple[str, str]]:
        """(node, jid) of the subscriptions of ``jid``'s bare JID (every one when None)."""
        node = self.nodes.get(name) if name else None
        own = jid is not None and bare(actor) == bare(jid)
        await self.need(node, actor, "get_subscriptions" if own else "get_subscriptions_other")
        nodes = [self.existing(name)] if name else list(self.nodes.values())
        return [
            (n.name, j) for n in nodes for j in n.subscribers if jid is None or bare(j) == bare(jid)
        ]

    async def set_affiliation(self, name: str, actor: str, jid: str, affiliation: str) -> None:
        node = self.nodes.get(name)
        await self.need(node, actor, "set_affiliation")
        node = self.existing(name)
        if affiliation not in AFFILIATIONS:
            raise StanzaError("bad-request", f"Unknown affiliation {affiliation!r}"[:100])
        jid = bare(jid)
        if affiliation == "none":
            node.affiliations.pop(jid, None)
        elif jid not in node.affiliations and len(node.affiliations) >= (
            self.limits.max_subscriptions
        ):
            raise pubsub_error("policy-violation", text="Too many affiliations on this node")
        else:
            node.affiliations[jid] = affiliation
        for subscriber in list(node.subscribers):
            if bare(subscriber) == jid and not await self.may(node, subscriber, "be_subscribed"):
                del node.subscribers[subscriber]
        await self.store.save(name, node.record())

    # -- notifications --------------------------------------------------------------------

    async def broadcast(
        self,
        node: Node,
        kind: str,
        item: Item | None = None,
        actor: str | None = None,
        to: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """Tell the node's subscribers (and ``recipients``), or only ``to``, of an event."""
        config = self.config_of(node)
        if not wanted(kind, config):
            return
        if to is None:
            to = {**await self.recipients(node), **node.subscribers}
            subscribed = {bare(j) for j in node.subscribers if "/" not in j}
            to = {j: o for j, o in to.items() if j in node.subscribers or bare(j) not in subscribed}
        if not to:
            return
        child = None
        if item is not None:
            publisher = self.publisher_in_events or self.expose_publisher
            child = event_item(kind, item, config, publisher=publisher)
        message = event_message(
            self.jid, "items" if kind == "retract" else kind, node.name, config, child
        )
        body = self.summary(item, child) if item is not None and kind == "items" else None
        for jid, options in to.items():
            stanza = message
            if body is not None and options.get("pubsub#include_body"):
                stanza = etree.fromstring(etree.tostring(message))
                etree.SubElement(stanza, "body").text = body
            stanza.set("to", jid)
            await self.send(stanza)

    def summary(self, item: Item, child: etree._Element | None) -> str | None:
        """A body for subscribers who asked for one (mod_pubsub: Atom entries)."""
        return None

    async def send_last(self, node: Node, jid: str) -> None:
        """The node's newest item to ``jid`` (on subscription, or for PEP on presence)."""
        last = await self.items.last(node.name) if self.config_of(node)["persist_items"] else None
        if last is not None:
            await self.broadcast(node, "items", last, to={jid: {}})
