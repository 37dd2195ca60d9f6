"""What presence handling shares: who is available, sending presence, and the subscription
state machine of RFC 6121 (Appendix A), both sides of it."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from lxml import etree

from minixmpp.errors import StanzaError
from minixmpp.jid import JID
from minixmpp.module import Module
from minixmpp.roster import (
    SUBSCRIPTION_APPROVED,
    RosterItem,
    SubscriptionApproved,
    with_directions,
)
from minixmpp.session import Session
from minixmpp.xml import stanza as st

if TYPE_CHECKING:
    from . import Options

DIRECTED = "presence.directed"  # session.data: full JIDs this resource sent directed presence to
# session.data, while a resource's initial presence is handled (it is available, its stored
# requests not yet sent): the contacts whose subscription requests reached it live meanwhile,
# which are then not sent again among the stored ones
LIVE_REQUESTS = "presence.live_requests"


class Presences:
    """One host's presence: its module, its users' rosters (mod_roster's API) and options."""

    def __init__(self, module: Module, roster: Any, opts: Options) -> None:
        self.module, self.roster, self.opts, self.host = module, roster, opts, module.host

    def available(self, username: str) -> list[Session]:
        return [s for s in self.module.sessions_of(username) if s.presence is not None]

    @staticmethod
    def presence_of(session: Session, to: str) -> etree._Element:
        assert session.presence is not None
        stanza = copy.deepcopy(session.presence)  # already a standalone copy (st.keep)
        stanza.set("from", session.jid.full)
        stanza.set("to", to)
        return stanza

    async def send_presence(self, username: str, to: str) -> int:
        """The current presence of each available resource of ``username``, to ``to``."""
        resources = self.available(username)
        for session in resources:
            await self.module.send(self.presence_of(session, to))
        return len(resources)

    async def send_presence_or_unavailable(self, username: str, to: str) -> None:
        """As send_presence; ``unavailable`` from the account when no resource is available."""
        if not await self.send_presence(username, to):
            own = f"{username}@{self.host}"
            await self.module.send(st.presence(type="unavailable", from_=own, to=to))

    async def send_directed(self, session: Session, stanza: etree._Element) -> None:
        """``stanza`` to everyone ``session`` sent directed presence to (they are forgotten)."""
        for target in session.data.pop(DIRECTED, set()):
            stanza.set("to", target)
            await self.module.send(stanza)

    async def send_unavailable(self, username: str, to: str) -> None:
        for session in self.available(username):
            await self.module.send(st.presence(type="unavailable", from_=session.jid.full, to=to))

    @staticmethod
    def deliver(sessions: list[Session], stanza: etree._Element) -> None:
        for session in sessions:
            session.send(stanza)

    # -- the user's side: subscription stanzas a user sends --------------------------------

    async def outbound_subscription(
        self, username: str, contact: str, kind: str, stanza: etree._Element
    ) -> None:
        roster, send = self.roster, self.module.send
        own = f"{username}@{self.host}"
        stanza.set("from", own)  # subscription stanzas go from and to bare JIDs (§3.1.2)
        stanza.set("to", contact)
        if kind == "subscribe":

            def ask(item: RosterItem | None) -> RosterItem:
                item = item or RosterItem(contact)
                return item if item.to else item.with_(ask=True)

            await roster.update(username, contact, ask, by_user=True)  # full: refused here
            await send(stanza)
        elif kind == "unsubscribe":
            await roster.update(username, contact, with_directions(to=False, ask=False))
            await send(stanza)
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
                await self.module.fire(
                    SUBSCRIPTION_APPROVED, SubscriptionApproved(username, contact)
                )
                await send(stanza)
                await self.send_presence(username, contact)
                if item.to:  # now mutual: ask for their presence too (as Prosody)
                    await send(st.presence(type="probe", from_=own, to=contact))
        else:  # unsubscribed: deny a request, cancel a subscription or a pre-approval
            pending = await roster.remove_pending(username, contact)
            updated = await roster.update(
                username, contact, with_directions(from_=False, approved=False)
            )
            subscribed = updated.old is not None and updated.old.from_
            if subscribed:  # while they still are subscribed (§3.2.2)
                await self.send_unavailable(username, contact)
            if pending or subscribed:
                await send(stanza)

    async def cancel(self, username: str, item: RosterItem, pending: bool) -> None:
        """Cancel the subscriptions both ways (RFC 6121 §2.5.2, §3.2.2)."""
        own = f"{username}@{self.host}"
        if item.from_:
            await self.send_unavailable(username, item.jid)
        if item.from_ or pending:
            await self.module.send(st.presence(type="unsubscribed", from_=own, to=item.jid))
        if item.to or item.ask:
            await self.module.send(st.presence(type="unsubscribe", from_=own, to=item.jid))

    # -- the contact's side: subscription stanzas and probes to a local account -----------

    async def inbound(self, username: str, sender: JID, kind: str, stanza: etree._Element) -> None:
        roster, send, deliver = self.roster, self.module.send, self.deliver
        own, contact = f"{username}@{self.host}", sender.bare
        stanza.set("from", contact)
        stanza.set("to", own)
        if kind == "probe":
            await self.probed(username, sender)
            return
        if not await self.module.users.exists(username):
            if kind == "subscribe":
                await send(st.presence(type="unsubscribed", from_=own, to=contact))
            return
        item = await roster.item(username, contact)
        if kind == "subscribe":
            if item is not None and item.from_:  # already subscribed: say so again
                await send(st.presence(type="subscribed", from_=own, to=contact))
                await self.send_presence_or_unavailable(username, contact)
            elif item is not None and item.approved:  # pre-approved (§3.4)
                await roster.update(username, contact, with_directions(from_=True, approved=False))
                await send(st.presence(type="subscribed", from_=own, to=contact))
                await self.send_presence(username, contact)
            else:
                pending = await roster.is_pending(username, contact)
                if not pending:
                    await self.keep_request(username, contact, stanza)
                await send(st.presence(type="unavailable", from_=own, to=contact))
                if not pending:
                    for session in self.available(username):
                        session.send(stanza)
                        if LIVE_REQUESTS in session.data:
                            session.data[LIVE_REQUESTS].add(contact)
        elif kind == "subscribed":
            if item is not None and item.ask:
                deliver(roster.interested(username), stanza)
                await roster.update(username, contact, with_directions(to=True, ask=False))
        elif kind == "unsubscribe":
            pending = await roster.remove_pending(username, contact)
            if item is not None and item.from_:
                deliver(roster.interested(username), stanza)
                await roster.update(username, contact, with_directions(from_=False))
                await self.send_unavailable(username, contact)  # they no longer see us (§3.3.3)
            elif pending:
                deliver(roster.interested(username), stanza)
        elif item is not None and (item.to or item.ask):  # unsubscribed
            deliver(roster.interested(username), stanza)
            await roster.update(username, contact, with_directions(to=False, ask=False))

    async def probed(self, username: str, sender: JID) -> None:
        own = f"{username}@{self.host}"
        if self.module.sessions_of(username) or sender.domain != self.host:
            item = await self.roster.item(username, sender.bare)
            subscribed = item is not None and item.from_
        else:  # nobody there to answer for: the prober's roster says (as Prosody does); it is
            # in memory, where the other may need a trip to the database at every login
            item = await self.roster.item(sender.node or "", own)
            subscribed = item is not None and item.to
        if not subscribed:
            await self.module.send(st.presence(type="unsubscribed", from_=own, to=sender.bare))
        else:
            await self.send_presence_or_unavailable(username, sender.full)

    async def keep_request(self, username: str, contact: str, stanza: etree._Element) -> None:
        """Store a subscription request, or refuse it (the error goes back to the sender)."""
        data = st.tostring(stanza)
        limit, log = self.opts.subscription_max_request_size, self.module.log
        if len(data) > limit:
            log.info("refusing a %d-byte subscription request to %s", len(data), username)
            raise StanzaError(
                "not-acceptable", f"Subscription requests are limited to {limit} bytes"
            )
        most = self.opts.subscription_max_pending
        if not await self.roster.add_pending(username, contact, data, most):
            log.info("refusing a subscription request to %s: too many pending", username)
            raise StanzaError("resource-constraint", "Too many pending subscription requests")
