"""vCard-temp (XEP-0054, ``vcard-temp``) as Prosody's mod_vcard, and vCard-based avatars
(XEP-0153) in presence as Prosody's mod_vcard_legacy adds them.

A user sets their own vCard (an IQ set with no ``to``, or to their own bare JID) and anyone
gets it from the user's bare JID; it is kept whole, as XML, in the keyval store ``vcard``
(Prosody's). Prosody's answers: a vCard for another account or the host is ``auth/forbidden``
to set; an account without one (or no such account), and the host, are
``cancel/item-not-found`` to others. One's own missing vCard is an empty ``<vCard/>``
(XEP-0054 §3.1 allows both; Prosody's default configuration, whose mod_vcard_legacy builds the
vCard from PEP, answers so, and clients such as slixmpp's XEP-0153 plugin need it to set a
first avatar). A vCard over ``vcard_max_size`` bytes (Metronome's option) is
``modify/not-acceptable``; Prosody 0.12 has no limit but the stanza size.

XEP-0153: every available presence a user sends gets ``<x xmlns='vcard-temp:x:update'>`` with
``<photo>`` the SHA-1 of the vCard's ``PHOTO/BINVAL`` (empty without a photo), unless the
client put a ``<photo/>`` there itself (the XEP: leave it alone), as mod_vcard_legacy does
from the PEP avatar.

Where the avatar lives can be handed to another module: mod_vcard_legacy (XEP-0398) sets
``Vcards.avatars`` to its ``AvatarStore`` on PEP, which then takes the photo of every vCard
set, gives the ``PHOTO`` every reader of a vCard sees (as the PEP node's access model lets
them), and the hash presence carries. ``vcard-changed`` (``VCARD_CHANGED``) follows every
stored vCard.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from lxml import etree

from minixmpp.config import PositiveInt
from minixmpp.errors import StanzaError
from minixmpp.events import (
    USER_DELETED,
    VCARD_CHANGED,
    StanzaEvent,
    UserEvent,
    VcardChanged,
)
from minixmpp.module import Module
from minixmpp.session import Session
from minixmpp.storage import KeyValueStore
from minixmpp.xml import stanza as st

NS = "vcard-temp"
NS_UPDATE = "vcard-temp:x:update"
VCARD = f"{{{NS}}}vCard"
CACHED_HASHES = 4096


@dataclass
class Options:
    vcard_max_size: PositiveInt = 128 * 1024  # bytes of a stored vCard (a photo in base64 too)


class AvatarStore(Protocol):
    """Where avatars live instead of the stored vCard's PHOTO (mod_vcard_legacy: PEP)."""

    async def take(self, username: str, vcard: etree._Element) -> etree._Element:
        """A vCard is being set: keep its photo (none: no avatar); the vCard to store."""
        ...

    async def photo(self, username: str, reader: str) -> etree._Element | None:
        """The ``<PHOTO/>`` ``reader`` (a JID) may see in the user's vCard, if any."""
        ...

    async def hash(self, username: str) -> str:
        """XEP-0153's hash of the user's avatar ("" for none)."""
        ...


def photo_hash(vcard: etree._Element | None) -> str:
    """XEP-0153's hash: the SHA-1 (hex) of the photo's bytes; "" without a usable photo."""
    if vcard is None:
        return ""
    data = vcard.findtext(f"{{{NS}}}PHOTO/{{{NS}}}BINVAL")
    if not data or not data.strip():
        return ""
    try:
        raw = base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        return ""
    return hashlib.sha1(raw).hexdigest() if raw else ""  # noqa: S324 (the XEP's hash)


class Vcards:
    """The API of mod_vcard (``module.depends("vcard")``)."""

    def __init__(
        self,
        module: Module,
        store: KeyValueStore,
        opts: Options,
        hashes: OrderedDict[str, str],  # username -> photo hash, the recently used
    ) -> None:
        self._module = module
        self._store = store
        self.opts = opts
        self._hashes = hashes
        self.avatars: AvatarStore | None = None  # set by mod_vcard_legacy

    async def get(self, username: str) -> etree._Element | None:
        """The vCard as stored (without the photo, when ``avatars`` keeps it)."""
        data = await self._store.get(username)
        return st.from_stored(data.encode()) if isinstance(data, str) else None

    async def read(self, username: str, reader: str) -> etree._Element | None:
        """The user's vCard as ``reader`` (a JID) sees it, photo included; None if none."""
        vcard = await self.get(username)
        if self.avatars is None:
            return vcard
        photo = await self.avatars.photo(username, reader)
        if vcard is None and photo is None:
            return None
        vcard = vcard if vcard is not None else st.element(VCARD)
        for old in vcard.findall(f"{{{NS}}}PHOTO"):
            vcard.remove(old)
        if photo is not None:
            vcard.append(photo)
        return vcard

    async def set(
        self, username: str, vcard: etree._Element, *, session: Session | None = None
    ) -> None:
        """Store ``vcard`` for ``username`` (StanzaError over the size limit)."""
        given = copy.deepcopy(vcard)
        if len(st.tostring(given)) > self.opts.vcard_max_size:
            raise StanzaError(
                "not-acceptable", f"vCards are limited to {self.opts.vcard_max_size} bytes"
            )
        if self.avatars is not None:
            stored = await self.avatars.take(username, copy.deepcopy(given))
            avatar = await self.avatars.hash(username)
        else:
            stored, avatar = given, photo_hash(given)
        await self._store.set(username, st.tostring(stored).decode())
        self._remember(username, avatar)
        await self._module.fire(VCARD_CHANGED, VcardChanged(username, given, avatar, session))

    async def store(self, username: str, vcard: etree._Element) -> None:
        """Store ``vcard`` as it is (no limit, no event): for a module moving data."""
        await self._store.set(username, st.tostring(vcard).decode())

    async def avatar_hash(self, username: str) -> str:
        """What ``<photo/>`` says in the user's presence ("" for no avatar)."""
        found = self._hashes.get(username)
        if found is None:
            if self.avatars is not None:
                found = await self.avatars.hash(username)
            else:
                found = photo_hash(await self.get(username))
            self._remember(username, found)
        else:
            self._hashes.move_to_end(username)
        return found

    def _remember(self, username: str, avatar: str) -> None:
        self._hashes[username] = avatar
        self._hashes.move_to_end(username)
        while len(self._hashes) > CACHED_HASHES:
            self._hashes.popitem(last=False)

    def forget(self, username: str) -> None:
        """The user's avatar may have changed: find its hash again when next needed."""
        self._hashes.pop(username, None)


def load(module: Module) -> Vcards:
    hashes: OrderedDict[str, str] = OrderedDict()
    api = Vcards(module, module.open_store("vcard", "keyval"), module.options(Options), hashes)
    module.forget_on_reset(hashes)
    module.add_feature(NS)

    @module.hook(f"iq-get/bare/{NS}:vCard")
    async def get(event: StanzaEvent) -> bool:
        session = event.session
        owner = session.username if event.to is None else event.to.node
        assert owner is not None
        vcard = await api.read(owner, event.stanza.get("from") or session.jid.full)
        if vcard is None and event.to is not None:
            raise StanzaError("item-not-found")
        reply = st.reply(event.stanza)
        reply.append(vcard if vcard is not None else st.element(VCARD))
        session.send(reply)
        return True

    @module.hook(f"iq-set/bare/{NS}:vCard")
    async def set_(event: StanzaEvent) -> bool:
        if event.to is not None:
            raise StanzaError("forbidden")
        session = event.session
        assert session.username is not None
        await api.set(session.username, event.stanza[0], session=session)
        session.send(st.reply(event.stanza))
        return True

    @module.hook(f"iq-get/host/{NS}:vCard")
    async def host_get(_event: StanzaEvent) -> bool:
        raise StanzaError("item-not-found")  # the host has no vCard (Prosody: none is set)

    @module.hook(f"iq-set/host/{NS}:vCard")
    async def host_set(_event: StanzaEvent) -> bool:
        raise StanzaError("forbidden")

    async def with_avatar_hash(event: StanzaEvent) -> None:
        stanza, username = event.stanza, event.session.username
        if username is None or stanza.get("type") is not None:
            return
        update = stanza.find(f"{{{NS_UPDATE}}}x")
        if update is None:
            update = st.sub(stanza, f"{{{NS_UPDATE}}}x")
        elif update.find(f"{{{NS_UPDATE}}}photo") is not None:
            return  # the client said it (XEP-0153: leave it)
        st.sub(update, f"{{{NS_UPDATE}}}photo", text=await api.avatar_hash(username) or None)

    for kind in ("full", "bare", "host"):  # before mod_presence sends it on (Prosody: 1)
        module.hook(f"pre-presence/{kind}", priority=1)(with_avatar_hash)

    @module.hook(USER_DELETED)
    async def deleted(event: UserEvent) -> None:
        api.forget(event.username)

    return api
