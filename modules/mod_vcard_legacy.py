"""vCard avatars and PEP avatars kept in step (XEP-0398, ``urn:xmpp:pep-vcard-conversion:0``),
as Prosody's mod_vcard_legacy does it: the avatar lives in PEP (XEP-0084), and mod_vcard (which
it loads, with mod_pep) serves and takes it through this module.

- A vCard set with a ``PHOTO``/``BINVAL`` is published as the account's PEP avatar: the data
  item (its id the SHA-1 of the image) to ``urn:xmpp:avatar:data``, then the metadata
  (``bytes``, ``id``, the vCard's ``TYPE``) to ``urn:xmpp:avatar:metadata``, which notifies the
  subscribers; a vCard set without a photo removes the PEP avatar (both nodes purged first, as
  Prosody). Nodes this creates are ``open``, as a vCard is (Prosody's node defaults); the
  stored vCard keeps no photo.
- A vCard read gets its ``PHOTO`` from the PEP avatar (``TYPE`` and ``BINVAL``, or ``EXTVAL``
  for an ``info`` with a URL), when the reader may read those nodes: an avatar a client
  published to its contacts only is not shown to others.
- The hash presence carries (XEP-0153) is the id of the current metadata item.
- A stored vCard with a photo from before this module was loaded moves to PEP when its user
  next binds a resource (Prosody's ``upgrade_legacy_vcards``), unless PEP has an avatar.

Unlike Prosody, the rest of the vCard stays vCard-temp (kept whole by mod_vcard) instead of
being rebuilt from the vCard4 node (mod_vcard4 is the XEP-0292 side of the same profile).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any

from lxml import etree

from minixmpp.events import RESOURCE_BIND, SessionEvent
from minixmpp.module import Module
from minixmpp.pubsub.node import PEP_NODE_CHANGED, NodeChange
from minixmpp.pubsub.store import NS_PUBSUB
from minixmpp.xml import stanza as st

NS_CONVERSION = "urn:xmpp:pep-vcard-conversion:0"
NS_VCARD = "vcard-temp"
DATA = "urn:xmpp:avatar:data"
METADATA = "urn:xmpp:avatar:metadata"
NODE_DEFAULTS = {"access_model": "open"}  # only for nodes this creates (Prosody's)


@dataclass(frozen=True)
class Photo:
    data: bytes
    type: str | None

    @property
    def id(self) -> str:
        return hashlib.sha1(self.data).hexdigest()  # noqa: S324 (XEP-0084's item id)


def photo_of(vcard: etree._Element) -> Photo | None:
    """The image of a vCard's ``PHOTO``, if it has one in ``BINVAL``."""
    text = vcard.findtext(f"{{{NS_VCARD}}}PHOTO/{{{NS_VCARD}}}BINVAL")
    if not text or not text.strip():
        return None
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    kind = (vcard.findtext(f"{{{NS_VCARD}}}PHOTO/{{{NS_VCARD}}}TYPE") or "").strip()
    return Photo(data, kind or None) if data else None


def without_photo(vcard: etree._Element) -> etree._Element:
    for photo in vcard.findall(f"{{{NS_VCARD}}}PHOTO"):
        vcard.remove(photo)
    return vcard


def item(item_id: str, payload: etree._Element) -> etree._Element:
    wrapper = st.element(f"{{{NS_PUBSUB}}}item", {"id": item_id})
    wrapper.append(payload)
    return wrapper


class PepAvatars:
    """mod_vcard's ``AvatarStore`` on the account's PEP service."""

    def __init__(self, module: Module, vcards: Any, pep: Any) -> None:
        self._module = module
        self.vcards = vcards  # mod_vcard's API
        self._pep = pep

    async def take(self, username: str, vcard: etree._Element) -> etree._Element:
        await self.publish(username, photo_of(vcard))
        return without_photo(vcard)

    async def publish(self, username: str, photo: Photo | None) -> None:
        """Make ``photo`` the account's PEP avatar (None: remove it), as the account."""
        service = await self._pep.service(username)
        async with service.lock:
            owner = service.jid
            for node in (METADATA, DATA):
                if node in service.nodes:
                    await service.purge(node, owner)
            if photo is None:
                return
            data = st.element(f"{{{DATA}}}data", text=base64.b64encode(photo.data).decode())
            metadata = st.element(f"{{{METADATA}}}metadata")
            info = {"bytes": str(len(photo.data)), "id": photo.id, "type": photo.type}
            st.sub(metadata, f"{{{METADATA}}}info", info)
            for node, payload in ((DATA, data), (METADATA, metadata)):
                options = None if node in service.nodes else NODE_DEFAULTS
                await service.publish(node, owner, item(photo.id, payload), options)

    async def photo(self, username: str, reader: str) -> etree._Element | None:
        if not await self._module.users.exists(username):
            return None
        service = await self._pep.service(username)
        node = service.nodes.get(METADATA)
        if node is None or not await service.may(node, reader, "get_items"):
            return None
        current = await service.items.last(METADATA)
        metadata = None if current is None else st.from_stored(current.payload)
        infos = [] if metadata is None else metadata.findall(f"{{{METADATA}}}info")
        # XEP-0398: the info that does not point to a URL; else one that does, as EXTVAL
        info = next((i for i in infos if not i.get("url")), infos[0] if infos else None)
        if info is None:
            return None
        photo = st.element(f"{{{NS_VCARD}}}PHOTO")
        if info.get("type"):
            st.sub(photo, f"{{{NS_VCARD}}}TYPE", text=info.get("type"))
        if info.get("url"):
            st.sub(photo, f"{{{NS_VCARD}}}EXTVAL", text=info.get("url"))
            return photo
        data_node = service.nodes.get(DATA)
        if data_node is None or not await service.may(data_node, reader, "get_items"):
            return None
        found = await service.items.by_ids(DATA, [info.get("id", "")])
        data = None if not found else st.from_stored(found[0].payload)
        if data is None or not (data.text or "").strip():
            return None
        st.sub(photo, f"{{{NS_VCARD}}}BINVAL", text="".join((data.text or "").split()))
        return photo

    async def hash(self, username: str) -> str:
        if not await self._module.users.exists(username):
            return ""
        service = await self._pep.service(username)
        if METADATA not in service.nodes:
            return ""
        current = await service.items.last(METADATA)
        return current.id if current is not None else ""


def load(module: Module) -> PepAvatars:
    vcards = module.depends("vcard")
    pep = module.depends("pep")
    avatars = PepAvatars(module, vcards, pep)
    vcards.avatars = avatars
    module.add_account_feature(NS_CONVERSION)

    @module.hook(PEP_NODE_CHANGED)
    async def changed(change: NodeChange) -> None:
        if change.node == METADATA:  # a new avatar, or none: the next presence says which
            vcards.forget(change.service.partition("@")[0])

    @module.hook(RESOURCE_BIND)
    async def upgrade(event: SessionEvent) -> None:
        username = event.session.username
        if username is None:
            return
        stored = await vcards.get(username)
        photo = None if stored is None else photo_of(stored)
        if stored is None or stored.find(f"{{{NS_VCARD}}}PHOTO") is None:
            return
        if photo is not None and not await avatars.hash(username):
            await avatars.publish(username, photo)
            module.log.info("moved %s's vCard photo to PEP", username)
        await vcards.store(username, without_photo(stored))

    return avatars


def unload(module: Module) -> None:
    avatars = module.api
    if isinstance(avatars, PepAvatars) and avatars.vcards.avatars is avatars:
        avatars.vcards.avatars = None
