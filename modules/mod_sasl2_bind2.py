"""Bind 2 (XEP-0386 1.1): resource binding inside SASL2, as prosody-modules' mod_sasl2_bind2.

Advertised in SASL2's ``<inline/>`` as ``<bind xmlns='urn:xmpp:bind:0'>`` with an ``<inline/>``
of ``<feature var=…/>``s, the features other modules can enable at bind time
(``advertise-bind-features``: carbons, CSI, stream management).

A ``<bind/>`` in the ``<authenticate/>`` is acted on once authentication has succeeded, unless a
stream resumption took its place (``Sasl2Success.resumed``). The server chooses the resource:
with a ``<tag/>``, Prosody's ``<tag>~<12 characters>``, the characters being the base64 of the
first 9 bytes of the SHA-1 of the user-agent id, so the same client installation gets the same
resource every time (and a new session of it replaces its old one) while the id itself is not
shown; with a tag and no id, the tag and random characters; without a tag (or with one that is
not a valid resource), a random resource as RFC 6120 binding gives. Binding follows mod_bind's
rules (``max_resources``, a password changed meanwhile), through the same code.

Once bound, ``enable-bind-features`` lets each module enable what the client asked for in its
``<bind/>`` and add its answer to ``<bound/>``, which goes into the SASL2 ``<success/>``. A
refused bind puts Prosody's ``<failed xmlns='urn:xmpp:bind:0'><error …/></failed>`` there
instead, and the client may still bind the RFC 6120 way (offered in the features that follow).

With mod_mam, ``<bound/>`` holds the archive's ``<metadata/>`` (mod_mam adds it). Unlike XEP-0386
§3.2 asks, and as prosody-modules does, offline messages are not cleared at bind time: they are
delivered at the first available presence as usual (the archive is off by default, and a client
that does not page it would lose them).
"""

from __future__ import annotations

import base64
import hashlib
import secrets

from minixmpp.errors import StanzaError
from minixmpp.events import (
    BIND2_ENABLE,
    BIND2_FEATURES,
    SASL2_FEATURES,
    SASL2_SUCCESS,
    Bind2Features,
    Bind2Request,
    InlineFeatures,
    Sasl2Success,
    UserAgent,
)
from minixmpp.jid import InvalidJID, resourceprep
from minixmpp.login import Binder
from minixmpp.module import Module
from minixmpp.xml import stanza as st

NS_BIND2 = "urn:xmpp:bind:0"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def resource_for(tag: str | None, agent: UserAgent | None) -> str | None:
    """The resource a Bind 2 request gets (None: a random one; see the module docstring)."""
    if not tag:
        return None
    if agent is not None and agent.id:
        suffix = base64.b64encode(hashlib.sha1(agent.id.encode()).digest()[:9]).decode()  # noqa: S324
    else:
        suffix = secrets.token_urlsafe(9)
    try:
        return resourceprep(f"{tag}~{suffix}", strict=True)
    except InvalidJID:
        return None


def load(module: Module) -> None:
    module.depends("sasl2")
    binder: Binder = module.depends("bind")

    @module.hook(SASL2_FEATURES, priority=1)
    async def advertise(event: InlineFeatures) -> None:
        collected = Bind2Features(event.session)
        await module.fire(BIND2_FEATURES, collected)
        inline = st.sub(st.sub(event.inline, f"{{{NS_BIND2}}}bind"), f"{{{NS_BIND2}}}inline")
        for var in collected.features:
            st.sub(inline, f"{{{NS_BIND2}}}feature", {"var": var})

    @module.hook(SASL2_SUCCESS, priority=100)
    async def bind(event: Sasl2Success) -> None:
        request = event.request.find(f"{{{NS_BIND2}}}bind")
        if request is None or event.resumed:
            return
        session = event.session
        tag = st.child_text(request, f"{{{NS_BIND2}}}tag")
        try:
            await binder.bind(session, resource_for(tag, event.user_agent))
        except StanzaError as error:
            module.log.debug("Bind 2 refused for %s: %s", session.jid, error.condition)
            failed = st.sub(event.success, f"{{{NS_BIND2}}}failed")
            # Prosody's shape: <error/> in the namespace of <failed/>
            element = st.sub(failed, f"{{{NS_BIND2}}}error", {"type": error.type})
            st.sub(element, f"{{{NS_STANZAS}}}{error.condition}")
            if error.text:
                st.sub(element, f"{{{NS_STANZAS}}}text", text=error.text)
            return
        bound = st.element(f"{{{NS_BIND2}}}bound")
        await module.fire(BIND2_ENABLE, Bind2Request(session, request, bound, event))
        event.success.append(bound)
