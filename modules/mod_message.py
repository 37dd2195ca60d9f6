"""Message delivery (RFC 6121 §8), with Prosody's mod_message rules.

To a full JID: that resource; if it is gone, a ``chat`` message goes as to the bare JID, a
``normal`` one gets ``service-unavailable`` and a ``headline`` is dropped (RFC 6121 §8.5.3.2.1;
Prosody treats ``normal`` as ``chat`` there). To a bare JID: ``chat`` and ``normal``
go to the available resources of highest non-negative priority; ``headline`` to every
available resource with non-negative priority (dropped when none, or when it was sent to a
resource that is gone); ``groupchat`` gets
``service-unavailable``; errors are dropped. With no resource to take a chat/normal message,
``message/offline/handle`` fires (mod_offline stores it); if nothing takes it, or the user does
not exist, the sender gets ``service-unavailable``.
"""

from minixmpp.errors import StanzaError
from minixmpp.events import StanzaEvent
from minixmpp.jid import JID
from minixmpp.module import Module
from minixmpp.session import Session

OFFLINE = "message/offline/handle"


def top_resources(sessions: list[Session]) -> list[Session]:
    """Available resources with the highest non-negative priority (Prosody's top_resources)."""
    best: list[Session] = []
    top = 0
    for session in sessions:
        if session.presence is None or session.priority < 0:
            continue
        if session.priority > top:
            top, best = session.priority, [session]
        elif session.priority == top:
            best.append(session)
    return best


def load(module: Module) -> None:
    async def to_bare(event: StanzaEvent, bare: JID, *, was_full: bool = False) -> bool:
        stanza = event.stanza
        kind = stanza.get("type") or "normal"
        if kind == "error":
            return True
        if kind == "groupchat":
            raise StanzaError("service-unavailable")
        if was_full and kind == "normal":  # that resource is gone (RFC 6121 §8.5.3.2.1)
            raise StanzaError("service-unavailable")
        assert bare.node is not None
        sessions = module.sessions_of(bare.node)
        if kind == "headline":
            if was_full:  # that resource is gone: silently ignored (RFC 6121 §8.5.3.2.1)
                return True
            for session in sessions:
                if session.presence is not None and session.priority >= 0:
                    session.send(stanza)
            return True
        sent = False
        for session in top_resources(sessions):
            sent = session.send(stanza) or sent
        if sent:
            return True
        if (
            kind in ("chat", "normal")
            and await module.users.exists(bare.node)
            and await module.fire(OFFLINE, StanzaEvent(event.session, stanza, bare))
        ):
            return True
        raise StanzaError("service-unavailable")

    @module.hook("message/full")
    async def to_full(event: StanzaEvent) -> bool:
        assert event.to is not None
        session = module.session(event.to.full)
        if session is not None and session.send(event.stanza):
            return True
        return await to_bare(event, event.to.bare_jid, was_full=True)

    @module.hook("message/bare")
    async def to_account(event: StanzaEvent) -> bool:
        return await to_bare(event, event.to or event.session.jid.bare_jid)
