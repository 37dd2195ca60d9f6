"""SASL authentication (RFC 6120 §6): SCRAM-SHA-1/256(-PLUS) and PLAIN, XEP-0440 advertisement.

Without TLS, and with ``c2s_require_encryption`` (the default), no mechanism is offered and
``<auth/>`` fails with ``encryption-required``. PLAIN is only ever offered over TLS. After
``c2s_max_auth_failures`` failures on one connection the stream is closed; failures per address,
across connections, are throttled by mod_limit_auth.
"""

from __future__ import annotations

import base64

from minixmpp.events import (
    AUTHENTICATION_SUCCESS,
    STREAM_FEATURES,
    SessionEvent,
    StanzaEvent,
    StreamFeatures,
)
from minixmpp.login import Authenticator
from minixmpp.module import Module
from minixmpp.sasl import Mechanism, SaslFailure, Step, decode_payload
from minixmpp.session import Session
from minixmpp.xml import stanza as st

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_SASL_CB = "urn:xmpp:sasl-cb:0"
KEY = "saslauth"  # session.data key: the mechanism in progress


def load(module: Module) -> Authenticator:
    """What this returns is shared with SASL2 (mod_sasl2): the same mechanisms and rules."""
    authenticator = Authenticator(module)

    @module.hook(STREAM_FEATURES)
    async def features(event: StreamFeatures) -> None:
        session = event.session
        if session.authenticated or not authenticator.may_authenticate(session):
            return
        mechanisms = st.sub(event.features, f"{{{NS_SASL}}}mechanisms")
        for name in authenticator.mechanisms(session):
            st.sub(mechanisms, f"{{{NS_SASL}}}mechanism", text=name)
        bindings = session.channel_bindings()
        if bindings:  # XEP-0440, for SASL2 as well
            cb = st.sub(event.features, f"{{{NS_SASL_CB}}}sasl-channel-binding")
            for name in bindings:
                st.sub(cb, f"{{{NS_SASL_CB}}}channel-binding", {"type": name})

    def send(session: Session, name: str, payload: bytes | None) -> None:
        el = st.element(f"{{{NS_SASL}}}{name}")
        if payload:
            el.text = base64.b64encode(payload).decode()
        session.send(el)

    async def fail(
        session: Session, failure: SaslFailure, mechanism: Mechanism | str | None = None
    ) -> None:
        """Answer with ``failure``; log it (never the payload); count it."""
        session.data.pop(KEY, None)
        el = st.element(f"{{{NS_SASL}}}failure")
        st.sub(el, f"{{{NS_SASL}}}{failure.condition}")
        if failure.text:
            st.sub(el, f"{{{NS_SASL}}}text", text=failure.text)
        session.send(el)
        await authenticator.failed(session, failure, mechanism)

    async def advance(session: Session, mechanism: Mechanism, data: bytes) -> None:
        try:
            step: Step = await mechanism.step(data)
        except SaslFailure as failure:
            await fail(session, failure, mechanism)
            return
        if session.state == "ended":  # it left while its password was hashed (PLAIN)
            module.log.debug("client gone before authentication completed", extra=_tag(session))
            return
        if step.challenge is not None:
            session.data[KEY] = mechanism
            send(session, "challenge", step.challenge)
            return
        session.data.pop(KEY, None)
        assert step.username is not None
        send(session, "success", step.success or b"")
        authenticator.succeeded(session, mechanism, step.username)
        session.restart_stream()  # RFC 6120 §6.4.6: the client opens a new stream next
        await module.fire(AUTHENTICATION_SUCCESS, SessionEvent(session))

    @module.hook(f"stanza/{NS_SASL}:auth")
    async def auth(event: StanzaEvent) -> bool | None:
        session = event.session
        if session.authenticated:
            return None  # SASL is over: unsupported-stanza-type, as in Prosody
        name = event.stanza.get("mechanism", "")
        if not authenticator.may_authenticate(session):
            await fail(session, SaslFailure("encryption-required"), name)
            return True
        try:
            mechanism = authenticator.mechanism(session, name)
        except SaslFailure as failure:
            await fail(session, failure, name)
            return True
        text = event.stanza.text
        if text is None or not text.strip():
            # No initial response: ask for it with an empty challenge (RFC 6120 §6.4.2).
            session.data[KEY] = mechanism
            send(session, "challenge", None)
            return True
        try:
            data = decode_payload(text)
        except SaslFailure as failure:
            await fail(session, failure, mechanism)
            return True
        await advance(session, mechanism, data)
        return True

    @module.hook(f"stanza/{NS_SASL}:response")
    async def response(event: StanzaEvent) -> bool | None:
        session = event.session
        if session.authenticated:
            return None
        mechanism = session.data.get(KEY)
        if mechanism is None:
            await fail(session, SaslFailure("not-authorized", "Out of order SASL element"))
            return True
        try:
            data = decode_payload(event.stanza.text)
        except SaslFailure as failure:
            await fail(session, failure, mechanism)
            return True
        await advance(session, mechanism, data)
        return True

    @module.hook(f"stanza/{NS_SASL}:abort")
    async def abort(event: StanzaEvent) -> bool | None:
        session = event.session
        if session.authenticated:
            return None
        session.data.pop(KEY, None)
        el = st.element(f"{{{NS_SASL}}}failure")
        st.sub(el, f"{{{NS_SASL}}}aborted")
        session.send(el)
        return True

    return authenticator


def _tag(session: Session) -> dict[str, str]:
    """The connection's log prefix (``c2s<id>``), as its own log lines have it."""
    return {"session": f"c2s{session.id}"}
