"""FAST, Fast Authentication Streamlining Tokens (XEP-0484 0.2), as prosody-modules'
mod_sasl2_fast: a client that logged in once with its password logs in next time with a
token, in one round trip and without any password hashing on either side.

Offered in SASL2's ``<inline/>`` as ``<fast xmlns='urn:xmpp:fast:0'>`` listing the HT
mechanisms this stream allows (``_ht``: ``HT-SHA-256-UNIQ`` on TLS 1.2, ``HT-SHA-256-ENDP``,
``HT-SHA-256-NONE``). A login (with any mechanism) whose ``<authenticate/>`` holds
``<request-token mechanism=…/>`` and a ``<user-agent id=…/>`` gets ``<token expiry=… token=…/>``
in its ``<success/>``: a token bound to that mechanism and to that client installation, valid
``sasl2_fast_token_ttl`` seconds. A token login is an ``<authenticate/>`` with one of those
mechanisms, the same user-agent id and ``<fast/>``; a token older than
``sasl2_fast_token_min_ttl`` gets a successor in the ``<success/>`` (rotation: the old one works
until the new one is used); ``<fast invalidate='true'/>`` voids the token used (no new one
unless asked for). ``<fast count=…/>``, meant for TLS 0-RTT (which is never accepted here),
is checked anyway: a count must be higher than the last one seen with that token, so a replayed
request is refused.

A token that is unknown, bound to another mechanism or client, or replayed fails with
``not-authorized``; an expired one, or one issued before the account's password changed (any
path: in-band, admin, reset invite, CLI), with ``credentials-expired`` (XEP-0484 §7), as Prosody.
Tokens go with the account when it is deleted. Failures count as failed logins (limit_auth).
Tokens are stored hashed (``_tokens``) and cut from the wire log (the ``secret-token:fast-``
prefix and 4 characters are kept). Time is the server's clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

import msgspec

from minixmpp.clock import stamp
from minixmpp.config import PositiveInt
from minixmpp.events import (
    SASL2_AUTHENTICATE,
    SASL2_FEATURES,
    SASL2_SUCCESS,
    USER_PASSWORD_CHANGED,
    InlineFeatures,
    Sasl2Authenticate,
    Sasl2Success,
    UserEvent,
)
from minixmpp.login import Authenticator
from minixmpp.module import Module
from minixmpp.sasl import SaslFailure
from minixmpp.xml import stanza as st

from ._ht import HashedToken, offered
from ._tokens import PREFIX, Tokens

NS_FAST = "urn:xmpp:fast:0"
TOKEN_IN_TEXT = re.compile(rf"({re.escape(PREFIX)}[A-Za-z0-9_-]{{4}})[A-Za-z0-9_-]+")
UNAVAILABLE = "FAST is not available on this stream"  # Prosody's text
MAX_COUNT = 2**63 - 1

Seconds = Annotated[float, msgspec.Meta(gt=0)]


@dataclass
class Options:
    sasl2_fast_token_ttl: Seconds = 86400.0 * 21  # a token's lifetime
    sasl2_fast_token_min_ttl: Annotated[float, msgspec.Meta(ge=0)] = 86400.0  # then rotated
    sasl2_fast_max_tokens: PositiveInt = 64  # client installations with tokens, per account


def parse_count(text: str | None) -> int | None:
    if text is None:
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= 19 and 0 < int(text) <= MAX_COUNT):
        raise SaslFailure("malformed-request", "Invalid FAST count")
    return int(text)


def load(module: Module) -> Tokens:
    module.depends("sasl2")
    authenticator: Authenticator = module.depends("saslauth")
    opts = module.options(Options)
    tokens = Tokens(
        module.open_store("fast_tokens", "map"), module.transaction, module.clock, module.log
    )
    tokens.ttl = opts.sasl2_fast_token_ttl
    tokens.min_ttl = opts.sasl2_fast_token_min_ttl
    tokens.max_clients = opts.sasl2_fast_max_tokens
    module.add_log_secret(TOKEN_IN_TEXT)

    @module.hook(SASL2_FEATURES)
    async def advertise(event: InlineFeatures) -> None:
        if not event.session.secure:  # XEP-0484 §8: only over TLS
            return
        fast = st.sub(event.inline, f"{{{NS_FAST}}}fast")
        for name in offered(event.session.channel_bindings()):
            st.sub(fast, f"{{{NS_FAST}}}mechanism", text=name)

    @module.hook(SASL2_AUTHENTICATE)
    async def choose(event: Sasl2Authenticate) -> None:
        fast = event.request.find(f"{{{NS_FAST}}}fast")
        if fast is None:
            return
        session, agent = event.session, event.user_agent
        if not session.secure or agent is None or not agent.id:
            raise SaslFailure("malformed-request", UNAVAILABLE)
        name = event.request.get("mechanism") or ""
        bindings = session.channel_bindings()
        if name not in offered(bindings):
            raise SaslFailure("invalid-mechanism")
        agent_id = agent.id

        async def verify(exchange: HashedToken, username: str, proof: bytes) -> bytes:
            authenticator.looking_up(session, username)  # a password change voids the login
            return await tokens.verify(exchange, username, proof, agent_id)

        event.mechanism = HashedToken(
            name,
            bindings,
            verify,
            count=parse_count(fast.get("count")),
            invalidate=fast.get("invalidate") in ("1", "true"),
        )

    @module.hook(SASL2_SUCCESS, priority=75)
    async def hand_out(event: Sasl2Success) -> None:
        request = event.request.find(f"{{{NS_FAST}}}request-token")
        exchange = event.mechanism
        if request is not None:
            wanted = request.get("mechanism") or ""
        elif isinstance(exchange, HashedToken) and exchange.rotate:
            wanted = exchange.name
        else:
            return
        session, agent = event.session, event.user_agent
        if agent is None or not agent.id or session.username is None:
            module.log.debug("no FAST token for %s: no user-agent id", session.jid)
            return
        if wanted not in offered(session.channel_bindings()):
            module.log.debug("no FAST token for %s: %r is not offered", session.jid, wanted[:40])
            return
        issued = await tokens.issue(session.username, agent.id, wanted)
        module.log.debug("FAST token for %s (%s)", session.jid, wanted)
        attributes = {"expiry": stamp(issued.expires), "token": issued.token}
        st.sub(event.success, f"{{{NS_FAST}}}token", attributes)

    @module.hook(USER_PASSWORD_CHANGED, priority=1000)  # before its sessions are closed
    async def password_changed(event: UserEvent) -> None:
        if await tokens.revoke(event.username):
            user = f"{event.username}@{module.host}"
            module.log.info("FAST tokens of %s revoked: password changed", user)

    return tokens
