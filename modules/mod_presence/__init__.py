"""Presence (RFC 6121 §3 and §4): subscriptions, broadcast, probes, directed presence.

Outbound (from a user's resource): presence with no ``to`` is echoed to the sender, sent to the
user's other available resources and to every contact with a ``from``/``both`` subscription;
the first available presence also probes the contacts the user is subscribed to, shows the
user's other resources, redelivers stored subscription requests, resends pending outbound ones
and lets mod_offline deliver (``message/offline/broadcast``). The stored presence carries a
``<delay/>`` with the time it was sent, so that probe answers say how old they are. Subscription
stanzas change the user's roster (atomically, with pushes) and are routed from the bare JID.

Inbound (to a local account): subscription stanzas drive the contact side of the state machine
(Appendix A). A ``subscribe`` that is not answered at once is acknowledged with ``unavailable``,
stored whole and delivered to the available resources, now and at every later login, until
answered. What is stored is bounded (Prosody keeps any number of any size): a request over
``subscription_max_request_size`` bytes gets ``not-acceptable``, and one beyond
``subscription_max_pending`` requests from other contacts ``resource-constraint``; a refused
request is neither acknowledged, stored nor delivered. Probes from subscribers are answered
with each available resource's presence (or ``unavailable`` from the bare JID), others with
``unsubscribed``.

The order of stanzas is Prosody's; where Prosody departs from RFC 6121 we follow the RFC:
no roster push when nothing changed, a pre-approved request turns into a ``from`` subscription,
cancelling a pre-approval is not routed, ``unavailable`` precedes a routed cancellation (§3.2.2),
an inbound ``unsubscribe`` is followed by ``unavailable`` from the contact (§3.3.3), and a
request to an account that does not exist is answered with ``unsubscribed``.

Files: ``_presence.py`` (sending presence, and both sides of the subscription state machine).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

from minixmpp.config import NonNegativeInt
from minixmpp.errors import StanzaError
from minixmpp.events import (
    CONFIG_RELOADED,
    OFFLINE_BROADCAST,
    RESOURCE_UNBIND,
    STREAM_FEATURES,
    USER_DELETED,
    USER_DELETING,
    ConfigReloaded,
    ResourceUnbind,
    StanzaEvent,
    StreamFeatures,
    UserEvent,
)
from minixmpp.jid import JID, InvalidJID
from minixmpp.module import Module
from minixmpp.roster import ROSTER_ITEM_REMOVED, RosterItem, RosterItemRemoved
from minixmpp.session import Session
from minixmpp.xml import stanza as st

from ._presence import DIRECTED, LIVE_REQUESTS, Presences

NS_PREAPPROVAL = "urn:xmpp:features:pre-approval"
SUBSCRIPTION = frozenset({"subscribe", "subscribed", "unsubscribe", "unsubscribed"})
_PRIORITY = re.compile(r"[+-]?[0-9]+")


def priority_of(stanza: etree._Element) -> int:
    """The ``<priority/>`` of a presence, clamped to -128..127; 0 if absent or not a number."""
    text = st.child_text(stanza, "priority")
    if text is None or not _PRIORITY.fullmatch(text):
        return 0
    return max(-128, min(127, int(text)))


@dataclass
class Options:
    subscription_max_pending: NonNegativeInt = 100  # requests waiting for an answer, per account
    subscription_max_request_size: NonNegativeInt = 4096  # bytes of one stored request


def load(module: Module) -> None:
    opts = module.options(Options)
    roster = module.depends("roster")
    host = module.host
    p = Presences(module, roster, opts)

    @module.hook(CONFIG_RELOADED)
    async def reloaded(_event: ConfigReloaded) -> None:
        p.opts = module.options(Options)

    # -- outbound: from a local user's resource --------------------------------------------

    async def outbound(event: StanzaEvent) -> bool | None:
        origin, stanza = event.session, event.stanza
        if not origin.c2s or origin.username is None:
            return None
        kind = stanza.get("type")
        if event.to is None:  # no 'to', or the user's own bare JID
            if kind is None or kind == "unavailable":
                await broadcast(origin, stanza)
            elif kind != "error":  # no subscribing to or probing oneself
                raise StanzaError("bad-request", "Invalid presence type")
            return True
        if kind in SUBSCRIPTION:
            if event.to.bare == origin.jid.bare:  # own full JID: still oneself
                raise StanzaError("bad-request", "Invalid presence type")
            await p.outbound_subscription(origin.username, event.to.bare, kind, stanza)
            return True
        if kind in (None, "unavailable", "error"):
            item = await roster.item(origin.username, event.to.bare)
            if item is None or not item.from_:  # subscribers get broadcasts anyway
                directed = origin.data.setdefault(DIRECTED, set())
                if kind is None:
                    directed.add(event.to.full)
                else:
                    directed.discard(event.to.full)
        return None  # directed presence, probes, errors: routed as addressed

    for kind in ("bare", "full", "host"):
        module.hook(f"pre-presence/{kind}")(outbound)

    async def broadcast(origin: Session, stanza: etree._Element) -> None:
        username = origin.username
        assert username is not None
        kind = stanza.get("type")
        initial = kind is None and origin.presence is None
        if kind is None:  # stored before anything is awaited: messages may come any moment
            kept = st.keep(stanza)  # a copy: it must not pin the stream's parser
            # answers to probes say since when (as Prosody)
            st.add_delay(kept, host, module.clock.stamp())
            origin.presence, origin.priority = kept, priority_of(stanza)
        else:
            origin.presence = None
        if not initial:
            await send_out(origin, stanza, kind)
            return
        origin.data[LIVE_REQUESTS] = set()
        try:
            items = await send_out(origin, stanza, kind)
            await initial_presence(origin, items)
        finally:
            origin.data.pop(LIVE_REQUESTS, None)

    async def send_out(
        origin: Session, stanza: etree._Element, kind: str | None
    ) -> dict[str, RosterItem]:
        """A user's broadcast presence to their resources and subscribers; the roster read."""
        username = origin.username
        assert username is not None
        origin.send(stanza)  # the reflection, with no 'to' (Prosody)
        for session in p.available(username):
            if session is not origin:
                stanza.set("to", session.jid.full)
                session.send(stanza)
        items: dict[str, RosterItem] = await roster.items(username)
        for contact, item in items.items():
            if item.from_:
                stanza.set("to", contact)
                await module.send(stanza)
        if "to" in stanza.attrib:
            del stanza.attrib["to"]
        if kind == "unavailable":
            await p.send_directed(origin, stanza)
        return items

    async def initial_presence(origin: Session, items: dict[str, RosterItem]) -> None:
        username = origin.username
        assert username is not None
        for contact, item in items.items():
            if item.to:
                await module.send(st.presence(type="probe", from_=origin.jid.full, to=contact))
        for session in p.available(username):
            if session is not origin:
                origin.send(p.presence_of(session, origin.jid.full))
        live: set[str] = origin.data.get(LIVE_REQUESTS, set())
        for contact, data in await roster.pending(username):
            if contact in live:
                continue  # routed to this resource while it became available
            request = st.from_stored(data)
            if request is None:  # undeliverable: dropped, the others still go out
                module.log.warning("dropping an unreadable subscription request to %s", username)
                await roster.remove_pending(username, contact)
            else:
                origin.send(request)
        own = f"{username}@{host}"
        for contact, item in items.items():
            if item.ask:
                await module.send(st.presence(type="subscribe", from_=own, to=contact))
        if origin.priority >= 0:
            await module.fire(OFFLINE_BROADCAST, StanzaEvent(origin, st.presence()))

    # -- inbound: to a local account ---------------------------------------------------------

    @module.hook("presence/bare")
    async def to_bare(event: StanzaEvent) -> bool:
        stanza, target = event.stanza, event.to
        if target is None:
            return True  # the user's own presence: handled outbound
        assert target.node is not None
        kind = stanza.get("type")
        if kind in SUBSCRIPTION or kind == "probe":
            try:
                sender = JID.parse(stanza.get("from", ""))
            except InvalidJID:
                return True
            await p.inbound(target.node, sender, kind, stanza)
            return True
        p.deliver(p.available(target.node), stanza)
        return True

    @module.hook("presence/full")
    async def to_full(event: StanzaEvent) -> bool:
        assert event.to is not None
        if event.stanza.get("type") in SUBSCRIPTION or event.stanza.get("type") == "probe":
            event.to = event.to.bare_jid  # subscriptions are about accounts (§3)
            return await to_bare(event)
        session = module.session(event.to.full)
        if session is not None:
            session.send(event.stanza)
        return True  # presence to a resource that is not there is dropped

    @module.hook("presence/host")
    async def to_host(event: StanzaEvent) -> bool:
        """The server itself has presence: it answers probes and approves subscriptions."""
        kind = event.stanza.get("type")
        try:
            sender = JID.parse(event.stanza.get("from", ""))
        except InvalidJID:
            return True
        reply = {"from_": host, "to": sender.bare, "id": event.stanza.get("id")}
        if kind == "probe":
            await module.send(st.presence(**reply))
        elif kind == "subscribe":
            await module.send(st.presence(type="subscribed", **reply))
            await module.send(st.presence(**reply))
        return True

    # -- sessions and accounts ---------------------------------------------------------------

    @module.hook(STREAM_FEATURES)
    async def features(event: StreamFeatures) -> None:
        if event.session.authenticated:
            st.sub(event.features, f"{{{NS_PREAPPROVAL}}}sub")

    @module.hook(RESOURCE_UNBIND)
    async def gone(event: ResourceUnbind) -> None:
        session = event.session
        if session.presence is None and not session.data.get(DIRECTED):
            return
        stanza = st.presence(type="unavailable", from_=session.jid.full)
        if event.error:  # not a clean close: say why, as Prosody does
            st.sub(stanza, "status", text=f"Disconnected: {event.error}")
        if session.presence is None:  # only directed presence was sent
            await p.send_directed(session, stanza)
            return
        await broadcast(session, stanza)

    @module.hook(ROSTER_ITEM_REMOVED)
    async def removed(event: RosterItemRemoved) -> None:
        await p.cancel(event.username, event.item, event.pending)

    @module.hook(USER_DELETING)
    async def remember(event: UserEvent) -> None:
        event.extra["roster"] = await roster.items(event.username)
        event.extra["pending"] = {c for c, _ in await roster.pending(event.username)}

    @module.hook(USER_DELETED)
    async def tell_contacts(event: UserEvent) -> None:
        """The account is gone (its sessions close after this): cancel every subscription."""
        items: dict[str, RosterItem] = event.extra.get("roster", {})
        pending: set[str] = event.extra.get("pending", set())
        for contact, item in items.items():
            await p.cancel(event.username, item, contact in pending)
        for contact in pending - items.keys():
            await p.cancel(event.username, RosterItem(contact), True)
        # A pre-approval was consent for this account, not for whoever takes the name next
        own = f"{event.username}@{host}"
        for username in await roster.approving(own):
            await roster.update(username, own, lambda item: item and item.with_(approved=False))
