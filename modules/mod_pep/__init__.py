"""Personal Eventing Protocol (XEP-0163), Prosody's mod_pep: every account is a pubsub service
(XEP-0060) at its bare JID, for the things clients publish about their user: OMEMO keys
(``eu.siacs.conversations.axolotl.*``, ``urn:xmpp:omemo:2:*``, published with
``publish-options`` ``access_model=open``), avatars (XEP-0084), nickname (XEP-0172),
bookmarks (XEP-0402, ``whitelist`` with ``max_items=max``), and any other node.

Notifications go to explicit subscribers and, as "filtered notifications", to the resources
whose presence reached the account with caps (XEP-0115) naming the node with ``+notify``: the
owner's own, and its contacts'. A caps hash the server has not seen is resolved by asking that
client (disco#info) and cached (_caps.py). A resource that becomes interested in a node gets
its last item at once (``send_last_published_item`` on_sub_and_presence): at its initial
presence, at its caps' answer, when the account approves its user's subscription, and when it
probes an account it is subscribed to. Disco of an account lists the ``pubsub/pep`` identity,
PEP's features, and the nodes the asker may read.

Other modules keep in step through the API ``load`` returns (``service``, ``publish``,
``retract``) and ``pep-node-changed`` (``minixmpp.pubsub.node.PEP_NODE_CHANGED``), fired after
each change of a node's items: mod_bookmarks keeps XEP-0048 bookmarks in step through them.

Files: _service.py (the service and its cache), _recipients.py (+notify), _caps.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lxml import etree

from minixmpp.config import PositiveInt
from minixmpp.events import (
    ACCOUNT_DISCO_INFO_NODE,
    ACCOUNT_DISCO_ITEMS,
    ACCOUNT_DISCO_ITEMS_NODE,
    RESOURCE_UNBIND,
    USER_DELETED,
    DiscoNode,
    ResourceUnbind,
    StanzaEvent,
    UserEvent,
)
from minixmpp.jid import JID, InvalidJID
from minixmpp.module import Module
from minixmpp.pubsub import disco, protocol
from minixmpp.pubsub.errors import pubsub_error
from minixmpp.pubsub.items import Limits
from minixmpp.pubsub.node import bare
from minixmpp.xml import stanza as st

from ._caps import NS_INFO, CapsCache, Nodes, caps_of, notify_nodes, verify
from ._recipients import Recipients
from ._service import NODE_DEFAULTS, PepService, Services

PEP_FEATURES = (
    "auto-subscribe",
    "filtered-notifications",
    "last-published",
    "presence-notifications",
    "presence-subscribe",
)
NOTHING: Nodes = frozenset()


@dataclass
class Options:
    pep_max_items: PositiveInt = 256  # items per node; what max_items "max" means
    pep_service_cache_size: PositiveInt = 1000  # accounts whose nodes stay in memory
    pep_info_cache_size: PositiveInt = 10000  # caps hashes and accounts' +notify resources
    pep_max_nodes: PositiveInt = 256  # per account
    pep_max_item_size: PositiveInt = 256 * 1024  # bytes of one item's payload
    pep_max_bytes: PositiveInt = 10 * 1024 * 1024  # bytes of all of an account's items
    pep_max_subscriptions: PositiveInt = 1000  # per node


class Pep:
    """What mod_pep offers (``module.depends("pep")``) and what its hooks use."""

    def __init__(self, module: Module, opts: Options) -> None:
        self.module = module
        self.hosts: dict[str, Pep] = module.shared("hosts", dict)  # every host's mod_pep
        self.hosts[module.host] = self
        self.caps: CapsCache = module.shared("caps", lambda: CapsCache(opts.pep_info_cache_size))
        self.recipients = Recipients(opts.pep_info_cache_size, self.alive)
        limits = Limits(
            max_items=opts.pep_max_items,
            max_nodes=opts.pep_max_nodes,
            max_item_size=opts.pep_max_item_size,
            max_bytes=opts.pep_max_bytes,
            max_subscriptions=opts.pep_max_subscriptions,
        )
        self.services = Services(
            opts.pep_service_cache_size,
            lambda user: PepService(module, user, limits, self.recipients),
        )

    def session_of(self, full_jid: str) -> etree._Element | None:
        """The current presence of a resource of any host with mod_pep (None if none)."""
        domain = full_jid.partition("/")[0].rpartition("@")[2]
        pep = self.hosts.get(domain)
        session = None if pep is None else pep.module.session(full_jid)
        return None if session is None else session.presence

    def alive(self, full_jid: str) -> bool:
        domain = full_jid.partition("/")[0].rpartition("@")[2]
        pep = self.hosts.get(domain)
        return pep is None or pep.module.session(full_jid) is not None

    async def service(self, username: str) -> PepService:
        return await self.services.get(username)

    async def publish(
        self,
        username: str,
        node: str,
        item: etree._Element,
        options: Mapping[str, Any] | None = None,
    ) -> str:
        """Publish ``item`` (an ``<item/>`` in the pubsub namespace) as the account itself,
        creating the node with ``options`` (Prosody's ``service:publish`` for mod_bookmarks);
        StanzaError as for a client. The change is told with ``actor`` the account's JID."""
        service = await self.service(username)
        async with service.lock:
            return await service.publish(node, service.jid, item, options)

    async def retract(self, username: str, node: str, item_id: str, notify: bool = True) -> None:
        service = await self.service(username)
        async with service.lock:
            await service.retract(node, service.jid, item_id, notify)

    async def allowed(self, owner: str, contact: str) -> bool:
        """Prosody's subscription_presence: the owner itself, or a ``from``/``both`` contact."""
        if bare(contact) == f"{owner}@{self.module.host}":
            return True
        item = await self.module.rosters.item(self.module.host, owner, bare(contact))
        return item is not None and item.from_

    async def presence_from(self, owner: str, jid: str, presence: etree._Element) -> None:
        """``jid``'s available ``presence`` reached ``owner``: follow its caps."""
        caps = caps_of(presence)
        if caps is None:
            await self.update(owner, jid, None, NOTHING)
            return
        current = self.recipients.current(owner, jid)
        if current is not None and current[0] == caps.key:
            return
        nodes = self.caps.get(caps.key)
        if nodes is not None:
            await self.update(owner, jid, caps.key, nodes)
            return
        own = f"{owner}@{self.module.host}"
        if self.caps.asked(own, jid, caps):
            query = st.iq("get", "disco", to=jid, from_=own)
            st.sub(query, f"{{{NS_INFO}}}query", {"node": caps.node})
            await self.module.send(query)

    async def update(self, owner: str, jid: str, key: str | None, nodes: Nodes) -> None:
        """``jid`` now wants ``nodes``: the ones it did not want before send their last item
        (Prosody's update_subscriptions)."""
        current = self.recipients.current(owner, jid)
        before = NOTHING if current is None else current[1]
        if nodes:
            self.recipients.set(owner, jid, key, nodes)
        else:
            self.recipients.remove(owner, jid)
        new = nodes - before
        if not new:
            return
        service = await self.service(owner)
        for name in sorted(new):
            node = service.nodes.get(name)
            if node is None:
                continue
            if service.config_of(node)["send_last_published_item"] != "on_sub_and_presence":
                continue
            if await service.may(node, jid, "subscribe"):
                await service.send_last(node, jid)

    async def answered(self, owner: str, contact: str, stanza: etree._Element) -> bool:
        """A disco#info answer to a caps question; False if it was not one."""
        caps = self.caps.answered(f"{owner}@{self.module.host}", contact)
        if caps is None:
            return False
        query = stanza.find(f"{{{NS_INFO}}}query")
        if stanza.get("type") != "result" or query is None:
            return True
        nodes = notify_nodes(query)
        if verify(caps, query):
            self.caps.put(caps.key, nodes)
        await self.update(owner, contact, caps.key, nodes)
        return True


def load(module: Module) -> Pep:
    opts = module.options(Options)
    module.depends("disco")
    pep = Pep(module, opts)
    module.add_item("account-identity", ("pubsub", "pep", None))
    for feature in disco.features(PepService, NODE_DEFAULTS, *PEP_FEATURES):
        module.add_account_feature(feature)

    def owner_of(event: StanzaEvent) -> str | None:
        return event.session.username if event.to is None else event.to.node

    async def pubsub_iq(event: StanzaEvent) -> bool | None:
        owner = owner_of(event)
        if owner is None:
            return None
        if event.to is not None and not await module.users.exists(owner):
            raise pubsub_error("forbidden")  # Prosody's service of nobody: no one may anything
        return await protocol.handle(await pep.service(owner), event)

    for ns in (protocol.NS, protocol.NS_OWNER):
        for kind in ("get", "set"):
            module.hook(f"iq-{kind}/bare/{ns}:pubsub")(pubsub_iq)

    # -- presence: who wants which nodes ---------------------------------------------------

    @module.hook("pre-presence/bare", 100)
    async def own_presence(event: StanzaEvent) -> None:
        session = event.session
        if event.to is not None or not session.c2s or session.username is None:
            return
        kind = event.stanza.get("type")
        if kind is None:
            await pep.presence_from(session.username, session.jid.full, event.stanza)
        elif kind == "unavailable":
            await pep.update(session.username, session.jid.full, None, NOTHING)

    @module.hook("presence/bare", 10)
    async def contact_presence(event: StanzaEvent) -> None:
        if event.to is None or event.to.node is None:
            return
        owner, stanza = event.to.node, event.stanza
        try:
            sender = JID.parse(stanza.get("from", ""))
        except InvalidJID:
            return
        kind = stanza.get("type")
        if kind is None and sender.resource and await pep.allowed(owner, sender.full):
            await pep.presence_from(owner, sender.full, stanza)
        elif kind == "unavailable":
            await pep.update(owner, sender.full, None, NOTHING)
        elif kind == "unsubscribe":
            pep.recipients.remove_bare(owner, sender.bare)
        elif kind == "probe" and sender.resource:
            # a contact subscribed to the account, whose presence the account does not get
            presence = pep.session_of(sender.full)
            if presence is not None and await pep.allowed(owner, sender.full):
                await pep.presence_from(owner, sender.full, presence)
        elif kind == "subscribed" and sender.node is not None:
            # sender approved this account's subscription: its resources may hear of it now
            other = pep.hosts.get(sender.domain)
            if other is not None:
                for session in module.sessions_of(owner):
                    if session.presence is not None:
                        await other.presence_from(sender.node, session.jid.full, session.presence)

    @module.hook("iq-result/bare/disco")
    async def caps_answer(event: StanzaEvent) -> bool | None:
        owner = owner_of(event)
        sender = event.stanza.get("from")
        if owner is None or sender is None:
            return None
        return await pep.answered(owner, sender, event.stanza) or None

    @module.hook("iq-error/bare/disco")
    async def caps_error(event: StanzaEvent) -> bool | None:
        return await caps_answer(event)

    @module.hook(RESOURCE_UNBIND)
    async def gone(event: ResourceUnbind) -> None:
        if event.session.username is not None:
            pep.recipients.remove(event.session.username, event.session.jid.full)

    @module.hook(USER_DELETED)
    async def deleted(event: UserEvent) -> None:
        pep.services.forget(event.username)  # its nodes and items went with the account
        pep.recipients.forget(event.username)

    # a test harness restores the stores: what is kept in memory goes too
    module.forget_on_reset(pep.services, pep.recipients, pep.caps)

    # -- disco of accounts -----------------------------------------------------------------

    def asker(event: DiscoNode) -> str:
        return event.event.stanza.get("from") or event.event.session.jid.full

    async def service_of(event: DiscoNode) -> PepService | None:
        owner = owner_of(event.event)
        return None if owner is None else await pep.service(owner)

    @module.hook(ACCOUNT_DISCO_INFO_NODE)
    async def node_info(event: DiscoNode) -> bool | None:
        service = await service_of(event)
        if service is None:
            return None
        return await disco.node_info(service, asker(event), event.node, event.query) or None

    @module.hook(ACCOUNT_DISCO_ITEMS_NODE)
    async def node_items(event: DiscoNode) -> bool | None:
        service = await service_of(event)
        if service is None:
            return None
        return await disco.node_items(service, asker(event), event.node, event.query) or None

    @module.hook(ACCOUNT_DISCO_ITEMS)
    async def nodes(event: DiscoNode) -> None:
        service = await service_of(event)
        if service is not None:
            await disco.nodes(service, asker(event), event.query)

    return pep
