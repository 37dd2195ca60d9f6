"""Invites (Prosody's mod_invites): tokens that let someone create an account, reset a
password, or become someone's contact (XEP-0401, XEP-0445, XEP-0379).

A token is 24 URL-safe characters from 18 bytes of the OS's CSPRNG. Kinds, as Prosody has
them: an account invite (any username, or one bound to a username, which that name is then
reserved for until expiry), a password-reset invite, a contact invite (with or without
registration, ``;ibr=y``) and a reusable (group) invite, here optionally limited to
``max_uses``. URIs are built exactly as Prosody builds them; a landing page is attached from
the ``invites_page`` template (Prosody 13's ``invites_page_supports`` says for which kinds).

An invite is valid while now <= expires; one that is unknown, expired, used up or revoked is
simply not found. Using an invite happens in the same transaction as whatever it is used for
(write transactions run one at a time), so one token makes at most one account. Expired invites
are deleted ``invite_purge_after`` past their expiry (Prosody keeps them forever); an account's
invites (those it issued, those for its name) go with it.

Files: ``_invite.py`` (the record, tokens, durations, templates), ``_api.py`` (the store).

``load()`` returns the API (``InvitesApi``) that mod_invites_register, mod_invites_adhoc and the
CLI (admin commands ``invite.*``) use. ``invite-created`` fires before an invite is stored;
handlers may change it (e.g. set ``landing_page``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from minixmpp.admin import AdminCommand, AdminError
from minixmpp.config import ConfigError
from minixmpp.events import SERVER_STARTED
from minixmpp.jid import JID, InvalidJID, nodeprep
from minixmpp.module import Module

from ._api import InvitesApi
from ._invite import (
    DAY,
    INVITE_CREATED,
    INVITE_USED,
    KINDS,
    TOKEN_IN_TEXT,
    Invite,
    InviteUsed,
    interpolate,
    parse_duration,
    short,
    url_escape,
)

__all__ = [
    "INVITE_CREATED",
    "INVITE_USED",
    "Invite",
    "InviteUsed",
    "InvitesApi",
    "interpolate",
    "parse_duration",
    "url_escape",
]

# Admin commands this module adds (the CLI's "invite" commands); read without loading it.
ADMIN_COMMANDS = ("invite.create", "invite.list", "invite.show", "invite.delete")


@dataclass
class Options:
    invite_expiry: int | str = 7 * DAY  # seconds, or a period such as "1 week"
    invites_page: str | None = (
        None  # landing page template, e.g. "https://example.com/invite/{invite.token}/"
    )
    invites_page_supports: list[str] = field(
        default_factory=lambda: ["account", "contact", "account-and-contact"]
    )
    invite_purge_after: int | str = DAY  # expired invites are deleted this long after expiry


def load(module: Module) -> InvitesApi:
    opts = module.options(Options)
    try:
        expiry = parse_duration(opts.invite_expiry)
        purge_after = parse_duration(opts.invite_purge_after)
    except ValueError as exc:
        raise ConfigError(f"{module.name}: {exc}") from None
    page = opts.invites_page
    if page and not page.lower().startswith(("https://", "http://")):  # clients need a link
        raise ConfigError(f"{module.name}: invites_page must be an http(s) URL, got {page!r}")
    # Prosody's default names "contact", which matches no kind (contact-only invites get none)
    unknown = set(opts.invites_page_supports) - {*KINDS, "contact"}
    if unknown:
        raise ConfigError(f"{module.name}: invites_page_supports: unknown {sorted(unknown)}")
    api = InvitesApi(module, opts, expiry, purge_after)
    module.delete_with_account(api.forget_user)
    module.add_log_secret(TOKEN_IN_TEXT)

    async def purge(_event: object = None) -> None:
        await api.purge()

    module.hook(SERVER_STARTED)(purge)  # at start too: a server restarted often would never purge
    module.every(3600, purge)

    async def username_of(host_name: str, text: str) -> str:
        try:
            jid = JID.parse(text)
            username = nodeprep(text.split("@", 1)[0], strict=True) if jid.node else ""
        except InvalidJID:
            raise AdminError(f"invalid JID: {text}") from None
        if not username or jid.resource or jid.domain != host_name:
            raise AdminError(f"expected a JID of the form user@{host_name}, got {text}")
        return username

    def duration(args: dict[str, Any]) -> int | None:
        value = args.get("expires_after")
        if value is None:
            return None
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise AdminError(str(exc)) from None

    async def create(_host: Any, args: dict[str, Any]) -> dict[str, Any]:
        kind, target = args.get("kind"), str(args.get("jid") or module.host)
        ttl = duration(args)
        if kind == "account":
            username = await username_of(module.host, target) if "@" in target else None
            if username is not None and await module.users.exists(username):
                # registration would only ever answer conflict
                raise AdminError(f"user {username}@{module.host} already exists")
            roles = list(dict.fromkeys(args.get("roles") or []))
            try:
                invite = await api.create_account(
                    username, roles=roles, groups=list(args.get("groups") or []), ttl=ttl,
                    reusable=bool(args.get("reusable")), max_uses=args.get("max_uses"),
                    source="admin", note=args.get("note"),
                )  # fmt: skip
            except ValueError as exc:
                raise AdminError(str(exc)) from None
        elif kind == "reset":
            username = await username_of(module.host, target)
            if not await module.users.exists(username):
                raise AdminError(f"user {username}@{module.host} does not exist")
            invite = await api.create_reset(username, ttl=ttl, source="admin")
        elif kind == "contact":
            username = await username_of(module.host, target)
            if not await module.users.exists(username):
                raise AdminError(f"user {username}@{module.host} does not exist")
            invite = await api.create_contact(
                username, allow_registration=bool(args.get("allow_registration")), ttl=ttl,
                source="admin",
            )  # fmt: skip
        else:
            raise AdminError(f"unknown kind of invite {kind!r}")
        return invite.as_dict()

    async def listing(_host: Any, _args: dict[str, Any]) -> list[dict[str, Any]]:
        return [{**i.as_dict(), "description": i.describe()} for i in await api.list()]

    async def show(_host: Any, args: dict[str, Any]) -> dict[str, Any]:
        invite = await api.find(str(args.get("token", "")))
        if invite is None:
            raise AdminError("no such invite (unknown, expired, used or revoked)")
        return {**invite.as_dict(), "description": invite.describe()}

    async def delete(_host: Any, args: dict[str, Any]) -> str:
        token = str(args.get("token", ""))
        if not await api.revoke(token):
            raise AdminError("no such invite")
        return short(token)

    handlers = {
        "invite.create": create, "invite.list": listing, "invite.show": show,
        "invite.delete": delete,
    }  # fmt: skip
    for name in ADMIN_COMMANDS:
        module.add_item("admin-command", AdminCommand(name, handlers[name]))
    return api
