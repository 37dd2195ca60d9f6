"""In-band registration (XEP-0077) and account management, as Prosody's mod_register,
mod_register_ibr and mod_user_account_management do it.

With ``allow_registration``, an unauthenticated stream (over TLS when encryption is required)
is offered ``<register xmlns='http://jabber.org/features/iq-register'/>``, gets the form, and
may create an account. A set is processed in Prosody's order: encryption, ``<remove/>``
(``registration-required``), the data form or the legacy children (required values), the
username (strict nodeprep), ``user-registering`` (which mod_register_limits, password policies
and invites may refuse), an existing account (``conflict``), then the account and its
``account_details`` in one transaction, the empty result and ``user-registered``.

Always, for logged-in users: a get says ``<registered/>``; a set with ``<username/>`` and
``<password/>`` changes the password (the user's other sessions are closed with ``reset``); a
set with ``<remove/>`` deletes the account and everything it owns (the result first, then
every session closes with ``not-authorized`` "Account deleted").

Files: ``_forms.py`` (the form: extra fields, building it, reading a submission).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from minixmpp.accounts import BadPassword
from minixmpp.config import PositiveInt
from minixmpp.errors import StanzaError, StreamError
from minixmpp.events import (
    STREAM_FEATURES,
    USER_DELETED,
    USER_DEREGISTERED,
    USER_PASSWORD_RESET,
    USER_REGISTERED,
    USER_REGISTERING,
    Registration,
    StanzaEvent,
    StreamFeatures,
    UserEvent,
)
from minixmpp.jid import InvalidJID, nodeprep
from minixmpp.module import Module
from minixmpp.session import Session
from minixmpp.xml import stanza as st

from ._forms import BASE_FIELDS, NS_REGISTER, QUERY, extra_fields, parse, registration_form

NS_FEATURE = "http://jabber.org/features/iq-register"
REMOVAL_REPLY = "register.removal-reply"  # session.data: the result owed before the close
FAILURES = "register.failures"  # session.data: refused registrations on this stream


@dataclass
class Options:
    registration_title: str = "Creating a new account"
    registration_instructions: str = "Choose a username and password for use with this service."
    # names from KNOWN_FIELDS ("email+": required), or tables {name, type, label, required}
    additional_registration_fields: list[str | dict[str, Any]] = field(default_factory=list)
    registration_compat: bool = True  # account management IQs addressed to the host too
    registration_max_failures: PositiveInt = 5  # refused sets before the stream is closed


class RegisterApi:
    """What other modules see of mod_register: whether new accounts may be made in-band
    (``allow_registration``, or turned on by mod_invites_register for invite-only sign-up), and
    ``create_account``, the one way every front end (XEP-0077, web pages, HTTP APIs) makes an
    account, so that the same gates (invites, IP limits, password policy) apply to all."""

    def __init__(self, module: Module) -> None:
        self._module = module
        self.open = False
        self.require_encryption = module.host_options.c2s_require_encryption
        if module.host_options.allow_registration:
            self.allow()

    def allow(self) -> None:
        if not self.open:
            self.open = True
            self._module.depends("register_limits")

    def may_register(self, session: Session) -> bool:
        """This stream may create an account (open, and over TLS if that is required)."""
        return self.open and (session.secure or not self.require_encryption)

    async def create_account(
        self,
        request: Registration,
        source: str,
        *,
        done: Callable[[], object] | None = None,
    ) -> str:
        """Create the account ``request`` asks for (its username already nodeprepped), in
        Prosody's order: ``user-registering`` (any handler may refuse), an existing account
        (``conflict``, unless the request may reset its password), then the account, its
        details and whatever ``request.in_transaction`` holds, in one transaction, then
        ``user-registered`` (or ``user-password-reset``); ``done`` runs just before that event
        (XEP-0077's result goes out first, as in Prosody). Returns "created" or "reset"; a
        refusal is a StanzaError with Prosody's condition and text."""
        module, users = self._module, self._module.users
        username = request.username
        await module.fire(USER_REGISTERING, request)  # a refusal raises StanzaError
        if await users.exists(username):
            if request.allow_reset != username:
                raise StanzaError("conflict", "The requested username already exists.")
            try:
                reset = await users.set_password(  # a reset (by invite) leaves sessions be
                    username,
                    request.password,
                    source=source,
                    close_sessions=False,
                    within=request.in_transaction,
                )
            except BadPassword as exc:
                raise StanzaError("feature-not-implemented", str(exc), "cancel") from None
            if not reset:
                raise StanzaError("internal-server-error")
            if done is not None:
                done()
            await module.fire(USER_PASSWORD_RESET, request)
            return "reset"
        details: dict[str, Any] = {
            **request.additional,
            "registered": int(self._module.clock.time()),
        }
        try:
            created = await users.create(
                username,
                request.password,
                source=source,
                session=request.session,
                details=details,
                within=request.in_transaction,
            )
        except BadPassword as exc:  # Prosody's reply: its storage's error, as it is
            raise StanzaError("feature-not-implemented", str(exc), "cancel") from None
        if not created:  # someone else took the name meanwhile
            raise StanzaError("conflict", "The requested username already exists.")
        module.log.info("account %s@%s registered (%s)", username, module.host, source)
        if done is not None:
            done()
        event = UserEvent(username, module.host, source, request.session, {"registration": request})
        await module.fire(USER_REGISTERED, event)
        return "created"


def load(module: Module) -> RegisterApi:
    opts = module.options(Options)
    fields = [*BASE_FIELDS, *extra_fields(opts.additional_registration_fields, module.name)]
    form = registration_form(opts, fields)
    api = RegisterApi(module)
    require_encryption = api.require_encryption
    users = module.users
    module.add_feature(NS_REGISTER)
    may_register = api.may_register

    @module.hook(STREAM_FEATURES, priority=10)  # before the SASL mechanisms, as Prosody
    async def features(event: StreamFeatures) -> None:
        if not event.session.authenticated and may_register(event.session):
            st.sub(event.features, f"{{{NS_FEATURE}}}register")

    # -- before authentication: creating an account ----------------------------------------

    @module.hook(f"stanza/iq/{NS_REGISTER}:query")
    async def unauthenticated(event: StanzaEvent) -> bool | None:
        session, stanza = event.session, event.stanza
        if not api.open:
            return None  # nobody handles it: service-unavailable
        if session.authenticated:
            raise StanzaError("service-unavailable")
        if require_encryption and not session.secure:
            raise StanzaError("policy-violation", "Encryption is required")
        if stanza.get("type") == "get":
            reply = st.reply(stanza)
            reply.append(copy.deepcopy(form))
            session.send(reply)
            return True
        try:
            return await register(session, stanza)
        except StanzaError as error:
            failures = session.data.get(FAILURES, 0) + 1
            session.data[FAILURES] = failures
            if failures >= opts.registration_max_failures:
                error.then = StreamError("policy-violation", "Too many failed registrations")
            raise

    async def register(session: Session, stanza: etree._Element) -> bool:
        query = stanza[0]
        if len(query) and etree.QName(query[0]).localname == "remove":
            raise StanzaError("registration-required", type="auth")
        values, problems = parse(query, fields)
        if problems:  # sorted: Prosody's order for the two required fields ("Password" first)
            raise StanzaError("not-acceptable", "\n".join(sorted(problems)))
        try:
            username = nodeprep(values.pop("username"), strict=True)
        except InvalidJID:
            raise StanzaError("not-acceptable", "The requested username is invalid.") from None
        request = Registration(
            username=username,
            password=values.pop("password"),
            host=module.host,
            additional=values,
            ip=session.ip,
            session=session,
        )
        await api.create_account(request, module.name, done=lambda: session.send(st.reply(stanza)))
        return True

    # -- logged in: the account itself -------------------------------------------------------

    async def account(event: StanzaEvent) -> bool | None:
        session, stanza = event.session, event.stanza
        if not session.c2s or session.host != module.host:
            return None  # another host's user asking this one: not an account here
        assert session.username is not None
        if stanza.get("type") == "get":
            reply = st.reply(stanza)
            query = st.sub(reply, QUERY)
            st.sub(query, f"{{{NS_REGISTER}}}registered")
            st.sub(query, f"{{{NS_REGISTER}}}username", text=session.username)
            st.sub(query, f"{{{NS_REGISTER}}}password")
            session.send(reply)
            return True
        query = stanza[0]
        if len(query) and etree.QName(query[0]).localname == "remove":
            await remove(session, stanza)
            return True
        username = query.findtext(f"{{{NS_REGISTER}}}username")
        password = query.findtext(f"{{{NS_REGISTER}}}password")
        if username is None or not password:  # XEP-0077 §3.3: no empty password (Prosody takes it)
            raise StanzaError("bad-request")
        try:
            same = nodeprep(username) == session.username
        except InvalidJID:
            same = False
        if not same:
            raise StanzaError("bad-request")
        try:
            changed = await users.set_password(
                session.username, password, source=module.name, session=session
            )
        except BadPassword as exc:  # Prosody: internal-server-error; say what is wrong
            raise StanzaError("not-acceptable", str(exc)) from None
        if not changed:
            raise StanzaError("internal-server-error")
        session.send(st.reply(stanza))
        return True

    async def remove(session: Session, stanza: etree._Element) -> None:
        username = session.username
        assert username is not None
        session.data[REMOVAL_REPLY] = st.reply(stanza)
        try:
            deleted = await users.delete(username, source=module.name, session=session)
        finally:
            session.data.pop(REMOVAL_REPLY, None)
        if not deleted:
            raise StanzaError("service-unavailable")
        module.log.info("account %s@%s removed by its user", username, module.host)
        await module.fire(USER_DEREGISTERED, UserEvent(username, module.host, module.name, session))

    @module.hook(USER_DELETED, priority=-999)  # just before the sessions are closed (-1000)
    async def reply_before_close(event: UserEvent) -> None:
        session = event.session
        if session is not None:
            reply = session.data.pop(REMOVAL_REPLY, None)
            if reply is not None:
                session.send(reply)

    for kind in ("get", "set"):
        module.hook(f"iq-{kind}/self/{NS_REGISTER}:query")(account)
        if opts.registration_compat:
            module.hook(f"iq-{kind}/host/{NS_REGISTER}:query")(account)

    return api
