"""What every way of logging in shares: the bookkeeping of a SASL attempt, whichever profile
carries it (RFC 6120 SASL in mod_saslauth, XEP-0388 SASL2 in mod_sasl2), and resource binding
(RFC 6120 in mod_bind, XEP-0386 Bind 2 in mod_sasl2_bind2).

``Exchanges`` is a profile's wire around one exchange: challenges, responses, ``<abort/>`` and
failures in the profile's namespace (the condition in RFC 6120's), the mechanism in progress in
``session.data``; the profile says what a success sends.

Each protocol writes its own elements; the rules live here once. ``Authenticator`` (mod_saslauth
makes it and returns it as its API): which mechanisms a session is offered, the credentials
lookup that remembers the account's epoch (``Users.epoch``: a password change or a deletion
after it voids the login), how a failure is logged (never its payload), announced
(``authentication-failure``: mod_limit_auth counts it) and counted (``c2s_max_auth_failures``
failures close the stream), and what a success does to the session. ``Binder`` (mod_bind's API):
a resource bound to a session, with the epoch check, ``max_resources``, the replacement of a
session holding the same full JID and ``resource-bind``.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from minixmpp.auth_kinds import Anonymous, AnyPassword
from minixmpp.errors import StanzaError, StreamError
from minixmpp.events import AUTHENTICATION_FAILURE, RESOURCE_BIND, SessionEvent
from minixmpp.jid import JID
from minixmpp.sasl import (
    Mechanism,
    SaslFailure,
    Step,
    decode_payload,
    make_mechanism,
    offered_mechanisms,
)
from minixmpp.xml import stanza as st

if TYPE_CHECKING:
    from minixmpp.accounts import Credentials
    from minixmpp.events import StanzaEvent
    from minixmpp.module import Module
    from minixmpp.session import Session

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
EPOCH = "saslauth_epoch"  # session.data: Users.epoch when the credentials were looked up
FAILURES = "auth_failures"  # session.data: failed attempts on this connection
# failures that count towards c2s_max_auth_failures
COUNTED = frozenset(
    {"not-authorized", "invalid-authzid", "malformed-request", "credentials-expired"}
)


class Authenticator:
    """One host's SASL rules (see the module docstring)."""

    def __init__(
        self, module: Module, kind: str = "internal_hashed", *, plain_in_clear: bool = False
    ) -> None:
        self._module = module
        self.require_encryption = module.host_options.c2s_require_encryption
        self.kind = kind  # the host's ``authentication`` (minixmpp/auth_kinds.py)
        self.plain_in_clear = plain_in_clear  # allow_unencrypted_plain_auth

    def may_authenticate(self, session: Session) -> bool:
        """Whether authentication is offered on this stream at all."""
        return session.secure or not self.require_encryption

    def mechanisms(self, session: Session) -> list[str]:
        """The password mechanisms offered to ``session``, strongest first."""
        plain_ok = session.secure or self.plain_in_clear
        if self.kind == "anonymous":
            return ["ANONYMOUS"]
        if self.kind == "insecure":
            return ["PLAIN"] if plain_ok else []
        names = offered_mechanisms(secure=session.secure, bindings=session.channel_bindings())
        if plain_ok and "PLAIN" not in names:
            names.append("PLAIN")
        return names

    def mechanism(self, session: Session, name: str) -> Mechanism:
        """A new exchange of mechanism ``name``; SaslFailure if it is not offered here."""
        module = self._module
        if name not in self.mechanisms(session):
            raise SaslFailure("invalid-mechanism")
        users = module.users
        if self.kind == "anonymous":
            return Anonymous(partial(users.create, source="anonymous"))
        if self.kind == "insecure":
            return AnyPassword(module.host, users.exists, partial(users.create, source="insecure"))
        return make_mechanism(
            name,
            host=module.host,
            lookup=partial(self.lookup, session),
            bindings=session.channel_bindings(),
            secure=session.secure or self.plain_in_clear,
            secret=module.secret,
            # what unknown users show: new accounts' count (read here: a reload may change it)
            iterations=module.server_options.default_iteration_count,
        )

    def looking_up(self, session: Session, username: str) -> None:
        """Credentials of ``username`` are about to be read (a password's, a token's): a
        change of them from now on voids this login (``Users.epoch``)."""
        session.data[EPOCH] = self._module.users.epoch(username)

    async def lookup(self, session: Session, username: str) -> Credentials | None:
        self.looking_up(session, username)
        return await self._module.users.credentials(username)

    async def failed(
        self,
        session: Session,
        failure: SaslFailure,
        mechanism: Mechanism | str | None = None,
        *,
        profile: str = "",
    ) -> None:
        """Log ``failure`` (never the payload), fire ``authentication-failure`` and count it:
        after ``c2s_max_auth_failures`` the stream is closed. The caller sends the reply
        first, in its own profile's elements (``profile``: "SASL2"; none for RFC 6120's)."""
        module = self._module
        session.data.pop(EPOCH, None)
        if isinstance(mechanism, Mechanism):
            name, username = mechanism.name, mechanism.username
        else:  # not one we offer here: the client's text, quoted and cut
            name, username = (repr(mechanism[:40]) if mechanism else "no mechanism"), None
        module.log.info(
            "authentication failed from %s%s (%s%s): %s%s",
            session.ip,
            f" as {username}@{module.host}" if username else "",
            f"{profile} " if profile else "",
            name,
            failure.condition,
            f" ({failure.text})" if failure.text else "",
            extra={"session": f"c2s{session.id}"},
        )
        await module.fire(AUTHENTICATION_FAILURE, SessionEvent(session))
        if failure.condition in COUNTED:
            failures = session.data.get(FAILURES, 0) + 1
            session.data[FAILURES] = failures
            if failures >= module.server_options.c2s_max_auth_failures:
                session.close("policy-violation", "Too many failed authentication attempts")

    def gone(self, session: Session) -> None:
        self._module.log.debug(
            "client gone before authentication completed", extra={"session": f"c2s{session.id}"}
        )

    def succeeded(
        self, session: Session, mechanism: Mechanism, username: str, *, profile: str = ""
    ) -> None:
        """The session is now ``username``'s (with the epoch its credentials were read at)."""
        module = self._module
        module.log.info(
            "c2s%d authenticated as %s@%s (%s%s)",
            session.id,
            username,
            module.host,
            f"{profile} " if profile else "",
            mechanism.name,
        )
        epoch = session.data.pop(EPOCH, None)
        users = module.users
        session.authenticate(username, users.epoch(username) if epoch is None else epoch)


class Exchanges:
    """A SASL profile's elements around an exchange (see the module docstring): ``ns`` is the
    profile's namespace, ``key`` where the exchange in progress is kept, ``succeeded`` what
    the profile does once the mechanism has succeeded (it calls ``Authenticator.succeeded``)
    with the ``context`` its ``start`` was given (SASL2: the request)."""

    def __init__(
        self,
        authenticator: Authenticator,
        ns: str,
        key: str,
        succeeded: Callable[[Session, Mechanism, Step, Any], Awaitable[None]],
        *,
        profile: str = "",
    ) -> None:
        self.authenticator = authenticator
        self.ns = ns
        self.key = key
        self.succeeded = succeeded
        self.profile = profile
        self.sasl2 = bool(profile)  # SASL2's payloads: "=" is no empty one

    def send(self, session: Session, name: str, payload: bytes | None) -> None:
        el = st.element(f"{{{self.ns}}}{name}")
        if payload:
            el.text = base64.b64encode(payload).decode()
        session.send(el)

    async def fail(
        self, session: Session, failure: SaslFailure, mechanism: Mechanism | str | None = None
    ) -> None:
        """Answer with ``failure``; log it (never the payload); count it."""
        session.data.pop(self.key, None)
        el = st.element(f"{{{self.ns}}}failure")
        st.sub(el, f"{{{NS_SASL}}}{failure.condition}")
        if failure.text:
            st.sub(el, f"{{{self.ns}}}text", text=failure.text)
        session.send(el)
        await self.authenticator.failed(session, failure, mechanism, profile=self.profile)

    async def start(
        self, session: Session, mechanism: Mechanism, payload: str | None, context: Any = None
    ) -> None:
        """The first step, with the client's initial response (None: it sent none, and an
        empty challenge asks for it, RFC 6120 §6.4.2)."""
        if payload is None:
            session.data[self.key] = (mechanism, context)
            self.send(session, "challenge", None)
            return
        await self._step(session, mechanism, context, payload)

    async def _step(
        self, session: Session, mechanism: Mechanism, context: Any, payload: str | None
    ) -> None:
        try:
            step = await mechanism.step(decode_payload(payload, sasl2=self.sasl2))
        except SaslFailure as failure:
            await self.fail(session, failure, mechanism)
            return
        if session.state == "ended":  # it left while its password was hashed (PLAIN)
            self.authenticator.gone(session)
            return
        if step.challenge is not None:
            session.data[self.key] = (mechanism, context)
            self.send(session, "challenge", step.challenge)
            return
        session.data.pop(self.key, None)
        assert step.username is not None
        await self.succeeded(session, mechanism, step, context)

    async def response(self, event: StanzaEvent) -> bool | None:
        """A ``<response/>``: the next step of the exchange in progress."""
        session = event.session
        if session.authenticated:
            return None  # SASL is over: unsupported-stanza-type, as in Prosody
        exchange = session.data.get(self.key)
        if exchange is None:
            await self.fail(session, SaslFailure("not-authorized", "Out of order SASL element"))
            return True
        mechanism, context = exchange
        await self._step(session, mechanism, context, event.stanza.text)
        return True

    async def abort(self, event: StanzaEvent) -> bool | None:
        """``<abort/>``: the exchange ends with ``<aborted/>`` (not counted as a failure)."""
        session = event.session
        if session.authenticated:
            return None
        session.data.pop(self.key, None)
        el = st.element(f"{{{self.ns}}}failure")
        st.sub(el, f"{{{NS_SASL}}}aborted")
        session.send(el)
        return True


class Binder:
    """One host's resource binding (see the module docstring)."""

    def __init__(self, module: Module) -> None:
        self._module = module

    async def bind(self, session: Session, resource: str | None) -> JID:
        """Bind ``resource`` (prepared already; None: a random one, as Prosody) to the
        authenticated ``session`` and make it reachable; its full JID. StanzaError when the
        account's credentials changed since the login (the stream is closed too) or it has
        ``max_resources`` already."""
        module = self._module
        username = session.username
        if not session.authenticated or username is None:
            raise StanzaError("not-authorized")
        if session.bound:
            raise StanzaError("not-allowed")
        if resource is None:
            resource = secrets.token_urlsafe(9)
        if module.users.epoch(username) != session.auth_epoch:
            # the password changed or the account went after this login checked it
            if await module.users.exists(username):
                session.close("reset", "Password changed")
            else:
                session.close("not-authorized", "Account deleted")
            raise StanzaError("not-authorized")
        jid = JID(username, module.host, resource)
        limit = module.host_options.max_resources  # read here: a reload may change it
        if module.session(jid.full) is None and len(module.sessions_of(username)) >= limit:
            raise StanzaError(
                "resource-constraint", f"Resource limit reached; only {limit} resources allowed"
            )
        session.set_bound(resource)
        old = module.register_session(session)
        if old is not None and old is not session:
            old.close("conflict", "Replaced by new connection")
            await old.unbound()
        try:
            await module.fire(RESOURCE_BIND, SessionEvent(session))
        except Exception:
            # Half-bound: the client cannot be told "not bound", so the stream ends.
            module.log.exception("a resource-bind handler failed")
            raise StreamError("internal-server-error") from None
        return jid
