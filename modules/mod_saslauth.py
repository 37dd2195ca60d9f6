"""SASL authentication (RFC 6120 §6): SCRAM-SHA-1/256(-PLUS) and PLAIN, XEP-0440 advertisement.

Without TLS, and with ``c2s_require_encryption`` (the default), no mechanism is offered and
``<auth/>`` fails with ``encryption-required``. PLAIN is offered over TLS only, unless
``allow_unencrypted_plain_auth``. A host's ``authentication`` may be ``anonymous`` (SASL
ANONYMOUS, XEP-0175) or ``insecure`` (any password): see minixmpp/auth_kinds.py. After
``c2s_max_auth_failures`` failures on one connection the stream is closed; failures per address,
across connections, are throttled by mod_limit_auth.
"""

from __future__ import annotations

from dataclasses import dataclass

from minixmpp.auth_kinds import KINDS
from minixmpp.config import ConfigError
from minixmpp.events import (
    AUTHENTICATION_SUCCESS,
    RESOURCE_UNBIND,
    SERVER_STARTED,
    STREAM_FEATURES,
    ResourceUnbind,
    ServerEvent,
    SessionEvent,
    StanzaEvent,
    StreamFeatures,
)
from minixmpp.login import Authenticator, Exchanges
from minixmpp.module import Module
from minixmpp.sasl import Mechanism, SaslFailure, Step
from minixmpp.session import Session
from minixmpp.xml import stanza as st

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_SASL_CB = "urn:xmpp:sasl-cb:0"
KEY = "saslauth"  # session.data key: the mechanism in progress


@dataclass
class Options:
    authentication: str = "internal_hashed"  # or "anonymous", "insecure": auth_kinds.py
    allow_unencrypted_plain_auth: bool = False  # PLAIN without TLS (c2s_require_encryption off)


def load(module: Module) -> Authenticator:
    """What this returns is shared with SASL2 (mod_sasl2): the same mechanisms and rules."""
    opts = module.options(Options)
    if opts.authentication not in KINDS:
        raise ConfigError(f"{module.name}: authentication must be one of {', '.join(KINDS)}")
    authenticator = Authenticator(
        module, opts.authentication, plain_in_clear=opts.allow_unencrypted_plain_auth
    )
    if opts.authentication == "anonymous":
        _anonymous_accounts_go(module)

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

    async def succeeded(session: Session, mechanism: Mechanism, step: Step, _: object) -> None:
        assert step.username is not None
        exchanges.send(session, "success", step.success or b"")
        authenticator.succeeded(session, mechanism, step.username)
        session.restart_stream()  # RFC 6120 §6.4.6: the client opens a new stream next
        await module.fire(AUTHENTICATION_SUCCESS, SessionEvent(session))

    exchanges = Exchanges(authenticator, NS_SASL, KEY, succeeded)

    @module.hook(f"stanza/{NS_SASL}:auth")
    async def auth(event: StanzaEvent) -> bool | None:
        session = event.session
        if session.authenticated:
            return None  # SASL is over: unsupported-stanza-type, as in Prosody
        name = event.stanza.get("mechanism", "")
        if not authenticator.may_authenticate(session):
            await exchanges.fail(session, SaslFailure("encryption-required"), name)
            return True
        try:
            mechanism = authenticator.mechanism(session, name)
        except SaslFailure as failure:
            await exchanges.fail(session, failure, name)
            return True
        text = event.stanza.text
        await exchanges.start(session, mechanism, text if text and text.strip() else None)
        return True

    module.hook(f"stanza/{NS_SASL}:response")(exchanges.response)
    module.hook(f"stanza/{NS_SASL}:abort")(exchanges.abort)
    return authenticator


def _anonymous_accounts_go(module: Module) -> None:
    """An anonymous account lives as long as its sessions (Prosody's mod_auth_anonymous):
    deleted, with its data, when its last session ends, and any left at start."""
    users = module.users

    @module.hook(RESOURCE_UNBIND, priority=-100)
    async def unbound(event: ResourceUnbind) -> None:
        username = event.session.username
        if username is not None and not module.sessions_of(username):
            await users.delete(username, source="anonymous")

    @module.hook(SERVER_STARTED)
    async def started(_event: ServerEvent) -> None:
        for username in await users.list():
            await users.delete(username, source="anonymous")
