"""The wire side of a pubsub service (XEP-0060): ``<pubsub/>`` IQs to service calls and back,
and the service's disco#info and #items on nodes; Prosody's replies (pubsub.lib.lua).

``handle(service, event)`` answers one IQ get or set whose payload is ``<pubsub/>`` in the
``pubsub`` or ``pubsub#owner`` namespace (the owner's actions are in owner.py); an action it does
not know is left unanswered (``service-unavailable``, as Prosody). Changes run under the
service's lock, one at a time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from lxml import etree

from minixmpp.errors import StanzaError
from minixmpp.events import StanzaEvent
from minixmpp.jid import JID, InvalidJID
from minixmpp.pubsub import config as cfg
from minixmpp.pubsub import rsm
from minixmpp.pubsub.errors import invalid_jid, nodeid_required, pubsub_error
from minixmpp.pubsub.service import Service
from minixmpp.xml import stanza as st

NS = "http://jabber.org/protocol/pubsub"
NS_OWNER = f"{NS}#owner"
NS_INFO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"

After = Callable[[], Awaitable[None]]  # what to do once the reply is out
Reply = etree._Element | tuple[etree._Element, After]
Handler = Callable[[Service, StanzaEvent, etree._Element], Awaitable[Reply]]
HANDLERS: dict[tuple[str, str, str], Handler] = {}


def handler(ns: str, type: str, action: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[ns, type, action] = fn
        return fn

    return register


async def handle(service: Service, event: StanzaEvent) -> bool | None:
    """Answer a ``<pubsub/>`` IQ; None if its action is unknown (service-unavailable)."""
    stanza = event.stanza
    pubsub = stanza[0]
    action = next((c for c in pubsub if isinstance(c.tag, str)), None)
    if action is None:
        raise StanzaError("bad-request", type="cancel")
    ns = etree.QName(pubsub).namespace or ""
    fn = HANDLERS.get((ns, stanza.get("type", ""), etree.QName(action).localname))
    if fn is None:
        return None
    if stanza.get("type") == "set":
        async with service.lock:
            reply = await fn(service, event, action)
    else:
        reply = await fn(service, event, action)
    if isinstance(reply, tuple):
        event.session.send(reply[0])
        await reply[1]()
    else:
        event.session.send(reply)
    return True


def actor_of(event: StanzaEvent) -> str:
    return event.stanza.get("from") or event.session.jid.full


def node_of(action: etree._Element) -> str:
    node = action.get("node")
    if not node:
        raise nodeid_required()
    return node


def jid_of(action: etree._Element) -> str:
    try:
        return JID.parse(action.get("jid") or "").full
    except InvalidJID:
        raise invalid_jid() from None


def result(event: StanzaEvent, ns: str | None = None) -> tuple[etree._Element, etree._Element]:
    reply = st.reply(event.stanza)
    return reply, st.sub(reply, f"{{{ns or NS}}}pubsub")


def sibling(action: etree._Element, name: str) -> etree._Element | None:
    parent = action.getparent()
    assert parent is not None
    return parent.find(f"{{{NS}}}{name}")


def data_form(el: etree._Element | None) -> etree._Element | None:
    return None if el is None else el.find("{jabber:x:data}x")


# -- subscriber and publisher actions --------------------------------------------------------


@handler(NS, "get", "items")
async def get_items(service: Service, event: StanzaEvent, action: etree._Element) -> etree._Element:
    name = node_of(action)
    node = await service.readable(name, actor_of(event))
    ids = [i.get("id", "") for i in action.iterchildren(f"{{{NS}}}item")]
    parent = action.getparent()
    assert parent is not None
    request = rsm.parse(parent.find(rsm.SET))
    max_items = action.get("max_items")
    limit = service.max_items(node)
    if max_items is not None:
        if not max_items.isdigit():
            raise StanzaError("bad-request", "max_items must be a number")
        limit = min(limit, int(max_items))
    extra = None
    if ids:
        items = await service.items.by_ids(name, ids)
    elif request is not None:
        if request.max is None and max_items is not None:
            request = rsm.Request(limit, request.after, request.before, request.index)
        items, extra = await service.items.page(name, request, service.max_items(node))
    else:
        items, extra = await service.items.newest(name, limit)
    reply, pubsub = result(event)
    container = st.sub(pubsub, f"{{{NS}}}items", {"node": name})
    for item in items:
        container.append(item.element(publisher=service.expose_publisher))
    if extra is not None:
        pubsub.append(extra)
    return reply


@handler(NS, "set", "publish")
async def publish(service: Service, event: StanzaEvent, action: etree._Element) -> etree._Element:
    name = node_of(action)
    options = None
    publish_options = sibling(action, "publish-options")
    if publish_options is not None:
        options = cfg.read_form(
            data_form(publish_options),
            service.limits.max_items,
            form_type=cfg.FORM_PUBLISH_OPTIONS,
        )
    item = action.find(f"{{{NS}}}item")
    item_id = await service.publish(name, actor_of(event), item, options)
    reply, pubsub = result(event)
    st.sub(st.sub(pubsub, f"{{{NS}}}publish", {"node": name}), f"{{{NS}}}item", {"id": item_id})
    return reply


@handler(NS, "set", "retract")
async def retract(service: Service, event: StanzaEvent, action: etree._Element) -> etree._Element:
    item = action.find(f"{{{NS}}}item")
    item_id = None if item is None else item.get("id")
    if not action.get("node"):
        raise nodeid_required()
    if not item_id:
        raise pubsub_error("item-not-found")
    notify = action.get("notify") in ("1", "true")
    await service.retract(node_of(action), actor_of(event), item_id, notify)
    return st.reply(event.stanza)


@handler(NS, "set", "create")
async def create(service: Service, event: StanzaEvent, action: etree._Element) -> etree._Element:
    config = None
    configure = sibling(action, "configure")
    if configure is not None:
        config = cfg.read_form(
            data_form(configure), service.limits.max_items, form_type=cfg.FORM_NODE_CONFIG
        )
    given = action.get("node") or None
    name = await service.create(given, actor_of(event), config)
    if given:
        return st.reply(event.stanza)
    reply, pubsub = result(event)
    st.sub(pubsub, f"{{{NS}}}create", {"node": name})
    return reply


def subscription_reply(event: StanzaEvent, node: str, jid: str, state: str) -> etree._Element:
    reply, pubsub = result(event)
    st.sub(pubsub, f"{{{NS}}}subscription", {"node": node, "jid": jid, "subscription": state})
    return reply


@handler(NS, "set", "subscribe")
async def subscribe(service: Service, event: StanzaEvent, action: etree._Element) -> Reply:
    jid = jid_of(action)
    name = node_of(action)
    options_el = sibling(action, "options")
    options = None
    if options_el is not None:
        options = cfg.read_subscribe_options(data_form(options_el))
    node = await service.subscribe(name, actor_of(event), jid, options)
    reply = subscription_reply(event, name, jid, "subscribed")
    if options_el is not None:
        reply[0].append(etree.fromstring(etree.tostring(options_el)))

    async def last_item() -> None:  # after the reply, as Prosody
        if service.config_of(node)["send_last_published_item"] != "never":
            await service.send_last(node, jid)

    return reply, last_item


@handler(NS, "set", "unsubscribe")
async def unsubscribe(
    service: Service, event: StanzaEvent, action: etree._Element
) -> etree._Element:
    jid = jid_of(action)
    name = node_of(action)
    await service.unsubscribe(name, actor_of(event), jid)
    return subscription_reply(event, name, jid, "none")


@handler(NS, "get", "subscriptions")
async def subscriptions(
    service: Service, event: StanzaEvent, action: etree._Element
) -> etree._Element:
    actor = actor_of(event)
    found = await service.subscriptions(action.get("node") or None, actor, actor)
    return subscriptions_reply(event, NS, found)


def subscriptions_reply(
    event: StanzaEvent, ns: str, found: list[tuple[str, str]]
) -> etree._Element:
    reply, pubsub = result(event, ns)
    container = st.sub(pubsub, f"{{{ns}}}subscriptions")
    for node, jid in found:
        st.sub(
            container,
            f"{{{ns}}}subscription",
            {"node": node, "jid": jid, "subscription": "subscribed"},
        )
    return reply


@handler(NS, "get", "options")
async def get_options(
    service: Service, event: StanzaEvent, action: etree._Element
) -> etree._Element:
    jid = jid_of(action)
    name = node_of(action)
    options = await service.subscription(name, actor_of(event), jid)
    if options is None:
        raise pubsub_error("unexpected-request", "not-subscribed", type="modify")
    reply, pubsub = result(event)
    st.sub(pubsub, f"{{{NS}}}options", {"node": name, "jid": jid}).append(
        cfg.subscribe_options_form(options)
    )
    return reply


@handler(NS, "set", "options")
async def set_options(
    service: Service, event: StanzaEvent, action: etree._Element
) -> etree._Element:
    jid = jid_of(action)
    name = node_of(action)
    actor = actor_of(event)
    current = await service.subscription(name, actor, jid)
    if current is None:
        raise pubsub_error("unexpected-request", "not-subscribed", type="modify")
    changes = cfg.read_subscribe_options(data_form(action))
    await service.subscribe(name, actor, jid, {**current, **changes})
    return st.reply(event.stanza)


from minixmpp.pubsub import owner as _owner  # noqa: E402, F401  (registers the owner's actions)
