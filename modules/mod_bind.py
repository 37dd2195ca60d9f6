"""Resource binding (RFC 6120 §7) and the legacy session establishment (RFC 3921 §3).

The client may ask for a resource; one that resourceprep refuses, or none, gets a random one
(as Prosody does). A new session for a full JID that is taken replaces the old one, which is
closed with ``conflict`` and has gone (its unavailable sent) before the new one is bound, so that
contacts never see the new presence followed by the old unavailable. ``max_resources`` limits
how many resources an account may bind at once.
"""

from minixmpp.errors import StanzaError
from minixmpp.events import STREAM_FEATURES, StanzaEvent, StreamFeatures
from minixmpp.jid import InvalidJID, resourceprep
from minixmpp.login import Binder
from minixmpp.module import Module
from minixmpp.xml import stanza as st

NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"


def load(module: Module) -> Binder:
    """What this returns binds for Bind 2 (mod_sasl2_bind2) as well."""
    binder = Binder(module)

    @module.hook(STREAM_FEATURES)
    async def features(event: StreamFeatures) -> None:
        session = event.session
        if session.authenticated and not session.bound:
            st.sub(st.sub(event.features, f"{{{NS_BIND}}}bind"), f"{{{NS_BIND}}}required")
            st.sub(st.sub(event.features, f"{{{NS_SESSION}}}session"), f"{{{NS_SESSION}}}optional")

    @module.hook(f"stanza/iq/{NS_BIND}:bind")
    async def bind(event: StanzaEvent) -> bool:
        session, stanza = event.session, event.stanza
        if not session.authenticated or session.username is None:
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
        jid = await binder.bind(session, resource)
        reply = st.reply(stanza)
        st.sub(st.sub(reply, f"{{{NS_BIND}}}bind"), f"{{{NS_BIND}}}jid", text=jid.full)
        session.send(reply)
        return True

    async def legacy_session(event: StanzaEvent) -> bool:
        event.session.send(st.reply(event.stanza))
        return True

    for target in ("self", "host"):
        module.hook(f"iq-set/{target}/{NS_SESSION}:session")(legacy_session)

    return binder
