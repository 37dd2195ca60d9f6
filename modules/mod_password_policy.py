"""Password policy for in-band registration and password changes (the community
mod_password_policy of Prosody): a minimum length (in bytes, as Prosody counts), no empty
password, and, when a logged-in user changes it, no password containing the username.

``load()`` returns ``check(password, username)`` and the current policy for other front ends
(web registration), as Prosody's module exports ``check_password`` and ``get_policy``.

Runs ahead of mod_register's own checks (priority 10), as Prosody's does, so a weak password is
refused before the username is looked at. Unlike Prosody's, it does not answer a stream that
may not register at all (registration off, or no TLS where it is required): there the reply is
the one mod_register gives, without having looked at the password.

Registrations that come without a stream (the HTTP registration APIs and pages) are checked in
``user-registering``, after the invite gate, so one without a valid invite learns nothing of
the policy; the refusal is the same ``not-acceptable`` with Prosody's text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from minixmpp.errors import StanzaError
from minixmpp.events import (
    CONFIG_RELOADED,
    USER_REGISTERING,
    ConfigReloaded,
    Registration,
    StanzaEvent,
)
from minixmpp.module import Module
from minixmpp.xml import dataforms

NS_REGISTER = "jabber:iq:register"


@dataclass
class Policy:
    length: int = 8
    exclude_username: bool = True


@dataclass
class Options:
    password_policy: Policy = field(default_factory=Policy)


def problem(password: str, username: str | None, policy: Policy) -> str | None:
    """Why ``password`` is refused, in Prosody's words; None if it is fine."""
    if not password:
        return "No password provided"
    if len(password.encode()) < policy.length:
        return f"Password is too short (minimum {policy.length} characters)"
    if policy.exclude_username and username and username.lower() in password.lower():
        return "Password must not include your username"
    return None


class PasswordPolicyApi:
    """What ``module.depends("password_policy")`` gives (Prosody's ``get_policy`` and
    ``check_password``), for front ends that take a password outside XEP-0077 (web
    registration)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy  # the current one: a reload replaces it

    def check(self, password: str, username: str | None = None) -> str | None:
        """Why ``password`` is refused (for an account named ``username``); None if fine."""
        return problem(password, username, self.policy)


def load(module: Module) -> PasswordPolicyApi:
    api = PasswordPolicyApi(module.options(Options).password_policy)
    register = module.depends("register")

    @module.hook(CONFIG_RELOADED)
    async def reloaded(_event: ConfigReloaded) -> None:
        api.policy = module.options(Options).password_policy

    async def check(event: StanzaEvent) -> None:
        session, stanza = event.session, event.stanza
        if stanza.get("type") != "set" or not session.c2s:
            return
        if not session.authenticated and not register.may_register(session):
            return  # mod_register refuses this stream whatever the password
        query = stanza[0]
        fields = query.iterfind(f"{dataforms.X}/{{{dataforms.NS_DATA}}}field[@var='password']")
        passwords = [fld.findtext(f"{{{dataforms.NS_DATA}}}value") for fld in fields]
        passwords.append(query.findtext(f"{{{NS_REGISTER}}}password"))
        for password in passwords:
            if password is None:  # not given here: mod_register says what is missing
                continue
            reason = api.check(password, session.username)
            if reason is not None:
                raise StanzaError("not-acceptable", reason, "cancel")  # as Prosody's module

    @module.hook(USER_REGISTERING, priority=5)  # after the invite gate (10)
    async def without_stream(event: Registration) -> None:
        if event.session is not None:
            return  # checked on the stanza, in Prosody's order
        reason = api.check(event.password)
        if reason is not None:
            raise StanzaError("not-acceptable", reason, "cancel")

    module.hook(f"stanza/iq/{NS_REGISTER}:query", priority=10)(check)
    module.hook(f"iq-set/self/{NS_REGISTER}:query", priority=10)(check)
    module.hook(f"iq-set/host/{NS_REGISTER}:query", priority=10)(check)
    return api
