"""SASL authentication (RFC 6120 §6): SCRAM-SHA-1/256(-PLUS) and PLAIN, XEP-0440 advertisement.

Without TLS, and with ``c2s_require_encryption`` (the default), no mechanism is offered and
``<auth/>`` fails with ``encryption-required``. PLAIN is only ever offered over TLS. After
``c2s_max_auth_failures`` failures on one connection the stream is closed; failures per address,
across connections, are throttled by mod_limit_auth.
"""

from __future__ import annotations

import base64
from functools import partial

from minixmpp.accounts import Credentials
from minixmpp.events import (
    AUTHENTICATION_FAILURE,
    AUTHENTICATION_SUCCESS,
    STREAM_FEATURES,
    SessionEvent,
    StanzaEvent,
    StreamFeatures,
)
from minixmpp.module import Module
from minixmpp.sasl import (
    Mechanism,
    SaslFailure,
    Step,
    decode_payload,
    make_mechanism,
    offered_mechanisms,
)
from minixmpp.session import Session
from minixmpp.xml import stanza as st

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_SASL_CB = "urn:xmpp:sasl-cb:0"
KEY = "saslauth"  # session.data key: the mechanism in progress
EPOCH = "saslauth_epoch"  # session.data key: Users.epoch when the credentials were looked up


def load(module: Module) -> None:
    require_encryption = module.host_options.c2s_require_encryption
    users = module.users

    async def lookup(session: Session, username: str) -> Credentials | None:
        session.data[EPOCH] = users.epoch(username)  # before: a change meanwhile is noticed
        return await users.credentials(username)

    def may_authenticate(session: Session) -> bool:
        return session.secure or not require_encryption

    @module.hook(STREAM_FEATURES)
    async def features(event: StreamFeatures) -> None:
        session = event.session
        if session.authenticated or not may_authenticate(session):
            return
        bindings = session.channel_bindings()
        mechanisms = st.sub(event.features, f"{{{NS_SASL}}}mechanisms")
        for name in offered_mechanisms(secure=session.secure, bindings=bindings):
            st.sub(mechanisms, f"{{{NS_SASL}}}mechanism", text=name)
        if bindings:
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
        if isinstance(mechanism, Mechanism):
            name, username = mechanism.name, mechanism.username
        else:  # not one we offer here: the client's text, quoted and cut
            name, username = (repr(mechanism[:40]) if mechanism else "no mechanism"), None
        module.log.info(
            "authentication failed from %s%s (%s): %s%s",
            session.ip,
            f" as {username}@{module.host}" if username else "",
            name,
            failure.condition,
            f" ({failure.text})" if failure.text else "",
            extra=_tag(session),
        )
        el = st.element(f"{{{NS_SASL}}}failure")
        st.sub(el, f"{{{NS_SASL}}}{failure.condition}")
        if failure.text:
            st.sub(el, f"{{{NS_SASL}}}text", text=failure.text)
        session.send(el)
        await module.fire(AUTHENTICATION_FAILURE, SessionEvent(session))
        if failure.condition in ("not-authorized", "invalid-authzid", "malformed-request"):
            failures = session.data.get("auth_failures", 0) + 1
            session.data["auth_failures"] = failures
            if failures >= module.server_options.c2s_max_auth_failures:
                session.close("policy-violation", "Too many failed authentication attempts")

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
        module.log.info(
            "c2s%d authenticated as %s@%s (%s)",
            session.id,
            step.username,
            module.host,
            mechanism.name,
        )
        send(session, "success", step.success or b"")
        epoch = session.data.pop(EPOCH, None)
        session.authenticate(step.username, users.epoch(step.username) if epoch is None else epoch)
        session.restart_stream()  # RFC 6120 §6.4.6: the client opens a new stream next
        await module.fire(AUTHENTICATION_SUCCESS, SessionEvent(session))

    @module.hook(f"stanza/{NS_SASL}:auth")
    async def auth(event: StanzaEvent) -> bool | None:
        session = event.session
        if session.authenticated:
            return None  # SASL is over: unsupported-stanza-type, as in Prosody
        name = event.stanza.get("mechanism", "")
        if not may_authenticate(session):
            await fail(session, SaslFailure("encryption-required"), name)
            return True
        try:
            mechanism = make_mechanism(
                name,
                host=module.host,
                lookup=partial(lookup, session),
                bindings=session.channel_bindings(),
                secure=session.secure,
                secret=module.secret,
                # what unknown users show: new accounts' count (read here: a reload may change it)
                iterations=module.server_options.default_iteration_count,
            )
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


def _tag(session: Session) -> dict[str, str]:
    """The connection's log prefix (``c2s<id>``), as its own log lines have it."""
    return {"session": f"c2s{session.id}"}
