"""Service discovery (XEP-0030) for the host and for accounts, plus the caps hash features.

Host: identity ``server/im`` (not on a Component) and every feature and identity modules add;
its items are ``disco_items``, the components one label below it (``pubsub.example.com``,
Prosody's children), what modules add (``disco-item`` items, ``host-disco-items``). Account (a
bare JID): ``account/registered``, the identities (``account-identity`` items) and features
modules add (PEP's), for the account itself and for contacts it has a ``from`` (or ``both``)
subscription with, as Prosody's ``is_contact_subscribed``; others get
``service-unavailable`` unless a module answers ``account-disco-allowed``. Requests for a
``node`` fire ``host-disco-info-node`` / ``host-disco-items-node`` (ad-hoc commands, pubsub)
or ``account-disco-info-node`` / ``account-disco-items-node`` (PEP); the items of an account
come from ``account-disco-items``. An unknown node is ``item-not-found``. Forms other
modules offer as ``disco-extension`` items (XEP-0128) follow the host's features.
"""

import copy
from dataclasses import dataclass

from lxml import etree

from minixmpp.errors import StanzaError
from minixmpp.events import (
    ACCOUNT_DISCO_INFO_NODE,
    ACCOUNT_DISCO_ITEMS,
    ACCOUNT_DISCO_ITEMS_NODE,
    CONFIG_RELOADED,
    HOST_DISCO_INFO_NODE,
    HOST_DISCO_ITEMS,
    HOST_DISCO_ITEMS_NODE,
    ConfigReloaded,
    DiscoNode,
    StanzaEvent,
)
from minixmpp.module import Module
from minixmpp.xml import stanza as st

NS_INFO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"
ACCOUNT_ALLOWED = "account-disco-allowed"


@dataclass
class Options:
    disco_items: list[list[str]] | None = None  # Prosody's disco_items: [[jid, name], …]
    server_name: str = "minixmpp"


def load(module: Module) -> None:
    opts = module.options(Options)
    module.add_feature(NS_INFO)
    module.add_feature(NS_ITEMS)
    module.add_account_feature(NS_INFO)  # as Prosody 0.12.5 answers for accounts
    module.add_account_feature(NS_ITEMS)

    @module.hook(CONFIG_RELOADED)
    async def reloaded(_event: ConfigReloaded) -> None:
        nonlocal opts
        opts = module.options(Options)

    def info_query(reply: etree._Element, node: str | None) -> etree._Element:
        return st.sub(reply, f"{{{NS_INFO}}}query", {"node": node})

    def add_features(
        query: etree._Element, identities: list[tuple[str, str, str | None]], features: list[str]
    ) -> None:
        for category, kind, name in sorted(set(identities), key=lambda i: (i[0], i[1], i[2] or "")):
            st.sub(
                query, f"{{{NS_INFO}}}identity", {"category": category, "type": kind, "name": name}
            )
        for var in sorted(set(features)):
            st.sub(query, f"{{{NS_INFO}}}feature", {"var": var})

    @module.hook(f"iq-get/host/{NS_INFO}:query")
    async def host_info(event: StanzaEvent) -> bool:
        node = event.stanza[0].get("node")
        reply = st.reply(event.stanza)
        query = info_query(reply, node)
        if node:
            if not await module.fire(HOST_DISCO_INFO_NODE, DiscoNode(event, node, query)):
                raise StanzaError("item-not-found", "Node does not exist")
        else:
            server = [("server", "im", opts.server_name)] if module.host_type == "local" else []
            add_features(query, [*server, *module.items("identity")], module.items("feature"))
            for form in module.items("disco-extension"):  # XEP-0128 (e.g. XEP-0157's)
                query.append(copy.deepcopy(form))
        event.session.send(reply)
        return True

    @module.hook(f"iq-get/host/{NS_ITEMS}:query")
    async def host_items(event: StanzaEvent) -> bool:
        node = event.stanza[0].get("node")
        reply = st.reply(event.stanza)
        query = st.sub(reply, f"{{{NS_ITEMS}}}query", {"node": node})
        if node:
            if not await module.fire(HOST_DISCO_ITEMS_NODE, DiscoNode(event, node, query)):
                raise StanzaError("item-not-found", "Node does not exist")
        else:
            await module.fire(HOST_DISCO_ITEMS, DiscoNode(event, "", query))
            for child in module.children:
                st.sub(query, f"{{{NS_ITEMS}}}item", {"jid": child})
            for entry in opts.disco_items or ():
                st.sub(
                    query,
                    f"{{{NS_ITEMS}}}item",
                    {"jid": entry[0], "name": entry[1] if len(entry) > 1 else None},
                )
            for item in module.items("disco-item"):
                st.sub(query, f"{{{NS_ITEMS}}}item", item)
        event.session.send(reply)
        return True

    if module.host_type != "local":
        return  # a component has no accounts

    async def account_allowed(event: StanzaEvent) -> bool:
        origin, target = event.session, event.to
        if target is None or (origin.username is not None and origin.jid.bare == target.bare):
            return True
        if target.node is not None and target.domain == module.host:
            item = await module.rosters.item(module.host, target.node, origin.jid.bare)
            if item is not None and item.from_:  # a contact the account shares presence with
                return True
        return bool(await module.fire(ACCOUNT_ALLOWED, event))

    def account_reply(event: StanzaEvent) -> etree._Element:
        reply = st.reply(event.stanza)
        if reply.get("from") is None:  # asked with no 'to': answer from the account
            reply.set("from", event.session.jid.bare)
        return reply

    @module.hook(f"iq-get/bare/{NS_INFO}:query")
    async def account_info(event: StanzaEvent) -> bool | None:
        if not await account_allowed(event):
            return None  # service-unavailable
        node = event.stanza[0].get("node")
        reply = account_reply(event)
        query = info_query(reply, node)
        if node:
            if not await module.fire(ACCOUNT_DISCO_INFO_NODE, DiscoNode(event, node, query)):
                raise StanzaError("item-not-found", "Node does not exist")
        else:
            add_features(
                query,
                [("account", "registered", None), *module.items("account-identity")],
                module.items("account-feature"),
            )
        event.session.send(reply)
        return True

    @module.hook(f"iq-get/bare/{NS_ITEMS}:query")
    async def account_items(event: StanzaEvent) -> bool | None:
        if not await account_allowed(event):
            return None
        node = event.stanza[0].get("node")
        reply = account_reply(event)
        query = st.sub(reply, f"{{{NS_ITEMS}}}query", {"node": node})
        if node:
            if not await module.fire(ACCOUNT_DISCO_ITEMS_NODE, DiscoNode(event, node, query)):
                raise StanzaError("item-not-found", "Node does not exist")
        else:
            await module.fire(ACCOUNT_DISCO_ITEMS, DiscoNode(event, "", query))
        event.session.send(reply)
        return True
