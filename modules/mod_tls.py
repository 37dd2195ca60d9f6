"""STARTTLS (RFC 6120 §5): offered before authentication on streams that are not yet secure
and whose transport can be upgraded (not over WebSocket).

``<starttls/>`` must be the last thing the client sent: if anything follows it, whole or in
part, the answer is ``<failure/>`` and the stream closes, so nothing sent in plaintext can reach
the TLS stream. Between ``<proceed/>`` and the end of the handshake the TLS layer owns the socket.
"""

from minixmpp.events import STREAM_FEATURES, StanzaEvent, StreamFeatures
from minixmpp.module import Module
from minixmpp.xml import stanza as st

NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"


def load(module: Module) -> None:
    required = module.host_options.c2s_require_encryption

    @module.hook(STREAM_FEATURES)
    async def features(event: StreamFeatures) -> None:
        session = event.session
        if not session.secure and not session.authenticated and session.transport == "tcp":
            starttls = st.sub(event.features, f"{{{NS_TLS}}}starttls")
            if required:
                st.sub(starttls, f"{{{NS_TLS}}}required")

    @module.hook(f"stanza/{NS_TLS}:starttls")
    async def starttls(event: StanzaEvent) -> bool:
        session = event.session
        if not (session.secure or session.authenticated or session.transport != "tcp"):
            proceed = st.element(f"{{{NS_TLS}}}proceed")
            if await session.start_tls(module.tls_context("starttls"), proceed):
                return True
        session.send(st.element(f"{{{NS_TLS}}}failure"))  # no-op once the handshake failed
        session.close()
        return True
