"""Service discovery of a pubsub service's nodes (XEP-0060 §5): the nodes, a node's metadata
and its items; and the features a service announces, as Prosody's get_feature_set."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lxml import etree

from minixmpp.pubsub import config as cfg
from minixmpp.pubsub.service import Service
from minixmpp.xml import stanza as st

NS = "http://jabber.org/protocol/pubsub"
NS_INFO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"

FEATURES = (
    "access-open",
    "auto-create",
    "config-node",
    "config-node-max",
    "create-and-configure",
    "create-nodes",
    "delete-items",
    "delete-nodes",
    "instant-nodes",
    "item-ids",
    "member-affiliation",
    "meta-data",
    "modify-affiliations",
    "multi-items",
    "outcast-affiliation",
    "persistent-items",
    "publish",
    "publish-options",
    "publisher-affiliation",
    "purge-nodes",
    "retract-items",
    "retrieve-default",
    "retrieve-items",
    "retrieve-subscriptions",
    "rsm",
    "subscribe",
    "subscription-options",
)


def features(service: type[Service], defaults: Mapping[str, Any], *extra: str) -> list[str]:
    """``http://jabber.org/protocol/pubsub`` and its ``#…`` features for a kind of service
    whose nodes have these ``defaults``."""
    names = set(FEATURES) | set(extra)
    if not service.autocreate_on_publish:
        names.discard("auto-create")
    names.discard("access-open")
    names.add(f"access-{defaults.get('access_model', 'open')}")
    if defaults.get("send_last_published_item", "never") != "never":
        names.add("last-published")
    return [NS, *(f"{NS}#{name}" for name in sorted(names))]


async def node_info(service: Service, actor: str, node: str, query: etree._Element) -> bool:
    """disco#info on a node: ``pubsub/leaf`` and its ``meta-data`` form. False for a node
    that does not exist or that ``actor`` may not read (item-not-found: another module may
    know the node)."""
    found = service.nodes.get(node)
    if found is None or not await service.may(found, actor, "get_items"):
        return False
    st.sub(query, f"{{{NS_INFO}}}identity", {"category": "pubsub", "type": "leaf"})
    query.append(cfg.metadata_form(service.config_of(found)))
    return True


async def node_items(service: Service, actor: str, node: str, query: etree._Element) -> bool:
    """disco#items on a node: its item ids, as ``<item jid=service name=id/>`` (False for a
    node that does not exist; forbidden for one ``actor`` may not read)."""
    if node not in service.nodes:
        return False
    found = await service.readable(node, actor)
    items, _ = await service.items.newest(found.name, service.max_items(found))
    for item in items:
        st.sub(query, f"{{{NS_ITEMS}}}item", {"jid": service.jid, "name": item.id})
    return True


async def nodes(service: Service, actor: str, query: etree._Element) -> None:
    """disco#items on the service: its nodes, as ``<item jid=service node=… name=title/>``."""
    for found in await service.visible_nodes(actor):
        title = service.config_of(found).get("title")
        st.sub(
            query, f"{{{NS_ITEMS}}}item", {"jid": service.jid, "node": found.name, "name": title}
        )
