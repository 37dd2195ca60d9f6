"""Private XML Storage (XEP-0049, ``jabber:iq:private``), as Prosody's mod_private.

A user stores one XML element per (name, namespace) in their account and gets it back; an
element that is empty (no attribute, text or child) deletes what was stored. Stored in the
map store ``private`` (Prosody's name) under ``name:namespace``, as XML text.

Where Prosody 0.12 is lax or wrong, this is strict: a query without exactly one child, or one
whose child is not in a namespace of its own (``jabber:iq:private``), gets
``modify/not-acceptable`` (XEP-0049; Prosody sends ``bad-format``, which is not a stanza error
condition, and stores a ``jabber:iq:private`` child); another user's storage is ``forbidden``
(XEP-0049's preferred condition; Prosody: ``service-unavailable``). What one account may hold
is limited: ``private_max_size`` bytes per element (``not-acceptable``) and
``private_max_items`` elements (``resource-constraint``).

Other modules (the XEP-0048 bookmarks sync with PEP) use the API ``load`` returns, and
``PRIVATE_STORAGE_CHANGED`` tells them what a user stored.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from lxml import etree

from minixmpp.config import PositiveInt
from minixmpp.errors import StanzaError
from minixmpp.events import (
    CONFIG_RELOADED,
    PRIVATE_STORAGE_CHANGED,
    ConfigReloaded,
    PrivateStorageChanged,
    StanzaEvent,
)
from minixmpp.module import Module
from minixmpp.session import Session
from minixmpp.storage import MapStore
from minixmpp.xml import stanza as st

NS_PRIVATE = "jabber:iq:private"


@dataclass
class Options:
    private_max_size: PositiveInt = 64 * 1024  # bytes of one stored element
    private_max_items: PositiveInt = 100  # elements (name, namespace) per account


def key_of(element: etree._Element) -> str:
    """The store key of an element: Prosody's ``name:namespace``."""
    qname = etree.QName(element)
    return f"{qname.localname}:{qname.namespace}"


def is_empty(element: etree._Element) -> bool:
    return len(element) == 0 and not element.attrib and not (element.text or "").strip()


class PrivateStorage:
    """The API of mod_private (``module.depends("private")``)."""

    def __init__(self, module: Module, store: MapStore, opts: Options) -> None:
        self._module = module
        self._store = store
        self.opts = opts

    async def get(self, username: str, name: str, namespace: str) -> etree._Element | None:
        """The element a user stored under (name, namespace), or None."""
        data = await self._store.get(username, f"{name}:{namespace}")
        if not isinstance(data, str):
            return None
        return st.from_stored(data.encode())

    async def set(
        self, username: str, element: etree._Element, *, session: Session | None = None
    ) -> None:
        """Store ``element`` for ``username`` (an empty one deletes); StanzaError over the
        limits. ``PRIVATE_STORAGE_CHANGED`` fires once it is stored, with ``session`` (None
        when another module stored it: a sync must not echo its own writes)."""
        key = key_of(element)
        if is_empty(element):
            data = None
        else:
            data = st.tostring(copy.deepcopy(element)).decode()
            if len(data.encode()) > self.opts.private_max_size:
                raise StanzaError(
                    "not-acceptable",
                    f"Private XML elements are limited to {self.opts.private_max_size} bytes",
                )
        async with self._module.transaction() as tx:
            if data is not None:
                stored = await self._store.items(username, tx=tx)
                if key not in stored and len(stored) >= self.opts.private_max_items:
                    raise StanzaError(
                        "resource-constraint",
                        f"Private storage is limited to {self.opts.private_max_items} elements",
                    )
            changed = await self._store.set(username, key, data, tx=tx)
        if changed:
            stored_element = None if data is None else element
            await self._module.fire(
                PRIVATE_STORAGE_CHANGED,
                PrivateStorageChanged(username, key, stored_element, session),
            )


def load(module: Module) -> PrivateStorage:
    opts = module.options(Options)
    module.add_feature(NS_PRIVATE)
    api = PrivateStorage(module, module.open_store("private", "map"), opts)

    @module.hook(CONFIG_RELOADED)
    async def reloaded(_event: ConfigReloaded) -> None:
        api.opts = module.options(Options)

    def payload(event: StanzaEvent) -> etree._Element:
        if event.to is not None:  # another account (one's own bare JID is no 'to')
            raise StanzaError("forbidden", "You may only access your own private storage")
        query = event.stanza[0]
        if len(query) != 1:
            raise StanzaError("not-acceptable", "Exactly one child element is expected")
        child = query[0]
        if not isinstance(child.tag, str) or etree.QName(child).namespace in (None, NS_PRIVATE):
            raise StanzaError("not-acceptable", "The child element needs a namespace of its own")
        return child

    @module.hook(f"iq-get/bare/{NS_PRIVATE}:query")
    async def get(event: StanzaEvent) -> bool:
        child = payload(event)
        session = event.session
        assert session.username is not None
        qname = etree.QName(child)
        assert qname.namespace is not None
        stored = await api.get(session.username, qname.localname, qname.namespace)
        reply = st.reply(event.stanza)
        query = st.sub(reply, f"{{{NS_PRIVATE}}}query")
        query.append(stored if stored is not None else copy.deepcopy(child))
        session.send(reply)
        return True

    @module.hook(f"iq-set/bare/{NS_PRIVATE}:query")
    async def set_(event: StanzaEvent) -> bool:
        child = payload(event)
        session = event.session
        assert session.username is not None
        await api.set(session.username, child, session=session)
        session.send(st.reply(event.stanza))
        return True

    return api
