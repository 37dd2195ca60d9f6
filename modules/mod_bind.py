"""Resource binding (RFC 6120 §7) and the legacy session establishment (RFC 3921 §3)."""

from minixmpp.errors import StanzaError
from minixmpp.events import STREAM_FEATURES, StanzaEvent, StreamFeatures
from minixmpp.module import Module
from minixmpp.session import Session
from minixmpp.xml import stanza as st

NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"


def load(module: Module) -> None:
    @module.hook(STREAM_FEATURES)
    async def features(event: StreamFeatures) -> None:
        session = event.session
        if session.authenticated and not session.bound:
            st.sub(st.sub(event.features, f"{{{NS_BIND}}}bind"), f"{{{NS_BIND}}}required")
            st.sub(st.sub(event.features, f"{{{NS_SESSION}}}session"), f"{{{NS_SESSION}}}optional")

    @module.hook(f"stanza/iq/{NS_BIND}:bind")
    async def bind(event: StanzaEvent) -> bool:
        session, stanza = event.session, event.stanza
        assert isinstance(session, Session)
        if not session.authenticated:
            raise StanzaError("not-authorized")
        if stanza.get("type") != "set":
            raise StanzaError("bad-request")
        jid = await session.bind(st.child_text(stanza[0], f"{{{NS_BIND}}}resource"))
        reply = st.reply(stanza)
        st.sub(st.sub(reply, f"{{{NS_BIND}}}bind"), f"{{{NS_BIND}}}jid", text=jid.full)
        session.send(reply)
        return True

    async def legacy_session(event: StanzaEvent) -> bool:
        event.session.send(st.reply(event.stanza))
        return True

    for target in ("self", "host"):
        module.hook(f"iq-set/{target}/{NS_SESSION}:session")(legacy_session)
