"""vCard4 over PEP (XEP-0292, ``urn:ietf:params:xml:ns:vcard-4.0``), as Prosody's mod_vcard4:
the profile is the item ``current`` of the account's PEP node ``urn:xmpp:vcard4``, which
clients may publish and read through PubSub as the XEP says; this adds Prosody's IQ
interface to it, and the account feature.

A get of ``<vcard xmlns='urn:ietf:params:xml:ns:vcard-4.0'/>`` from an account's bare JID
answers with the node's item as the asker may read it: ``cancel/item-not-found`` without one,
``auth/forbidden`` when the node's access model keeps the asker out. A set (one's own account
only) publishes it as ``current``, creating the node with PEP's defaults; PEP's limits and
errors apply.
"""

from __future__ import annotations

from typing import Any

from minixmpp.errors import StanzaError
from minixmpp.events import StanzaEvent
from minixmpp.module import Module
from minixmpp.pubsub.store import NS_PUBSUB
from minixmpp.xml import stanza as st

NS = "urn:ietf:params:xml:ns:vcard-4.0"
NODE = "urn:xmpp:vcard4"


def load(module: Module) -> None:
    pep: Any = module.depends("pep")
    module.add_account_feature(NS)

    @module.hook(f"iq-get/bare/{NS}:vcard")
    async def get(event: StanzaEvent) -> bool:
        session = event.session
        owner = session.username if event.to is None else event.to.node
        if owner is None or not await module.users.exists(owner):
            raise StanzaError("item-not-found")
        service = await pep.service(owner)
        node = service.nodes.get(NODE)
        if node is None:
            raise StanzaError("item-not-found")
        if not await service.may(node, event.stanza.get("from") or session.jid.full, "get_items"):
            raise StanzaError("forbidden")
        current = await service.items.last(NODE)
        vcard = None if current is None else st.from_stored(current.payload)
        if vcard is None:
            raise StanzaError("item-not-found")
        reply = st.reply(event.stanza)
        reply.append(vcard)
        session.send(reply)
        return True

    @module.hook(f"iq-set/self/{NS}:vcard")
    async def set_(event: StanzaEvent) -> bool:
        session = event.session
        assert session.username is not None
        item = st.element(f"{{{NS_PUBSUB}}}item", {"id": "current"})
        item.append(st.keep(event.stanza[0]))
        service = await pep.service(session.username)
        async with service.lock:
            await service.publish(NODE, session.jid.full, item)
        session.send(st.reply(event.stanza))
        return True
