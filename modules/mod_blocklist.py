"""Blocking Command (XEP-0191, ``urn:xmpp:blocking``), as Prosody's mod_blocklist.

A user lists, blocks and unblocks JIDs (or all of them); every resource of theirs that asked
for the list gets a push of each change. A JID matches a blocked item by its full JID, its
bare JID or its domain (Prosody's rule). From a blocked JID: presence is dropped silently;
``chat`` and ``normal`` messages and IQ get/set are answered ``service-unavailable`` (the user
looks offline, XEP-0191 §3.3), other messages and IQ results and errors are dropped. To a
blocked JID, what the user's client sends is refused with ``cancel/not-acceptable`` and
``<blocked xmlns='urn:xmpp:blocking:errors'/>`` ("You have blocked this JID"), except errors
and IQ results, which are dropped, and subscription presence to a bare JID, which mod_presence
handles first (Prosody's priorities). Presence the server sends on the user's behalf
(broadcasts, probes and their answers) does not reach a blocked JID either.

Blocking a contact subscribed to the user's presence sends it ``unavailable`` from each
available resource; blocking a contact whose subscription request waits drops the request;
unblocking a subscribed contact sends it the user's presence (by a probe on its behalf, as
Prosody). Where this differs from Prosody 0.12: a message to a blocked user's online full JID
is answered like any other (Prosody drops it); "unblock all" sends presence too (Prosody only
for the JIDs an unblock names); what the server broadcasts for a user to a contact the user
blocked is dropped, not answered with errors to the user; a list holds at most
``blocklist_max_items`` JIDs (``wait/resource-constraint`` beyond).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from lxml import etree

from minixmpp.config import PositiveInt
from minixmpp.errors import StanzaError
from minixmpp.events import USER_DELETED, StanzaEvent, UserEvent
from minixmpp.jid import JID, InvalidJID
from minixmpp.module import Module
from minixmpp.xml import stanza as st

NS = "urn:xmpp:blocking"
NS_ERRORS = "urn:xmpp:blocking:errors"
INTERESTED = "blocklist.interested"  # session.data: this resource asked for the list
PRIO_IN = PRIO_OUT = 100  # Prosody's: before delivery, archiving and carbons


@dataclass
class Options:
    blocklist_cache_size: PositiveInt = 1024  # users whose lists are kept in memory
    blocklist_max_items: PositiveInt = 1000  # blocked JIDs per account


def blocked_error() -> StanzaError:
    return StanzaError(
        "not-acceptable",
        "You have blocked this JID",
        "cancel",
        app=st.element(f"{{{NS_ERRORS}}}blocked"),
    )


def matches(blocked: frozenset[str], jid: JID) -> bool:
    """Whether ``jid`` is covered by a list: its full JID, bare JID or domain is on it."""
    return jid.full in blocked or jid.bare in blocked or jid.domain in blocked


def load(module: Module) -> None:
    opts = module.options(Options)
    module.add_feature(NS)
    store = module.open_store("blocklist", "keyval")  # Prosody's store name
    host = module.host
    cache: OrderedDict[str, frozenset[str]] = OrderedDict()
    module.forget_on_reset(cache)

    async def blocklist(username: str) -> frozenset[str]:
        items = cache.get(username)
        if items is not None:
            cache.move_to_end(username)
            return items
        data = await store.get(username)
        items = frozenset(data["items"]) if isinstance(data, dict) else frozenset()
        remember(username, items)
        return items

    def remember(username: str, items: frozenset[str]) -> None:
        cache[username] = items
        cache.move_to_end(username)
        while len(cache) > opts.blocklist_cache_size:
            cache.popitem(last=False)

    async def is_blocked(username: str, jid_text: str | None) -> bool:
        if not jid_text:
            return False
        try:
            jid = JID.parse(jid_text)
        except InvalidJID:
            return False
        blocked = await blocklist(username)
        return bool(blocked) and matches(blocked, jid)

    # -- the protocol ------------------------------------------------------------------

    @module.hook(f"iq-get/self/{NS}:blocklist", priority=-1)
    async def get(event: StanzaEvent) -> bool:
        session = event.session
        assert session.username is not None
        reply = st.reply(event.stanza)
        listing = st.sub(reply, f"{{{NS}}}blocklist")
        for jid in sorted(await blocklist(session.username)):
            st.sub(listing, f"{{{NS}}}item", {"jid": jid})
        session.data[INTERESTED] = True
        session.send(reply)
        return True

    async def edit(event: StanzaEvent) -> bool:
        session, stanza = event.session, event.stanza
        username = session.username
        assert username is not None
        action = stanza[0]
        blocking = etree.QName(action).localname == "block"
        named: list[str] = []
        for item in action.iterchildren(f"{{{NS}}}item"):
            try:
                jid = JID.parse(item.get("jid", ""))
            except InvalidJID:
                raise StanzaError("jid-malformed") from None
            if jid.full not in named:
                named.append(jid.full)
        if blocking and not named:
            raise StanzaError("bad-request", "A block needs at least one item")
        before = await blocklist(username)
        if blocking:
            after = before | set(named)
            if len(after) > opts.blocklist_max_items:
                raise StanzaError(
                    "resource-constraint",
                    f"Blocklists are limited to {opts.blocklist_max_items} items",
                )
        elif named:
            after = before - set(named)
        else:
            after = frozenset()
        if after != before:
            now = module.clock.time()
            await store.set(username, {"items": sorted(after), "modified": now})
            remember(username, after)
        if blocking:
            await blocked_now(username, [j for j in named if j not in before])
        else:
            await unblocked_now(username, named if named else sorted(before))
        session.send(st.reply(stanza))  # once that is done: a client may go on at once
        push = st.iq("set", "blocklist-push")
        action_copy = st.sub(push, action.tag)
        for blocked in named:
            st.sub(action_copy, f"{{{NS}}}item", {"jid": blocked})
        for other in module.sessions_of(username):
            if other.data.get(INTERESTED):
                push.set("to", other.jid.full)
                other.send(push)
        return True

    module.hook(f"iq-set/self/{NS}:block", priority=-1)(edit)
    module.hook(f"iq-set/self/{NS}:unblock", priority=-1)(edit)

    async def blocked_now(username: str, jids: list[str]) -> None:
        """XEP-0191 §3.3: a subscribed contact sees the user go offline; a request from a
        contact now blocked is dropped (it could not be answered any more)."""
        for jid in jids:
            item = await module.rosters.item(host, username, jid)
            if item is not None and item.from_:
                for session in module.sessions_of(username):
                    if session.presence is not None:
                        await module.send(
                            st.presence(type="unavailable", from_=session.jid.full, to=jid)
                        )
            elif await module.rosters.is_pending(host, username, jid):
                await module.rosters.remove_pending(host, username, jid)

    async def unblocked_now(username: str, jids: list[str]) -> None:
        """§3.4: a subscribed contact gets the user's presence again (a probe on its behalf,
        which mod_presence answers from every available resource)."""
        for jid in jids:
            item = await module.rosters.item(host, username, jid)
            if item is not None and item.from_:
                await module.send(st.presence(type="probe", from_=jid, to=f"{username}@{host}"))

    @module.hook(USER_DELETED)
    async def forget(event: UserEvent) -> None:
        cache.pop(event.username, None)

    # -- stanzas from a blocked JID (to a local account) -------------------------------

    async def from_blocked(event: StanzaEvent) -> bool:
        to = event.to
        return (
            to is not None
            and to.node is not None
            and await is_blocked(to.node, event.stanza.get("from"))
        )

    async def presence_in(event: StanzaEvent) -> bool | None:
        if await from_blocked(event):
            return True  # dropped, no answer (§3.3)
        # presence the server sends for a local user who blocked the recipient
        if event.session.c2s or event.stanza.get("type") == "unavailable" or event.to is None:
            return None
        try:
            sender = JID.parse(event.stanza.get("from", ""))
        except InvalidJID:
            return None
        if sender.node is not None and sender.domain == host:
            return True if await is_blocked(sender.node, event.to.full) else None
        return None

    async def message_in(event: StanzaEvent) -> bool | None:
        if not await from_blocked(event):
            return None
        if (event.stanza.get("type") or "normal") in ("chat", "normal"):
            raise StanzaError("service-unavailable")
        return True  # headlines, groupchat, errors: dropped

    async def iq_in(event: StanzaEvent) -> bool | None:
        if not await from_blocked(event):
            return None
        if event.stanza.get("type") in ("get", "set"):
            raise StanzaError("service-unavailable")
        return True

    for kind in ("bare", "full"):
        module.hook(f"presence/{kind}", priority=PRIO_IN)(presence_in)
        module.hook(f"message/{kind}", priority=PRIO_IN)(message_in)
        module.hook(f"iq/{kind}", priority=PRIO_IN)(iq_in)

    # -- stanzas to a blocked JID (from the user's client) -----------------------------

    async def outgoing(event: StanzaEvent) -> bool | None:
        session, stanza = event.session, event.stanza
        if not session.c2s or session.username is None or event.to is None:
            return None  # no 'to' (or one's own bare JID): one's own account
        if not await is_blocked(session.username, event.to.full):
            return None
        kind = stanza.get("type")
        if kind == "error" or (stanza.tag == "iq" and kind == "result"):
            return True
        raise blocked_error()

    for kind in ("bare", "full", "host"):
        module.hook(f"pre-message/{kind}", priority=PRIO_OUT)(outgoing)
        module.hook(f"pre-iq/{kind}", priority=PRIO_OUT)(outgoing)
    module.hook("pre-presence/full", priority=PRIO_OUT)(outgoing)
    module.hook("pre-presence/bare", priority=-1)(outgoing)  # after mod_presence
    module.hook("pre-presence/host", priority=-1)(outgoing)
