"""Resource binding (RFC 6120 §7) and the legacy session establishment (RFC 3921 §3).

The client may ask for a resource; one that resourceprep refuses, or none, gets a random one
(as Prosody does). A new session for a full JID that is taken replaces the old one, which is
closed with ``conflict`` and has gone (its unavailable sent) before the new one is bound, so that
contacts never see the new presence followed by the old unavailable. ``max_resources`` limits
how many resources an account may bind at once.
"""

import secrets

from minixmpp.errors import StanzaError, StreamError
from minixmpp.events import (
    RESOURCE_BIND,
    STREAM_FEATURES,
    SessionEvent,
    StanzaEvent,
    StreamFeatures,
)
from minixmpp.jid import JID, InvalidJID, resourceprep
from minixmpp.module import Module
from minixmpp.xml import stanza as st

NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"


def load(module: Module) -> None:
    users = module.users

    @module.hook(STREAM_FEATURES)
    async def features(event: StreamFeatures) -> None:
        session = event.session
        if session.authenticated and not session.bound:
            st.sub(st.sub(event.features, f"{{{NS_BIND}}}bind"), f"{{{NS_BIND}}}required")
            st.sub(st.sub(event.features, f"{{{NS_SESSION}}}session"), f"{{{NS_SESSION}}}optional")

    @module.hook(f"stanza/iq/{NS_BIND}:bind")
    async def bind(event: StanzaEvent) -> bool:
        session, stanza = event.session, event.stanza
        username = session.username
        if not session.authenticated or username is None:
            raise StanzaError("not-authorized")
        if stanza.get("type") != "set":
            raise StanzaError("bad-request")
        if session.bound:
            raise StanzaError("not-allowed")
        requested = st.child_text(stanza[0], f"{{{NS_BIND}}}resource")
        try:
            resource = resourceprep(requested, strict=True) if requested else None
        except InvalidJID:
            resource = None  # Prosody hands out a random resource instead of an error
        if resource is None:
            resource = secrets.token_urlsafe(9)
        if users.epoch(username) != session.auth_epoch:
            # the password changed or the account went after this login checked it
            if await users.exists(username):
                session.close("reset", "Password changed")
            else:
                session.close("not-authorized", "Account deleted")
            raise StanzaError("not-authorized")
        jid = JID(username, module.host, resource)
        limit = module.host_options.max_resources  # read here: a reload may change it
        if module.session(jid.full) is None and len(module.sessions_of(username)) >= limit:
            raise StanzaError(
                "resource-constraint", f"Resource limit reached; only {limit} resources allowed"
            )
        session.set_bound(resource)
        old = module.register_session(session)
        if old is not None and old is not session:
            old.close("conflict", "Replaced by new connection")
            await old.unbound()
        try:
            await module.fire(RESOURCE_BIND, SessionEvent(session))
        except Exception:
            # Half-bound: the client cannot be told "not bound", so the stream ends.
            module.log.exception("a resource-bind handler failed")
            raise StreamError("internal-server-error") from None
        reply = st.reply(stanza)
        st.sub(st.sub(reply, f"{{{NS_BIND}}}bind"), f"{{{NS_BIND}}}jid", text=jid.full)
        session.send(reply)
        return True

    async def legacy_session(event: StanzaEvent) -> bool:
        event.session.send(st.reply(event.stanza))
        return True

    for target in ("self", "host"):
        module.hook(f"iq-set/{target}/{NS_SESSION}:session")(legacy_session)
