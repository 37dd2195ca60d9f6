"""The owner's actions (XEP-0060 §8, ``pubsub#owner``): configure, default, delete, purge,
and the subscriptions and affiliations of a node; Prosody's replies."""

from __future__ import annotations

from lxml import etree

from minixmpp.errors import StanzaError
from minixmpp.events import StanzaEvent
from minixmpp.jid import JID, InvalidJID
from minixmpp.pubsub import config as cfg
from minixmpp.pubsub.errors import invalid_jid
from minixmpp.pubsub.protocol import (
    NS_OWNER,
    actor_of,
    data_form,
    handler,
    node_of,
    result,
    subscriptions_reply,
)
from minixmpp.pubsub.service import Service
from minixmpp.xml import stanza as st


@handler(NS_OWNER, "get", "configure")
async def get_configure(
    service: Service, event: StanzaEvent, action: etree._Element
) -> etree._Element:
    name = node_of(action)
    node = service.nodes.get(name)
    await service.need(node, actor_of(event), "get_configuration")
    node = service.existing(name)
    reply, pubsub = result(event, NS_OWNER)
    st.sub(pubsub, f"{{{NS_OWNER}}}configure", {"node": name}).append(
        cfg.form(service.config_of(node), service.limits.max_items)
    )
    return reply


@handler(NS_OWNER, "set", "configure")
async def set_configure(
    service: Service, event: StanzaEvent, action: etree._Element
) -> etree._Element:
    name = node_of(action)
    await service.need(service.nodes.get(name), actor_of(event), "configure")
    x = data_form(action)
    if x is not None and x.get("type") == "cancel":
        return st.reply(event.stanza)  # XEP-0060 §8.2.5: nothing changes
    changes = cfg.read_form(x, service.limits.max_items, form_type=cfg.FORM_NODE_CONFIG)
    await service.configure(name, actor_of(event), changes)
    return st.reply(event.stanza)


@handler(NS_OWNER, "get", "default")
async def get_default(
    service: Service, event: StanzaEvent, action: etree._Element
) -> etree._Element:
    reply, pubsub = result(event, NS_OWNER)
    st.sub(pubsub, f"{{{NS_OWNER}}}default").append(
        cfg.form(service.node_defaults, service.limits.max_items)
    )
    return reply


@handler(NS_OWNER, "set", "delete")
async def delete(service: Service, event: StanzaEvent, action: etree._Element) -> etree._Element:
    await service.delete(node_of(action), actor_of(event))
    return st.reply(event.stanza)


@handler(NS_OWNER, "set", "purge")
async def purge(service: Service, event: StanzaEvent, action: etree._Element) -> etree._Element:
    await service.purge(node_of(action), actor_of(event))
    return st.reply(event.stanza)


@handler(NS_OWNER, "get", "subscriptions")
async def get_subscriptions(
    service: Service, event: StanzaEvent, action: etree._Element
) -> etree._Element:
    found = await service.subscriptions(action.get("node") or None, actor_of(event), None)
    return subscriptions_reply(event, NS_OWNER, found)


@handler(NS_OWNER, "set", "subscriptions")
async def set_subscriptions(
    service: Service, event: StanzaEvent, action: etree._Element
) -> etree._Element:
    name = node_of(action)
    actor = actor_of(event)
    await service.need(service.nodes.get(name), actor, "subscribe_other")
    service.existing(name)
    for el in action.iterchildren(f"{{{NS_OWNER}}}subscription"):
        jid = prepared(el.get("jid"))
        state = el.get("subscription")
        if state == "subscribed":
            await service.subscribe(name, actor, jid)
        elif state == "none":
            await service.unsubscribe(name, actor, jid)
    return st.reply(event.stanza)


@handler(NS_OWNER, "get", "affiliations")
async def get_affiliations(
    service: Service, event: StanzaEvent, action: etree._Element
) -> etree._Element:
    name = node_of(action)
    await service.need(service.nodes.get(name), actor_of(event), "set_affiliation")
    node = service.existing(name)
    reply, pubsub = result(event, NS_OWNER)
    container = st.sub(pubsub, f"{{{NS_OWNER}}}affiliations", {"node": name})
    for jid, affiliation in node.affiliations.items():
        st.sub(container, f"{{{NS_OWNER}}}affiliation", {"jid": jid, "affiliation": affiliation})
    return reply


@handler(NS_OWNER, "set", "affiliations")
async def set_affiliations(
    service: Service, event: StanzaEvent, action: etree._Element
) -> etree._Element:
    name = node_of(action)
    actor = actor_of(event)
    await service.need(service.nodes.get(name), actor, "set_affiliation")
    service.existing(name)
    changes = [
        (prepared(el.get("jid")), el.get("affiliation") or "")
        for el in action.iterchildren(f"{{{NS_OWNER}}}affiliation")
    ]
    for _jid, affiliation in changes:
        if affiliation not in ("owner", "publisher", "member", "none", "outcast"):
            raise StanzaError("bad-request", "Unknown affiliation")
    for jid, affiliation in changes:
        await service.set_affiliation(name, actor, jid, affiliation)
    return st.reply(event.stanza)


def prepared(jid: str | None) -> str:
    try:
        return JID.parse(jid or "").full
    except InvalidJID:
        raise invalid_jid() from None
