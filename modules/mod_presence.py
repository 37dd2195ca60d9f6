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
"""

from __future__ import annotations

import copy
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
from minixmpp.roster import (
    ROSTER_ITEM_REMOVED,
    RosterItem,
    RosterItemRemoved,
    with_directions,
)
from minixmpp.session import Session
from minixmpp.xml import stanza as st

NS_PREAPPROVAL = "urn:xmpp:features:pre-approval"
SUBSCRIPTION = frozenset({"subscribe", "subscribed", "unsubscribe", "unsubscribed"})
DIRECTED = "presence.directed"  # session.data: full JIDs this resource sent directed presence to
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

    @module.hook(CONFIG_RELOADED)
    async def reloaded(_event: ConfigReloaded) -> None:
        nonlocal opts
        opts = module.options(Options)

    def available(username: str) -> list[Session]:
        return [s for s in module.sessions_of(username) if s.presence is not None]

    def presence_of(session: Session, to: str) -> etree._Element:
        assert session.presence is not None
        stanza = copy.deepcopy(session.presence)  # already a standalone copy (st.keep)
        stanza.set("from", session.jid.full)
        stanza.set("to", to)
        return stanza

    async def send_presence(username: str, to: str) -> int:
        """The current presence of each available resource of ``username``, to ``to``."""
        resources = available(username)
        for session in resources:
            await module.send(presence_of(session, to))
        return len(resources)

    async def send_presence_or_unavailable(username: str, to: str) -> None:
        """As send_presence; ``unavailable`` from the account when no resource is available."""
        if not await send_presence(username, to):
            await module.send(st.presence(type="unavailable", from_=f"{username}@{host}", to=to))

    async def send_directed(session: Session, stanza: etree._Element) -> None:
        """``stanza`` to everyone ``session`` sent directed presence to (they are forgotten)."""
        for target in session.data.pop(DIRECTED, set()):
            stanza.set("to", target)
            await module.send(stanza)

    async def send_unavailable(username: str, to: str) -> None:
        for session in available(username):
            await module.send(st.presence(type="unavailable", from_=session.jid.full, to=to))

    def deliver(sessions: list[Session], stanza: etree._Element) -> None:
        for session in sessions:
            session.send(stanza)

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
            await outbound_subscription(origin.username, event.to.bare, kind, stanza)
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

    async def outbound_subscription(
        username: str, contact: str, kind: str, stanza: etree._Element
    ) -> None:
        own = f"{username}@{host}"
        stanza.set("from", own)  # subscription stanzas go from and to bare JIDs (§3.1.2)
        stanza.set("to", contact)
        if kind == "subscribe":

            def ask(item: RosterItem | None) -> RosterItem:
                item = item or RosterItem(contact)
                return item if item.to else item.with_(ask=True)

            await roster.update(username, contact, ask, by_user=True)  # full: refused here
            await module.send(stanza)
        elif kind == "unsubscribe":
            await roster.update(username, contact, with_directions(to=False, ask=False))
            await module.send(stanza)
        elif kind == "subscribed":
            await roster.check_room(username, contact)  # before the request is taken away
            if not await roster.remove_pending(username, contact):
                # No request: a pre-approval (§3.4), or already subscribed; not routed (A.2.2,
                # where Prosody routes it again and resends presence to a subscriber).

                def preapprove(item: RosterItem | None) -> RosterItem:
                    item = item or RosterItem(contact)
                    return item if item.from_ else item.with_(approved=True)

                await roster.update(username, contact, preapprove, by_user=True)
                return

            def approve(item: RosterItem | None) -> RosterItem | None:
                return with_directions(from_=True, approved=False)(item or RosterItem(contact))

            item = (await roster.update(username, contact, approve, by_user=True)).new
            if item is not None and item.from_:
                await module.send(stanza)
                await send_presence(username, contact)
                if item.to:  # now mutual: ask for their presence too (as Prosody)
                    await module.send(st.presence(type="probe", from_=own, to=contact))
        else:  # unsubscribed: deny a request, cancel a subscription or a pre-approval
            pending = await roster.remove_pending(username, contact)
            updated = await roster.update(
                username, contact, with_directions(from_=False, approved=False)
            )
            subscribed = updated.old is not None and updated.old.from_
            if subscribed:  # while they still are subscribed (§3.2.2)
                await send_unavailable(username, contact)
            if pending or subscribed:
                await module.send(stanza)

    async def broadcast(origin: Session, stanza: etree._Element) -> None:
        username = origin.username
        assert username is not None
        kind = stanza.get("type")
        initial = kind is None and origin.presence is None
        if kind is None:  # stored before anything is awaited: messages may come any moment
            kept = st.keep(stanza)  # a copy: it must not pin the stream's parser
            st.add_delay(kept, host)  # answers to probes say since when (as Prosody)
            origin.presence, origin.priority = kept, priority_of(stanza)
        else:
            origin.presence = None
        origin.send(stanza)  # the reflection, with no 'to' (Prosody)
        for session in available(username):
            if session is not origin:
                stanza.set("to", session.jid.full)
                session.send(stanza)
        items = await roster.items(username)
        for contact, item in items.items():
            if item.from_:
                stanza.set("to", contact)
                await module.send(stanza)
        if "to" in stanza.attrib:
            del stanza.attrib["to"]
        if kind == "unavailable":
            await send_directed(origin, stanza)
        elif initial:
            await initial_presence(origin, items)

    async def initial_presence(origin: Session, items: dict[str, RosterItem]) -> None:
        username = origin.username
        assert username is not None
        for contact, item in items.items():
            if item.to:
                await module.send(st.presence(type="probe", from_=origin.jid.full, to=contact))
        for session in available(username):
            if session is not origin:
                origin.send(presence_of(session, origin.jid.full))
        for contact, data in await roster.pending(username):
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
            await inbound(target.node, sender, kind, stanza)
            return True
        deliver(available(target.node), stanza)
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

    async def probed(username: str, sender: JID) -> None:
        own = f"{username}@{host}"
        if module.sessions_of(username) or sender.domain != host:
            item = await roster.item(username, sender.bare)
            subscribed = item is not None and item.from_
        else:  # nobody there to answer for: the prober's roster says (as Prosody does); it is
            # in memory, where the other may need a trip to the database at every login
            item = await roster.item(sender.node or "", own)
            subscribed = item is not None and item.to
        if not subscribed:
            await module.send(st.presence(type="unsubscribed", from_=own, to=sender.bare))
        else:
            await send_presence_or_unavailable(username, sender.full)

    async def inbound(username: str, sender: JID, kind: str, stanza: etree._Element) -> None:
        own, contact = f"{username}@{host}", sender.bare
        stanza.set("from", contact)
        stanza.set("to", own)
        if kind == "probe":
            await probed(username, sender)
            return
        if not await module.users.exists(username):
            if kind == "subscribe":
                await module.send(st.presence(type="unsubscribed", from_=own, to=contact))
            return
        item = await roster.item(username, contact)
        if kind == "subscribe":
            if item is not None and item.from_:  # already subscribed: say so again
                await module.send(st.presence(type="subscribed", from_=own, to=contact))
                await send_presence_or_unavailable(username, contact)
            elif item is not None and item.approved:  # pre-approved (§3.4)
                await roster.update(username, contact, with_directions(from_=True, approved=False))
                await module.send(st.presence(type="subscribed", from_=own, to=contact))
                await send_presence(username, contact)
            else:
                pending = await roster.is_pending(username, contact)
                if not pending:
                    await keep_request(username, contact, stanza)
                await module.send(st.presence(type="unavailable", from_=own, to=contact))
                if not pending:
                    deliver(available(username), stanza)
        elif kind == "subscribed":
            if item is not None and item.ask:
                deliver(roster.interested(username), stanza)
                await roster.update(username, contact, with_directions(to=True, ask=False))
        elif kind == "unsubscribe":
            pending = await roster.remove_pending(username, contact)
            if item is not None and item.from_:
                deliver(roster.interested(username), stanza)
                await roster.update(username, contact, with_directions(from_=False))
                await send_unavailable(username, contact)  # they no longer see us (§3.3.3)
            elif pending:
                deliver(roster.interested(username), stanza)
        elif item is not None and (item.to or item.ask):  # unsubscribed
            deliver(roster.interested(username), stanza)
            await roster.update(username, contact, with_directions(to=False, ask=False))

    async def keep_request(username: str, contact: str, stanza: etree._Element) -> None:
        """Store a subscription request, or refuse it (the error goes back to the sender)."""
        data = st.tostring(stanza)
        limit = opts.subscription_max_request_size
        if len(data) > limit:
            module.log.info("refusing a %d-byte subscription request to %s", len(data), username)
            raise StanzaError(
                "not-acceptable", f"Subscription requests are limited to {limit} bytes"
            )
        if not await roster.add_pending(username, contact, data, opts.subscription_max_pending):
            module.log.info("refusing a subscription request to %s: too many pending", username)
            raise StanzaError("resource-constraint", "Too many pending subscription requests")

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
            await send_directed(session, stanza)
            return
        await broadcast(session, stanza)

    async def cancel(username: str, item: RosterItem, pending: bool) -> None:
        """Cancel the subscriptions both ways (RFC 6121 §2.5.2, §3.2.2)."""
        own = f"{username}@{host}"
        if item.from_:
            await send_unavailable(username, item.jid)
        if item.from_ or pending:
            await module.send(st.presence(type="unsubscribed", from_=own, to=item.jid))
        if item.to or item.ask:
            await module.send(st.presence(type="unsubscribe", from_=own, to=item.jid))

    @module.hook(ROSTER_ITEM_REMOVED)
    async def removed(event: RosterItemRemoved) -> None:
        await cancel(event.username, event.item, event.pending)

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
            await cancel(event.username, item, contact in pending)
        for contact in pending - items.keys():
            await cancel(event.username, RosterItem(contact), True)
        # A pre-approval was consent for this account, not for whoever takes the name next
        own = f"{event.username}@{host}"
        for username in await roster.approving(own):
            await roster.update(username, own, lambda item: item and item.with_(approved=False))
