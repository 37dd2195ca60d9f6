"""Registering with an invite (Prosody's mod_invites_register): XEP-0401 / XEP-0445 preauth
before in-band registration, and XEP-0379 subscription approval by the server.

* Unauthenticated streams (over TLS when encryption is required) are offered
  ``<register xmlns='urn:xmpp:invite'/>`` and ``<register xmlns='urn:xmpp:ibr-token:0'/>``.
* ``<iq><preauth xmlns='urn:xmpp:pars:0' token='…'/></iq>`` (set or get): a token that allows
  registration is remembered for the stream (empty result); any other gets ``cancel/forbidden``
  "The invite token is invalid or expired" (``invite_error_condition = "item-not-found"`` gives
  XEP-0445's reply instead: ``item-not-found``, "The provided token is invalid or expired").
  After ``preauth_max_failures`` such replies the stream is closed (``policy-violation``), and
  a refused token counts as a failed login of the address for mod_limit_auth: once the address
  is out of attempts, preauth gets ``wait/policy-violation`` "Too many failed attempts from this
  IP address recently" without a lookup. A token cannot be guessed; each try costs a lookup.
* ``registration_invite_only`` (default true) turns in-band registration on, for invitees only:
  without a remembered invite, ``user-registering`` is refused with ``not-acceptable``
  "Registration on this server is through invitation only".
* With an invite, the account and the invite's use happen in one transaction. Then roles and
  groups are applied and, for a contact invite, inviter and invitee subscribe to each other
  (``both``; a push to the inviter's interested resources; no presence stanzas).
* A ``subscribe`` carrying a valid contact token of its addressee is approved by the server
  (XEP-0379): the inviter's roster gets ``from`` (and ``ask`` with a ``subscribe`` back when it
  was not subscribed yet), then mod_presence answers ``subscribed``. Any other token: normal
  handling, with the ``<preauth/>`` kept.

Where Prosody 0.12 is lax, this is strict: an invite bound to a username registers that name
only, and reserves it until expiry; a reset invite resets its own user only; one invite makes
one account per stream; a token is used only when the registration succeeds; contact-only
tokens are refused for registration and never crash anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from minixmpp.config import ConfigError, PositiveInt
from minixmpp.errors import StanzaError, StreamError
from minixmpp.events import (
    STREAM_FEATURES,
    USER_PASSWORD_RESET,
    USER_REGISTERED,
    USER_REGISTERING,
    Registration,
    StanzaEvent,
    StreamFeatures,
    UserEvent,
)
from minixmpp.jid import JID, InvalidJID
from minixmpp.module import Module
from minixmpp.roster import (
    SUBSCRIPTION_APPROVED,
    RosterItem,
    SubscriptionApproved,
    with_directions,
)
from minixmpp.session import Session
from minixmpp.storage import Transaction
from minixmpp.xml import stanza as st

NS_PARS = "urn:xmpp:pars:0"
NS_INVITE = "urn:xmpp:invite"
NS_IBR_TOKEN = "urn:xmpp:ibr-token:0"  # noqa: S105 - a namespace
PREAUTH = f"{{{NS_PARS}}}preauth"
VALIDATED = "invites.validated"  # session.data: the token this stream presented
FAILURES = "invites.preauth_failures"  # session.data: tokens refused on this stream
INVALID = "The invite token is invalid or expired"  # Prosody's
INVALID_XEP = "The provided token is invalid or expired"  # XEP-0445's example, with item-not-found
THROTTLED = "Too many failed attempts from this IP address recently"  # as mod_register_limits


@dataclass
class Options:
    registration_invite_only: bool = True
    invite_error_condition: str = "forbidden"  # or "item-not-found" (XEP-0445)
    preauth_max_failures: PositiveInt = 5  # refused tokens before the stream is closed


def load(module: Module) -> None:
    opts = module.options(Options)
    if opts.invite_error_condition not in ("forbidden", "item-not-found"):
        raise ConfigError(
            f"{module.name}: invite_error_condition must be 'forbidden' or 'item-not-found'"
        )
    invites = module.depends("invites")
    register = module.depends("register")
    roster = module.depends("roster")
    if opts.registration_invite_only:
        register.allow()
    disabled = module.host_options.modules_disabled
    limit_auth = None if "limit_auth" in disabled else module.depends("limit_auth")
    host = module.host

    @module.hook(STREAM_FEATURES, priority=11)  # ahead of XEP-0077's, as Prosody showed them
    async def features(event: StreamFeatures) -> None:
        session = event.session
        if not session.authenticated and (session.secure or not register.require_encryption):
            st.sub(event.features, f"{{{NS_INVITE}}}register")
            st.sub(event.features, f"{{{NS_IBR_TOKEN}}}register")

    def too_many_failures(session: Session) -> StreamError | None:
        """Count a refused preauth; the stream error to close with after the last one."""
        failures = session.data.get(FAILURES, 0) + 1
        session.data[FAILURES] = failures
        if failures >= opts.preauth_max_failures:
            return StreamError("policy-violation", "Too many invalid invite tokens")
        return None

    @module.hook(f"stanza/iq/{NS_PARS}:preauth")
    async def preauth(event: StanzaEvent) -> bool:
        session, stanza = event.session, event.stanza
        if session.authenticated:
            raise StanzaError("service-unavailable")
        if limit_auth is not None and not limit_auth.start(session):
            raise StanzaError(
                "policy-violation", THROTTLED, "wait", then=too_many_failures(session)
            )
        token = stanza[0].get("token", "")
        invite = await invites.for_registration(token)
        if invite is None:
            module.log.info("preauth with an unusable token")
            if limit_auth is not None:
                limit_auth.failed(session)
            then = too_many_failures(session)
            if opts.invite_error_condition == "item-not-found":
                raise StanzaError("item-not-found", INVALID_XEP, "cancel", then=then)
            raise StanzaError("forbidden", INVALID, "cancel", then=then)
        if limit_auth is not None:
            limit_auth.succeeded(session)
        session.data[VALIDATED] = token  # a later failed preauth does not forget it
        session.send(st.reply(stanza))
        return True

    # -- registration ----------------------------------------------------------------------

    @module.hook(USER_REGISTERING, priority=10)  # after mod_register_limits (20)
    async def gate(event: Registration) -> None:
        session = event.session
        token = event.extra.get("invite_token") or (
            session.data.get(VALIDATED) if session is not None else None
        )
        # Expiry was checked when the token was presented (XEP-0401), not again.
        invite = await invites.for_registration(token, check_expiry=False) if token else None
        if invite is None:
            if opts.registration_invite_only:  # first: strangers learn nothing of reservations
                raise StanzaError(
                    "not-acceptable", "Registration on this server is through invitation only"
                )
            if await invites.reserved_for(event.username) is not None:
                raise StanzaError("conflict", "The requested username is reserved")
            return
        if invite.allow_reset is not None:
            if event.username != invite.allow_reset:
                raise StanzaError("not-acceptable", "Incorrect username for password reset")
            event.allow_reset = invite.allow_reset
        elif invite.subject is not None:
            if event.username != invite.subject:
                raise StanzaError(
                    "not-acceptable", "The chosen username is not valid with this invitation"
                )
        else:
            reserved = await invites.reserved_for(event.username)
            if reserved is not None:
                raise StanzaError("conflict", "The requested username is reserved")
        event.extra["invite"] = invite

        async def use(tx: Transaction) -> None:
            if not await invites.use_in(tx, invite.token):  # someone was quicker
                raise StanzaError("forbidden", INVALID, "cancel")

        event.in_transaction.append(use)

    @module.hook(USER_REGISTERED)
    async def registered(event: UserEvent) -> None:
        request: Registration | None = event.extra.get("registration")
        invite = request.extra.get("invite") if request is not None else None
        if invite is None:
            return
        if event.session is not None:
            event.session.data.pop(VALIDATED, None)  # one account per invite and stream
        username = event.username
        module.log.info("%s@%s registered with an invite", username, host)
        await invites.used(invite, username, "register")
        if invite.roles:
            await module.users.set_roles(username, invite.roles)
        if invite.groups:  # kept with the account (minixmpp has no shared groups)
            groups = module.open_store("groups")
            await groups.set(username, invite.groups)
        if invite.inviter is not None and await module.users.exists(invite.inviter):
            await befriend(invite.inviter, username)

    async def befriend(inviter: str, invitee: str) -> None:
        """Mutual subscription, written straight into both rosters (Prosody's way)."""

        def both(contact: str) -> Any:
            def change(item: RosterItem | None) -> RosterItem:
                return (item or RosterItem(contact)).with_(
                    subscription="both", ask=False, approved=False
                )

            return change

        # the invitee's first, so that the inviter's push means both are written
        await roster.update(invitee, f"{inviter}@{host}", both(f"{inviter}@{host}"))
        await roster.update(inviter, f"{invitee}@{host}", both(f"{invitee}@{host}"))

    @module.hook(USER_PASSWORD_RESET)
    async def reset(event: Registration) -> None:
        invite = event.extra.get("invite")
        if invite is None:
            return  # the invite was used with the new password (gate's step)
        if event.session is not None:
            event.session.data.pop(VALIDATED, None)
        module.log.info("password of %s@%s reset with an invite", event.username, host)
        await invites.used(invite, event.username, "reset")

    # -- XEP-0379: the server approves a subscription that brings the right token ---------------

    async def subscribe_with_token(event: StanzaEvent) -> None:
        stanza, target = event.stanza, event.to
        if stanza.get("type") != "subscribe" or target is None or target.node is None:
            return
        preauth_el = stanza.find(PREAUTH)
        token = preauth_el.get("token") if preauth_el is not None else None
        if not token:
            return
        inviter = target.node
        invite = await invites.for_subscription(token, inviter)
        if invite is None:
            return  # normal handling: the request is kept and shown, <preauth/> and all
        try:
            contact = JID.parse(stanza.get("from", "")).bare
        except InvalidJID:
            return
        if not await invites.use(token):
            return
        module.log.info("subscription of %s to %s@%s approved by invite", contact, inviter, host)
        await approve(inviter, contact)
        await invites.used(invite, contact, "subscribe")

    async def approve(inviter: str, contact: str) -> None:
        await roster.remove_pending(inviter, contact)

        def grant(item: RosterItem | None) -> RosterItem | None:
            return with_directions(from_=True, approved=False)(item or RosterItem(contact))

        item = (await roster.update(inviter, contact, grant)).new
        await module.fire(SUBSCRIPTION_APPROVED, SubscriptionApproved(inviter, contact, "invite"))
        if item is not None and not item.to and not item.ask:
            await roster.update(inviter, contact, lambda i: (i or item).with_(ask=True))
            await module.send(st.presence(type="subscribe", from_=f"{inviter}@{host}", to=contact))
        # mod_presence then sees a subscriber and answers 'subscribed' with the presence

    async def to_bare(event: StanzaEvent) -> None:
        await subscribe_with_token(event)

    async def to_full(event: StanzaEvent) -> None:
        if event.to is not None:
            await subscribe_with_token(StanzaEvent(event.session, event.stanza, event.to.bare_jid))

    module.hook("presence/bare", priority=1)(to_bare)
    module.hook("presence/full", priority=1)(to_full)
