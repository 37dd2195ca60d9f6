"""Message Carbons (XEP-0280, ``urn:xmpp:carbons:2``, with the rules of
``urn:xmpp:carbons:rules:0``), as Prosody's mod_carbons does it.

A resource turns carbons on or off with an IQ to its own account. Then it gets a copy of the
messages its user's other resources send (``<sent/>``) and of the messages its user receives
that normal routing does not bring it (``<received/>``), each wrapped in ``<forwarded/>``
(XEP-0297) and sent from the user's bare JID. What is copied: ``chat`` messages, ``normal``
ones with a body, error bounces of messages sent to bare JIDs, Jingle Message Initiation, and
messages the user's archive stamped; never one with ``<private/>`` (which is taken out of a
received message) or ``<no-copy/>`` (XEP-0334), nor a MUC private message. A client logging in
with Bind 2 (XEP-0386) may enable carbons inline, in its bind request.
"""

from __future__ import annotations

from lxml import etree

from minixmpp.events import BIND2_ENABLE, BIND2_FEATURES, Bind2Features, Bind2Request, StanzaEvent
from minixmpp.module import Module
from minixmpp.session import Session
from minixmpp.xml import stanza as st

NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_HINTS = "urn:xmpp:hints"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_SID = "urn:xmpp:sid:0"
JINGLE_MESSAGE = ("urn:xmpp:jingle-message:0", "urn:xmpp:jingle-message:1")
KEY = "carbons"  # session.data: True while this resource wants carbons
PRIVATE = f"{{{NS_CARBONS}}}private"


def should_copy(stanza: etree._Element, c2s: bool, user_bare: str) -> tuple[bool, str]:
    """Whether a message is copied, and why (Prosody's rules, in its order)."""
    kind = stanza.get("type") or "normal"
    if stanza.find(PRIVATE) is not None:
        return False, "private"
    if stanza.find(f"{{{NS_HINTS}}}no-copy") is not None:
        return False, "hint"
    if not c2s and stanza.get("to") != user_bare and stanza.find(f"{{{NS_MUC_USER}}}x") is not None:
        return False, "muc-pm"  # MUC private messages are sent to full JIDs
    if kind == "chat":
        return True, "type"
    if kind == "normal" and stanza.find("body") is not None:
        return True, "type"
    if kind == "error" and not c2s and "/" not in (stanza.get("from") or "/"):
        return True, "bounce"  # of a message sent to a bare JID
    if any(child.tag.startswith(f"{{{ns}}}") for ns in JINGLE_MESSAGE for child in stanza):
        return True, "jingle call"
    for sid in stanza.iterfind(f"{{{NS_SID}}}stanza-id"):
        if sid.get("by") == user_bare:
            return True, "archived"
    return False, "default"


def top_priority(sessions: list[Session]) -> int | None:
    """The priority of the resources that get a message to the bare JID (mod_message)."""
    priorities = [s.priority for s in sessions if s.presence is not None and s.priority >= 0]
    return max(priorities) if priorities else None


def load(module: Module) -> None:
    module.add_feature(NS_CARBONS)
    module.add_feature("urn:xmpp:carbons:rules:0")

    async def toggle(event: StanzaEvent) -> bool:
        session, stanza = event.session, event.stanza
        session.data[KEY] = etree.QName(stanza[0]).localname == "enable"
        module.log.debug("%s %s carbons", session.jid, etree.QName(stanza[0]).localname)
        session.send(st.reply(stanza))
        return True

    module.hook(f"iq-set/self/{NS_CARBONS}:enable")(toggle)
    module.hook(f"iq-set/self/{NS_CARBONS}:disable")(toggle)

    @module.hook(BIND2_FEATURES)
    async def inline(event: Bind2Features) -> None:
        event.features.append(NS_CARBONS)

    @module.hook(BIND2_ENABLE)
    async def enable_at_bind(event: Bind2Request) -> None:
        """Bind 2's ``<enable xmlns='urn:xmpp:carbons:2'/>``: on from the start, with no
        answer in ``<bound/>`` (XEP-0386 §3.2: it cannot fail; Prosody's module adds an
        ``<enabled/>`` that no specification defines)."""
        if event.request.find(f"{{{NS_CARBONS}}}enable") is not None:
            event.session.data[KEY] = True
            module.log.debug("%s enabled carbons at bind", event.session.jid)

    def copy_out(event: StanzaEvent, c2s: bool) -> None:
        origin, stanza = event.session, event.stanza
        target: Session | None
        if c2s:
            if not origin.c2s or origin.username is None:
                return
            username, target = origin.username, origin
        else:
            to = event.to
            if to is None or to.node is None or to.domain != module.host:
                return
            username = to.node
            target = module.session(to.full) if to.resource else None
        sessions = module.sessions_of(username)
        if not sessions:
            return  # nobody online to copy to
        user_bare = f"{username}@{module.host}"
        top = None if c2s or target is not None else top_priority(sessions)
        should, why = should_copy(stanza, c2s, user_bare)
        if not should:
            if why == "private" and not c2s:
                for private in stanza.findall(PRIVATE):
                    stanza.remove(private)
            return
        carbon: etree._Element | None = None
        for session in sessions:
            if (
                not session.data.get(KEY)
                or session is target
                or (not c2s and session.presence is not None and session.priority == top)
            ):
                continue
            if carbon is None:
                if c2s and stanza.get("to") is None:
                    stanza.set("to", user_bare)
                carbon = st.message(type=stanza.get("type"), from_=user_bare)
                wrapper = st.sub(carbon, f"{{{NS_CARBONS}}}{'sent' if c2s else 'received'}")
                forwarded = st.sub(wrapper, f"{{{NS_FORWARD}}}forwarded")
                forwarded.append(st.embed(stanza))
            carbon.set("to", session.jid.full)
            session.send(carbon)

    async def sent(event: StanzaEvent) -> None:
        copy_out(event, True)

    async def received(event: StanzaEvent) -> None:
        copy_out(event, False)

    for kind in ("host", "bare", "full"):
        module.hook(f"pre-message/{kind}", priority=-1)(sent)
    for kind in ("bare", "full"):
        module.hook(f"message/{kind}", priority=1)(received)  # before mod_message delivers
