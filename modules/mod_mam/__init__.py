"""Message Archive Management (XEP-0313, ``urn:xmpp:mam:2``), as Prosody 0.12's mod_mam.

Each account has an archive (the store ``archive``) of the messages it sends and receives:
``chat`` and ``normal`` messages with a body (and the other kinds Prosody keeps: subject,
receipts, markers, encryption, invitations, calls, a ``<store/>`` hint), never headlines,
groupchat messages, messages with a ``<no-store/>`` or ``<no-permanent-store/>`` hint
(XEP-0334), nor errors except bounces to one of the user's resources; chat states are left out
of the stored copy. The user's preferences (XEP-0313 §6: a default of always, never or roster,
and JIDs always or never archived) decide per contact. An archived message is stamped with a
``<stanza-id/>`` (XEP-0359) by the user's bare JID on its way on; stanza-ids that claim to be
from the user's archive are taken out of what clients send and receive. Messages to an
offline user are archived too, so a client finds them through MAM as well as offline. A client
that binds with Bind 2 (XEP-0386) finds the archive's ``<metadata/>`` in its ``<bound/>``.

Queries (``with``, ``start``, ``end``, and the extended ``before-id``, ``after-id``, ``ids``)
page with RSM (XEP-0059) and end with ``<fin/>`` (``complete='true'`` on the last page), an
unknown id is ``item-not-found``. Items older than ``archive_expires_after`` are deleted once a
day (and at start); an archive over ``storage_archive_item_limit`` items or
``archive_max_bytes`` bytes loses its oldest items. Differences from Prosody 0.12.3:
``item-not-found`` has type ``cancel`` (Prosody: ``modify``); a stanza-id claiming the user's
archive is also taken out of incoming messages (Prosody keeps it beside its own); a negative
or malformed RSM ``<max/>`` is ``bad-request``; the sender's own error replies are not kept.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from lxml import etree

from minixmpp.config import PositiveInt
from minixmpp.errors import StanzaError
from minixmpp.events import (
    BIND2_ENABLE,
    OFFLINE_BROADCAST,
    USER_DELETED,
    Bind2Request,
    StanzaEvent,
    UserEvent,
)
from minixmpp.jid import JID, InvalidJID
from minixmpp.module import Module
from minixmpp.xml import stanza as st

from ._archive import Archive, embedded, stamp
from ._query import NS_RSM, parse, query_form
from ._rules import (
    NS_MAM,
    NS_SID,
    STANZA_ID,
    Prefs,
    default_policy,
    expiry_seconds,
    should_store,
    strip_stanza_ids,
    without_namespaces,
)

NS_MAM_EXT = "urn:xmpp:mam:2#extended"
NS_FORWARD = "urn:xmpp:forward:0"
NS_DELAY = "urn:xmpp:delay"
REQUESTED = "mam.requested"  # session.data: this resource has queried its archive
CACHED_PREFS = 1024
DAY = 86400.0


@dataclass
class Options:
    archive_expires_after: str | int = "1w"  # "never", seconds, or "2d", "1w", "1m", "1y"
    default_archive_policy: bool | str = True  # true (always), false (never) or "roster"
    max_archive_query_results: PositiveInt = 50
    mam_include_total: bool | None = None  # None: true unless archive_expires_after = "never"
    dont_archive_namespaces: list[str] = field(
        default_factory=lambda: ["http://jabber.org/protocol/chatstates"]
    )
    storage_archive_item_limit: PositiveInt = 10000  # per account
    archive_max_bytes: PositiveInt = 100 * 1024 * 1024  # per account


def load(module: Module) -> Archive:
    opts = module.options(Options)
    expires = expiry_seconds(opts.archive_expires_after)
    policy = default_policy(opts.default_archive_policy)
    include_total = opts.mam_include_total if opts.mam_include_total is not None else bool(expires)
    dropped_namespaces = frozenset(opts.dont_archive_namespaces)
    host = module.host
    archive = Archive(
        module,
        module.open_store("archive", "archive"),
        opts.storage_archive_item_limit,
        opts.archive_max_bytes,
    )
    prefs_store = module.open_store("archive_prefs", "keyval")  # Prosody's store names
    prefs_cache: OrderedDict[str, Prefs] = OrderedDict()
    module.forget_on_reset(prefs_cache, archive.usage)
    for feature in (NS_MAM, NS_MAM_EXT, NS_SID):
        module.add_account_feature(feature)

    async def prefs_of(user: str) -> Prefs:
        prefs = prefs_cache.get(user)
        if prefs is None:
            prefs = Prefs.from_stored(await prefs_store.get(user), policy)
            prefs_cache[user] = prefs
            while len(prefs_cache) > CACHED_PREFS:
                prefs_cache.popitem(last=False)
        prefs_cache.move_to_end(user)
        return prefs

    async def shall_store(user: str, with_: str) -> bool:
        rule = (await prefs_of(user)).rule(with_)
        if rule == "roster":
            return await module.rosters.item(host, user, with_) is not None
        return rule == "always"

    # -- archiving -----------------------------------------------------------------------

    async def archive_message(event: StanzaEvent, outgoing: bool) -> None:
        session, stanza = event.session, event.stanza
        if outgoing:
            if not session.c2s or session.username is None:
                return
            user = session.username
            with_ = event.to.bare if event.to is not None else f"{user}@{host}"
        else:
            to = event.to
            if to is None or to.node is None or to.domain != host:
                return  # to one's own account: archived on the way out
            user = to.node
            try:
                sender = JID.parse(stanza.get("from", ""))
            except InvalidJID:
                return
            with_ = sender.bare
            if with_ == f"{user}@{host}":
                return  # the user's own, from another resource: archived on the way out
        user_bare = f"{user}@{host}"
        strip_stanza_ids(stanza, user_bare)
        should, why = should_store(stanza, outgoing)
        if not should:
            module.log.debug("not archiving a message for %s (%s)", user_bare, why)
            return
        stored = without_namespaces(stanza, dropped_namespaces)
        if stored is None:
            return
        if not outgoing and not module.sessions_of(user) and not await module.users.exists(user):
            return
        if not await shall_store(user, with_):
            return
        key = await archive.append(user, stored, with_, module.clock.time())
        st.sub(stanza, STANZA_ID, {"id": key, "by": user_bare})

    async def sent(event: StanzaEvent) -> None:
        await archive_message(event, True)

    async def received(event: StanzaEvent) -> None:
        await archive_message(event, False)

    async def strip_own(event: StanzaEvent) -> None:
        """The sender's archive id stays home: carbons had it, the recipient does not."""
        if event.session.c2s and event.session.username is not None:
            strip_stanza_ids(event.stanza, f"{event.session.username}@{host}")

    for kind in ("bare", "full"):
        module.hook(f"pre-message/{kind}")(sent)  # after mod_blocklist, before carbons
        module.hook(f"pre-message/{kind}", priority=-2)(strip_own)  # after carbons
        module.hook(f"message/{kind}", priority=2)(received)  # before carbons and delivery

    @module.hook("message/offline/handle", priority=-2)
    async def archived_is_kept(event: StanzaEvent) -> bool | None:
        """Not stored offline (no mod_offline, or full) but archived: not lost (Prosody)."""
        user = f"{event.to.node}@{host}" if event.to is not None else ""
        if any(sid.get("by") == user for sid in event.stanza.iterfind(STANZA_ID)):
            return True
        return None

    @module.hook(OFFLINE_BROADCAST, priority=1)
    async def synced_by_mam(event: StanzaEvent) -> bool | None:
        """A client that has queried its archive has what offline delivery would send."""
        return True if event.session.data.get(REQUESTED) else None

    # -- queries ----------------------------------------------------------------------------

    @module.hook(f"iq-get/self/{NS_MAM}:query")
    async def form(event: StanzaEvent) -> bool:
        reply = st.reply(event.stanza)
        st.sub(reply, f"{{{NS_MAM}}}query").append(query_form())
        event.session.send(reply)
        return True

    @module.hook(f"iq-set/self/{NS_MAM}:query")
    async def query(event: StanzaEvent) -> bool:
        session, stanza = event.session, event.stanza
        user = session.username
        assert user is not None
        session.data[REQUESTED] = True
        q = parse(stanza[0], opts.max_archive_query_results)
        store = archive.store
        for anchor in (q.before, q.after):
            if anchor is not None and not await store.count(user, ids=[anchor]):
                raise StanzaError("item-not-found", type="cancel")
        items = await store.find(
            user,
            start=q.start,
            end=q.end,
            peer=q.with_,
            ids=q.ids,
            after_id=q.after,
            before_id=q.before,
            limit=q.max + 1 if q.max else 0,
            reverse=q.reverse,
        )
        complete = len(items) <= q.max
        page = items[: q.max]
        total: int | None = None
        if include_total or not q.max:
            unfiltered = q.start is None and q.end is None and q.with_ is None and q.ids is None
            total = archive.items_held(user) if unfiltered else None
            if total is None:  # filtered, or the archive's sizes not in memory: count
                total = await store.count(user, start=q.start, end=q.end, peer=q.with_, ids=q.ids)
        for item in reversed(page) if q.flip else page:
            inner = embedded(item.value)
            if inner is None:
                module.log.warning("an archived item of %s@%s does not parse", user, host)
                continue
            message = st.message(to=session.jid.full)
            result = st.sub(message, f"{{{NS_MAM}}}result", {"queryid": q.queryid, "id": item.id})
            forwarded = st.sub(result, f"{{{NS_FORWARD}}}forwarded")
            st.sub(forwarded, f"{{{NS_DELAY}}}delay", {"stamp": stamp(item.when)})
            forwarded.append(inner)
            session.send(message)
        reply = st.reply(stanza)
        fin = st.sub(reply, f"{{{NS_MAM}}}fin", {"complete": "true" if complete else None})
        rsm = st.sub(fin, f"{{{NS_RSM}}}set")
        if page:
            first, last = (page[-1], page[0]) if q.reverse else (page[0], page[-1])
            st.sub(rsm, f"{{{NS_RSM}}}first", text=first.id)
            st.sub(rsm, f"{{{NS_RSM}}}last", text=last.id)
        if total is not None:
            st.sub(rsm, f"{{{NS_RSM}}}count", text=str(total))
        session.send(reply)
        return True

    async def metadata_of(user: str, parent: etree._Element) -> None:
        """The archive's first and last items, as ``<metadata/>`` in ``parent``."""
        meta = st.sub(parent, f"{{{NS_MAM}}}metadata")
        for name, reverse in (("start", False), ("end", True)):
            found = await archive.store.find(user, limit=1, reverse=reverse)
            for item in found:
                attrs = {"id": item.id, "timestamp": stamp(item.when)}
                st.sub(meta, f"{{{NS_MAM}}}{name}", attrs)

    @module.hook(f"iq-get/self/{NS_MAM}:metadata")
    async def metadata(event: StanzaEvent) -> bool:
        user = event.session.username
        assert user is not None
        reply = st.reply(event.stanza)
        await metadata_of(user, reply)
        event.session.send(reply)
        return True

    @module.hook(BIND2_ENABLE)
    async def metadata_at_bind(event: Bind2Request) -> None:
        """Bind 2 (XEP-0386 §3.2): the archive's state at bind time, in ``<bound/>``."""
        assert event.session.username is not None
        await metadata_of(event.session.username, event.bound)

    # -- preferences ------------------------------------------------------------------------

    @module.hook(f"iq-get/self/{NS_MAM}:prefs")
    async def get_prefs(event: StanzaEvent) -> bool:
        assert event.session.username is not None
        reply = st.reply(event.stanza)
        reply.append((await prefs_of(event.session.username)).element())
        event.session.send(reply)
        return True

    @module.hook(f"iq-set/self/{NS_MAM}:prefs")
    async def set_prefs(event: StanzaEvent) -> bool:
        user = event.session.username
        assert user is not None
        prefs = Prefs.from_element(event.stanza[0], policy)
        await prefs_store.set(user, prefs.stored())
        prefs_cache[user] = prefs
        return await get_prefs(event)

    # -- lifecycle --------------------------------------------------------------------------

    @module.hook(USER_DELETED)
    async def forget(event: UserEvent) -> None:
        prefs_cache.pop(event.username, None)
        archive.forget(event.username)

    if expires is not None:
        expiry = expires

        async def expire() -> None:
            count = await archive.expire(module.clock.time() - expiry)
            if count:
                module.log.info("deleted %d expired archived messages", count)

        module.add_timer(0, expire)
        module.every(DAY, expire)
    return archive
