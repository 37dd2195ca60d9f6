"""Rosters (RFC 6121 §2): get with versioning, set, remove, and pushes to interested resources.

``load()`` returns the API (``RosterApi``) other modules use to read and change rosters: every
change goes through one atomic read-modify-write and is pushed to the user's resources that
requested the roster. The subscription state machine itself is mod_presence's.

Limits (Prosody has none): a roster set with more than ``roster_max_groups`` groups or a group
name over ``roster_max_group_length`` characters gets ``not-acceptable`` (RFC 6121 §2.3.3's
condition for server-configured limits); a change the user makes that would add an item
beyond ``roster_max_items`` (a roster set, or a subscription presence, mod_presence's) gets
``resource-constraint``, as a session beyond ``max_resources`` does. Items the server adds on
the user's behalf (invites) are not refused.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from minixmpp.config import NonNegativeInt, PositiveInt
from minixmpp.errors import StanzaError
from minixmpp.events import (
    CONFIG_RELOADED,
    STREAM_FEATURES,
    ConfigReloaded,
    StanzaEvent,
    StreamFeatures,
)
from minixmpp.jid import JID, InvalidJID
from minixmpp.module import Module
from minixmpp.roster import (
    NS_ROSTER,
    ROSTER_ITEM_REMOVED,
    RosterFull,
    RosterItem,
    RosterItemRemoved,
)
from minixmpp.session import Session
from minixmpp.xml import stanza as st

NS_ROSTERVER = "urn:xmpp:features:rosterver"
INTERESTED = "roster.interested"  # session.data: this resource requested the roster
ITEM = f"{{{NS_ROSTER}}}item"
GROUP = f"{{{NS_ROSTER}}}group"
MAX_NAME = 1023  # characters in an item's name (RFC 6121 §2.3.3 not-acceptable)

Change = Callable[[RosterItem | None], RosterItem | None]


class Updated(NamedTuple):
    """The result of a roster change: the item before and after (None: absent), and the new
    roster version (None when nothing changed)."""

    old: RosterItem | None
    new: RosterItem | None
    version: int | None


@dataclass
class Options:
    roster_max_items: NonNegativeInt = 1000  # items a user may add (invites may add more)
    roster_max_groups: NonNegativeInt = 16  # groups per item
    roster_max_group_length: PositiveInt = 255  # characters in a group name


class RosterApi:
    """Rosters of one host, with pushes."""

    def __init__(self, module: Module, max_items: int) -> None:
        self._module = module
        self._store = module.rosters
        self.host = module.host
        self.max_items = max_items

    async def items(self, username: str) -> dict[str, RosterItem]:
        return await self._store.items(self.host, username)

    async def item(self, username: str, contact: str) -> RosterItem | None:
        return await self._store.item(self.host, username, contact)

    async def version(self, username: str) -> int:
        return await self._store.version(self.host, username)

    async def update(
        self,
        username: str,
        contact: str,
        change: Change,
        *,
        push: bool = True,
        by_user: bool = False,
    ) -> Updated:
        """Change one item atomically and (unless ``push`` is false) push the result. A change
        ``by_user`` (a roster set, a subscription the user sends) that would add an item beyond
        ``roster_max_items`` raises StanzaError, changing nothing."""
        limit = self.max_items if by_user else None
        try:
            old, new, version = await self._store.update(
                self.host, username, contact, change, limit
            )
        except RosterFull:
            raise self.full() from None
        updated = Updated(old, new, version)
        if push:
            self.push(username, updated)
        return updated

    async def check_room(self, username: str, contact: str) -> None:
        """Raise the StanzaError of a full roster if ``contact`` is not on it and no item can
        be added (for a change that must not start unless it can finish)."""
        items = await self._store.items(self.host, username)
        if contact not in items and len(items) >= self.max_items:
            raise self.full()

    def full(self) -> StanzaError:
        return StanzaError(
            "resource-constraint", f"Roster limit reached; only {self.max_items} items allowed"
        )

    async def approving(self, contact: str) -> list[str]:
        """The users who have pre-approved ``contact``'s subscription request."""
        return await self._store.approving(self.host, contact)

    def interested(self, username: str) -> list[Session]:
        """The user's resources that requested the roster (RFC 6121 §2.1.6)."""
        return [s for s in self._module.sessions_of(username) if s.data.get(INTERESTED)]

    def push(self, username: str, updated: Updated) -> None:
        """Send the roster push of a change, if it changed anything, to interested resources."""
        if updated.version is None:
            return
        item = updated.new or updated.old
        assert item is not None
        for session in self.interested(username):
            iq = st.iq("set", secrets.token_urlsafe(9))
            query = st.sub(iq, f"{{{NS_ROSTER}}}query", {"ver": str(updated.version)})
            query.append(item.element(removed=updated.new is None))
            session.send(iq)

    # pending-in subscription requests (stored whole)

    async def add_pending(
        self, username: str, contact: str, stanza: bytes, limit: int | None = None
    ) -> bool:
        return await self._store.add_pending(self.host, username, contact, stanza, limit)

    async def remove_pending(self, username: str, contact: str) -> bool:
        return await self._store.remove_pending(self.host, username, contact)

    async def is_pending(self, username: str, contact: str) -> bool:
        return await self._store.is_pending(self.host, username, contact)

    async def pending(self, username: str) -> list[tuple[str, bytes]]:
        return await self._store.pending(self.host, username)


def load(module: Module) -> RosterApi:
    opts = module.options(Options)
    api = RosterApi(module, opts.roster_max_items)

    @module.hook(CONFIG_RELOADED)
    async def reloaded(_event: ConfigReloaded) -> None:
        nonlocal opts
        opts = module.options(Options)
        api.max_items = opts.roster_max_items

    module.add_feature(NS_ROSTER)  # as Prosody's mod_roster announces it, on the host
    module.add_account_feature(NS_ROSTER)  # and on the account its IQs are addressed to

    @module.hook(STREAM_FEATURES)
    async def features(event: StreamFeatures) -> None:
        if event.session.authenticated:
            st.sub(event.features, f"{{{NS_ROSTERVER}}}ver")

    @module.hook(f"iq-get/self/{NS_ROSTER}:query")
    async def get(event: StanzaEvent) -> bool:
        session, stanza = event.session, event.stanza
        assert session.username is not None
        session.data[INTERESTED] = True
        version = await api.version(session.username)
        if stanza[0].get("ver") == str(version):
            session.send(st.reply(stanza))  # unchanged: pushes will tell (RFC 6121 §2.6.3)
            return True
        items = await api.items(session.username)
        reply = st.reply(stanza)
        query = st.sub(reply, f"{{{NS_ROSTER}}}query", {"ver": str(version)})
        for item in items.values():
            query.append(item.element())
        session.send(reply)
        return True

    @module.hook(f"iq-set/self/{NS_ROSTER}:query")
    async def set_(event: StanzaEvent) -> bool:
        session, stanza = event.session, event.stanza
        username = session.username
        assert username is not None
        items = stanza[0].findall(ITEM)
        if len(items) != 1 or len(stanza[0]) != 1:
            raise StanzaError("bad-request", "Exactly one roster item is expected")
        element = items[0]
        try:
            contact = JID.parse(element.get("jid", ""))
        except InvalidJID:
            raise StanzaError("bad-request", "Invalid JID") from None
        if contact.resource is not None:
            raise StanzaError("bad-request", "Roster items are bare JIDs")
        if contact.bare == session.jid.bare:
            raise StanzaError("not-allowed", "You cannot add yourself to your roster")
        if element.get("subscription") == "remove":
            updated = await remove(username, contact.bare)
        else:
            name = element.get("name") or None
            groups = [g.text or "" for g in element.findall(GROUP)]
            check_item(name, groups)

            def edit(item: RosterItem | None) -> RosterItem:
                # Only name and groups come from the client; subscription state is ours.
                return (item or RosterItem(contact.bare)).with_(name=name, groups=tuple(groups))

            updated = await api.update(username, contact.bare, edit, push=False, by_user=True)
        session.send(st.reply(stanza))  # the result first, then the push (as Prosody)
        api.push(username, updated)
        return True

    def check_item(name: str | None, groups: list[str]) -> None:
        if len(groups) > opts.roster_max_groups:
            raise StanzaError(
                "not-acceptable", f"Items are limited to {opts.roster_max_groups} groups"
            )
        if any(not g for g in groups):
            raise StanzaError("not-acceptable", "Empty group names are not allowed")
        if name is not None and len(name) > MAX_NAME:
            raise StanzaError("not-acceptable", f"Names are limited to {MAX_NAME} characters")
        limit = opts.roster_max_group_length
        if any(len(g) > limit for g in groups):
            raise StanzaError("not-acceptable", f"Group names are limited to {limit} characters")
        if len(set(groups)) != len(groups):
            raise StanzaError("bad-request", "Duplicate group names")

    async def remove(username: str, contact: str) -> Updated:
        """RFC 6121 §2.5.2: drop the item; mod_presence cancels the subscriptions both ways."""
        updated = await api.update(username, contact, lambda _item: None, push=False)
        if updated.old is None:
            raise StanzaError("item-not-found")
        pending = await api.remove_pending(username, contact)
        await module.fire(ROSTER_ITEM_REMOVED, RosterItemRemoved(username, updated.old, pending))
        return updated

    return api
