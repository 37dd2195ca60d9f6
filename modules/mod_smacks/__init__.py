"""Stream Management (XEP-0198 1.6, ``urn:xmpp:sm:3``), Prosody's mod_smacks and its options.

Once authenticated a client is offered ``<sm xmlns='urn:xmpp:sm:3'/>``; after binding it may
``<enable/>`` it (``resume='true'``: resumably). In a SASL2 login (XEP-0198 §7) it may do both
inline: ``<resume/>`` in ``<authenticate/>`` (``<resumed/>`` or ``<failed/>`` in
``<success/>``) and ``<enable/>`` in Bind 2's ``<bind/>`` (the answer in ``<bound/>``). Both
sides then count the stanzas they handle (``<r/>`` asks, ``<a h='…'/>`` answers; 32-bit,
wrapping). The server asks when more than
``smacks_max_unacked_stanzas`` stanzas wait for an answer (``smacks_max_inactive_unacked_stanzas``
while the client says it is inactive, XEP-0352), and when the client has been silent for
``c2s_idle_timeout`` (a client that does not answer that is dropped; a resumable session then
hibernates). What the client has not acknowledged is kept (up to ``smacks_max_queue_size``
stanzas and ``smacks_max_queue_bytes``);
on ``<resume/>`` it is sent again (_smacks.py), and when the session ends unresumed it is
stored offline or bounced, never dropped unseen (_unacked.py).

Errors are Prosody 0.12's: ``<failed/>`` with ``unexpected-request`` (enabled twice, or before
binding; a ``<resume/>`` after binding), ``service-unavailable`` (not authenticated),
``item-not-found`` (an unknown or expired SM-ID, or another user's: with ``h`` when it expired);
an ``<a/>`` without a valid ``h`` is the stream error ``invalid-xml``, one acknowledging more
than was sent (or less than before) ``undefined-condition`` (with XEP-0198 1.6's
``<handled-count-too-high/>``). Where Prosody is lax, minixmpp is stricter and says so:
``<resume/>`` with a count the queue cannot take answers ``<failed h='…'>`` with
``undefined-condition`` and leaves the stream open (Prosody 0.12 also closed the new stream;
Prosody 13 answered the same but left the old session hibernating for ever), and ends that old
session if it was hibernating, its queue stored or bounced; one without ``h`` or ``previd`` is
``bad-request`` (Prosody failed with a traceback); a queue over its limit ends the session at
once, with Prosody's ``resource-constraint`` (Prosody silently dropped the oldest stanzas and
refused the resumption later); ``max`` says whole seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import msgspec

from minixmpp.config import NonNegativeInt, PositiveInt
from minixmpp.errors import StreamError
from minixmpp.events import (
    BIND2_ENABLE,
    BIND2_FEATURES,
    C2S_READ_TIMEOUT,
    CONNECTION_LOST,
    RESOURCE_UNBIND,
    SASL2_FEATURES,
    SASL2_SUCCESS,
    SERVER_STOPPING,
    STREAM_FEATURES,
    Bind2Features,
    Bind2Request,
    ConnectionLost,
    InlineFeatures,
    ResourceUnbind,
    Sasl2Success,
    ServerEvent,
    SessionEvent,
    StanzaEvent,
    StreamFeatures,
)
from minixmpp.module import Module
from minixmpp.xml import stanza as st

from ._smacks import Resumption, Smacks
from ._state import KEY, NS_SM, SmState, parse_h

__all__ = ["NS_SM", "Options", "Resumption", "Smacks"]

Seconds = Annotated[float, msgspec.Meta(ge=0)]


@dataclass
class Options:
    smacks_hibernation_time: Seconds = 600  # 0: no resumption is offered
    smacks_max_unacked_stanzas: NonNegativeInt = 0  # more than this unacknowledged: <r/>
    smacks_max_inactive_unacked_stanzas: NonNegativeInt = 256  # the same while CSI-inactive
    smacks_max_queue_size: PositiveInt = 500
    # minixmpp's: the bytes those may hold (the stanzas as sent), as offline_max_bytes
    smacks_max_queue_bytes: PositiveInt = 10 * 1024 * 1024
    smacks_max_hibernated_sessions: PositiveInt = 10  # per user (prosody-modules' option)
    smacks_max_old_sessions: NonNegativeInt = 10  # expired counters kept per user
    # Accepted so that a Prosody configuration loads; no effect here: there is no s2s, and no
    # push module to tell that an acknowledgement is late.
    smacks_max_ack_delay: Seconds = 30
    smacks_enabled_s2s: bool = True
    smacks_s2s_resend: bool = False


def _state(event: StanzaEvent) -> SmState | None:
    state: SmState | None = event.session.data.get(KEY)
    return state


def load(module: Module) -> Smacks:
    opts = module.options(Options)
    smacks = Smacks(module, opts)
    module.forget_on_reset(*smacks.in_memory())  # the test harness's reset

    @module.hook(STREAM_FEATURES)
    async def features(event: StreamFeatures) -> None:
        if event.session.authenticated and KEY not in event.session.data:
            st.sub(event.features, f"{{{NS_SM}}}sm")

    @module.hook(f"stanza/{NS_SM}:enable")
    async def enable(event: StanzaEvent) -> bool:
        resume = event.stanza.get("resume") in ("true", "1")
        event.session.send(smacks.enable(event.session, resume))
        return True

    @module.hook(f"stanza/{NS_SM}:resume")
    async def resume(event: StanzaEvent) -> bool:
        stanza = event.stanza
        outcome = await smacks.resume(event.session, stanza.get("previd"), stanza.get("h"))
        if outcome.session is None:
            event.session.send(outcome.element)
            return True
        outcome.session.send(outcome.element)
        await outcome.finish()
        return True

    # -- inline in a SASL2 login (XEP-0198 §7): resumption in <authenticate/>, enabling in
    # Bind 2's <bind/>; without those modules these never fire

    @module.hook(SASL2_FEATURES)
    async def offer_resumption(event: InlineFeatures) -> None:
        st.sub(event.inline, f"{{{NS_SM}}}sm")

    @module.hook(BIND2_FEATURES)
    async def offer_enabling(event: Bind2Features) -> None:
        event.features.append(NS_SM)

    @module.hook(SASL2_SUCCESS, priority=110)  # before Bind 2, which binds nothing if resumed
    async def resume_inline(event: Sasl2Success) -> None:
        request = event.request.find(f"{{{NS_SM}}}resume")
        if request is None:
            return
        outcome = await smacks.resume(event.session, request.get("previd"), request.get("h"))
        event.success.append(outcome.element)
        if outcome.session is not None:
            event.resumed = True
            event.session = outcome.session
            event.after.append(outcome.finish)  # the queue once <success/> is out

    @module.hook(BIND2_ENABLE)
    async def enable_inline(event: Bind2Request) -> None:
        request = event.request.find(f"{{{NS_SM}}}enable")
        if request is not None:
            resume = request.get("resume") in ("true", "1")
            event.bound.append(smacks.enable(event.session, resume))

    @module.hook(f"stanza/{NS_SM}:r")
    async def request(event: StanzaEvent) -> bool | None:
        state = _state(event)
        if state is None:
            return None  # unsupported-stanza-type, as Prosody
        event.session.send(st.element(f"{{{NS_SM}}}a", {"h": str(state.inbound)}))
        if state.should_request():  # ours rides along (Prosody's piggyback)
            state.request_ack()
        return True

    @module.hook(f"stanza/{NS_SM}:a")
    async def answer(event: StanzaEvent) -> bool | None:
        state = _state(event)
        if state is None:
            return None
        state.awaiting_ack = False
        h = parse_h(event.stanza.get("h"))
        if h is None:
            raise StreamError("invalid-xml", "Missing or invalid 'h' attribute")
        error = state.check(h)
        if error is not None:
            module.log.info("%s: %s (h=%d, sent %d)", event.session.jid, error, h, state.sent)
            raise StreamError("undefined-condition", error.text, error.app)
        state.ack(h)
        if state.should_request():
            state.request_ack()
        return True

    @module.hook(C2S_READ_TIMEOUT)
    async def silent(event: SessionEvent) -> bool | None:
        state: SmState | None = event.session.data.get(KEY)
        if state is None or state.dead:
            return None
        if state.awaiting_ack:  # asked, and no answer for a whole period: gone
            return False if state.id is not None else None
        state.request_ack()  # Prosody asks, and waits another period
        return True

    @module.hook(CONNECTION_LOST)
    async def lost(event: ConnectionLost) -> bool | None:
        return True if smacks.hibernate(event.session) else None

    @module.hook(RESOURCE_UNBIND)
    async def unbound(event: ResourceUnbind) -> None:
        await smacks.ended(event.session)

    @module.hook(SERVER_STOPPING)
    async def stopping(_event: ServerEvent) -> None:
        await smacks.shutdown()

    return smacks
