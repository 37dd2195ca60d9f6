"""Presence (RFC 6121 §4): broadcast to the user's own resources, directed presence, and
``unavailable`` when a resource goes away, cleanly or not.

Roster-based broadcast and subscriptions build on this (the roster issue).
"""

import copy

from lxml import etree

from minixmpp.events import RESOURCE_UNBIND, ResourceUnbind, StanzaEvent
from minixmpp.module import Module
from minixmpp.session import Session
from minixmpp.xml import stanza as st

DIRECTED = "presence.directed"  # session.data: JIDs this resource sent directed presence to


def priority_of(stanza: etree._Element) -> int:
    text = st.child_text(stanza, "priority")
    try:
        value = int(text) if text else 0
    except ValueError:
        return 0
    return max(-128, min(127, value))


def load(module: Module) -> None:
    def deliver(session: Session, stanza: etree._Element) -> None:
        stanza.set("to", session.jid.full)
        session.send(stanza)

    def broadcast_own(origin: Session, stanza: etree._Element) -> None:
        assert origin.username is not None
        for session in module.sessions_of(origin.username):
            if session is not origin and session.presence is not None:
                deliver(session, stanza)
        if "to" in stanza.attrib:
            del stanza.attrib["to"]
        origin.send(stanza)  # the echo to the sender itself has no 'to' (Prosody)

    async def unavailable(origin: Session, stanza: etree._Element) -> None:
        if origin.presence is not None:
            origin.presence = None
            broadcast_own(origin, stanza)
        for target in origin.data.pop(DIRECTED, set()):
            stanza.set("to", target)
            await module.send(stanza)

    @module.hook("pre-presence/bare")
    async def outbound(event: StanzaEvent) -> bool | None:
        origin, stanza = event.session, event.stanza
        if stanza.get("to") is not None or not isinstance(origin, Session):
            return None  # directed presence to an account: presence/bare delivers it
        kind = stanza.get("type")
        if kind is None:
            initial = origin.presence is None
            origin.priority = priority_of(stanza)
            origin.presence = st.keep(stanza)  # stored: must not pin the stream's parser
            broadcast_own(origin, stanza)
            if initial and origin.username is not None:
                for other in module.sessions_of(origin.username):
                    if other is not origin and other.presence is not None:
                        deliver(origin, copy.deepcopy(other.presence))
        elif kind == "unavailable":
            await unavailable(origin, stanza)
        return True

    async def track_directed(event: StanzaEvent) -> None:
        origin, stanza = event.session, event.stanza
        if isinstance(origin, Session) and stanza.get("type") in (None, "unavailable"):
            directed = origin.data.setdefault(DIRECTED, set())
            if stanza.get("type") is None:
                directed.add(stanza.get("to"))
            else:
                directed.discard(stanza.get("to"))

    module.hook("pre-presence/full")(track_directed)

    @module.hook("pre-presence/bare", priority=1)
    async def track_directed_bare(event: StanzaEvent) -> None:
        if event.stanza.get("to") is not None:
            await track_directed(event)

    @module.hook("presence/full")
    async def to_full(event: StanzaEvent) -> bool:
        assert event.to is not None
        session = module.session(event.to.full)
        if session is not None:
            session.send(event.stanza)
        return True  # presence to an unavailable resource is silently dropped

    @module.hook("presence/bare")
    async def to_bare(event: StanzaEvent) -> bool:
        target = event.to
        if target is None or target.node is None:
            return True
        for session in module.sessions_of(target.node):
            if session.presence is not None:
                session.send(event.stanza)
        return True

    @module.hook("presence/host")
    async def to_host(event: StanzaEvent) -> bool:
        return True

    @module.hook(RESOURCE_UNBIND)
    async def gone(event: ResourceUnbind) -> None:
        session = event.session
        if session.presence is None and not session.data.get(DIRECTED):
            return
        stanza = st.presence(type="unavailable", from_=session.jid.full)
        if event.error:  # not a clean close: say why, as Prosody does
            st.sub(stanza, "status", text=f"Disconnected: {event.error}")
        await unavailable(session, stanza)
