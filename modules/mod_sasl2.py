"""SASL2, the Extensible SASL Profile (XEP-0388 1.0), as prosody-modules' mod_sasl2 does it.

``<authentication xmlns='urn:xmpp:sasl:2'>`` offers the mechanisms RFC 6120 SASL offers on the
same stream (mod_saslauth's, through ``minixmpp.login.Authenticator``: SCRAM-SHA-1/256 and their
-PLUS forms, PLAIN), with an ``<inline/>`` that other modules fill (``advertise-sasl-features``:
Bind 2, FAST). Unlike Prosody's module, it is offered over TLS only, whatever
``c2s_require_encryption`` says (XEP-0388 §5: "SASL2 MUST only be ... offered by Servers after
TLS negotiation"). The channel-binding types are mod_saslauth's XEP-0440 feature, and SCRAM's
downgrade protection (XEP-0474) hashes the mechanisms offered here.

``<authenticate mechanism=…>`` carries an optional ``<initial-response/>`` (none: an empty
``<challenge/>`` asks for it) and ``<user-agent id=…>``; ``<challenge/>``/``<response/>``
follow, ``<abort/>`` ends the attempt with ``<aborted/>``. A failure is ``<failure/>`` with a
RFC 6120 condition and, as Prosody words it, a ``<text/>``; failures are logged, counted and
throttled (mod_limit_auth) as SASL's are. On success the handlers of ``sasl2/c2s/success``
act on their part of the request (see ``minixmpp.events``), then ``<success/>`` goes out with
``<additional-data/>`` (SCRAM's server signature) and ``<authorization-identifier/>`` (the
full JID once bound), immediately followed by the new stream features, with no stream
restart (but after a stream resumption, none: XEP-0198 §7). Whatever is routed to the
session while the handlers run (once Bind 2 has bound it) is held and sent after the features.
"""

from __future__ import annotations

import base64
from typing import Any

from lxml import etree

from minixmpp.errors import StreamError
from minixmpp.events import (
    AUTHENTICATION_SUCCESS,
    SASL2_AUTHENTICATE,
    SASL2_FEATURES,
    SASL2_SUCCESS,
    STREAM_FEATURES,
    InlineFeatures,
    Sasl2Authenticate,
    Sasl2Success,
    SessionEvent,
    StanzaEvent,
    StreamFeatures,
    UserAgent,
)
from minixmpp.login import Authenticator, Exchanges
from minixmpp.module import Module
from minixmpp.sasl import Mechanism, SaslFailure, Step
from minixmpp.session import Session
from minixmpp.xml import stanza as st

NS_SASL2 = "urn:xmpp:sasl:2"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"  # the failure conditions
KEY = "sasl2"  # session.data: the exchange in progress (its <authenticate/> and user agent)
HOLD = 1 << 30  # the priority of the filter that holds output while <success/> is built


def user_agent(request: etree._Element) -> UserAgent | None:
    """The ``<user-agent/>`` of an ``<authenticate/>``, if it has one."""
    agent = request.find(f"{{{NS_SASL2}}}user-agent")
    if agent is None:
        return None
    return UserAgent(
        agent.get("id") or None,
        st.child_text(agent, f"{{{NS_SASL2}}}software"),
        st.child_text(agent, f"{{{NS_SASL2}}}device"),
    )


def load(module: Module) -> None:
    authenticator: Authenticator = module.depends("saslauth")

    @module.hook(STREAM_FEATURES)
    async def features(event: StreamFeatures) -> None:
        session = event.session
        if session.authenticated or not session.secure:
            return
        authentication = st.sub(event.features, f"{{{NS_SASL2}}}authentication")
        for name in authenticator.mechanisms(session):
            st.sub(authentication, f"{{{NS_SASL2}}}mechanism", text=name)
        inline = st.sub(authentication, f"{{{NS_SASL2}}}inline")
        await module.fire(SASL2_FEATURES, InlineFeatures(session, inline))

    async def succeeded(
        session: Session, mechanism: Mechanism, step: Step, context: tuple[Any, UserAgent | None]
    ) -> None:
        assert step.username is not None
        request, agent = context
        authenticator.succeeded(session, mechanism, step.username, profile="SASL2")
        success = st.element(f"{{{NS_SASL2}}}success")
        if step.success:
            st.sub(success, f"{{{NS_SASL2}}}additional-data").text = base64.b64encode(
                step.success
            ).decode()
        await succeed(session, Sasl2Success(session, request, success, mechanism, agent))

    exchanges = Exchanges(authenticator, NS_SASL2, KEY, succeeded, profile="SASL2")

    async def succeed(session: Session, event: Sasl2Success) -> None:
        """The inline features, then ``<success/>``, the stream features, what was held."""
        held: list[etree._Element] = []

        def hold(element: etree._Element) -> None:
            held.append(element)

        session.filters.add(hold, HOLD)
        success = event.success
        try:
            await module.fire(SASL2_SUCCESS, event)
            target = event.session
            features = await target.stream_features()
        except StreamError:
            raise
        except Exception:
            # Authenticated, maybe bound, and <success/> cannot be sent: the stream ends.
            module.log.exception("a SASL2 success handler failed")
            raise StreamError("internal-server-error") from None
        finally:
            session.filters.remove(hold)
        identity = target.jid.full if target.bound else f"{target.username}@{target.host}"
        position = 1 if success.find(f"{{{NS_SASL2}}}additional-data") is not None else 0
        identifier = st.element(f"{{{NS_SASL2}}}authorization-identifier")
        identifier.text = identity
        success.insert(position, identifier)
        target.send(success)
        if not event.resumed:  # XEP-0198 §7: a resumed stream goes on at once, no features
            target.send_features(features)
        for element in held:
            session.send(element)
        for after in event.after:
            await after()
        await module.fire(AUTHENTICATION_SUCCESS, SessionEvent(target))

    @module.hook(f"stanza/{NS_SASL2}:authenticate")
    async def authenticate(event: StanzaEvent) -> bool | None:
        session, request = event.session, event.stanza
        if session.authenticated:
            return None  # XEP-0388 §7.7: a stream error (unsupported-stanza-type)
        session.data.pop(KEY, None)  # a new attempt replaces one in progress
        name = request.get("mechanism") or ""
        if not session.secure:
            await exchanges.fail(session, SaslFailure("encryption-required"), name)
            return True
        agent = user_agent(request)
        try:
            choosing = Sasl2Authenticate(session, request, agent)
            await module.fire(SASL2_AUTHENTICATE, choosing)
            mechanism = choosing.mechanism or authenticator.mechanism(session, name)
        except SaslFailure as failure:
            await exchanges.fail(session, failure, name)
            return True
        initial = request.find(f"{{{NS_SASL2}}}initial-response")
        payload = None if initial is None else initial.text or ""
        await exchanges.start(session, mechanism, payload, (request, agent))
        return True

    module.hook(f"stanza/{NS_SASL2}:response")(exchanges.response)
    module.hook(f"stanza/{NS_SASL2}:abort")(exchanges.abort)
