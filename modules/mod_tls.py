"""STARTTLS (RFC 6120 §5): offered before authentication on streams that are not yet secure."""

from minixmpp.events import STREAM_FEATURES, StanzaEvent, StreamFeatures
from minixmpp.module import Module
from minixmpp.session import Session
from minixmpp.xml import stanza as st

NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"


def load(module: Module) -> None:
    required = module.host_options.c2s_require_encryption

    @module.hook(STREAM_FEATURES)
    async def features(event: StreamFeatures) -> None:
        session = event.session
        if not session.secure and not session.authenticated:
            starttls = st.sub(event.features, f"{{{NS_TLS}}}starttls")
            if required:
                st.sub(starttls, f"{{{NS_TLS}}}required")

    @module.hook(f"stanza/{NS_TLS}:starttls")
    async def starttls(event: StanzaEvent) -> bool:
        session = event.session
        assert isinstance(session, Session)
        if session.secure or session.authenticated:
            session.send(st.element(f"{{{NS_TLS}}}failure"))
            session.close()
            return True
        await session.starttls()
        return True
