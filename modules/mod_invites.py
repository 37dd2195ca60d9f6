"""Invites (Prosody's mod_invites): tokens that let someone create an account, reset a
password, or become someone's contact (XEP-0401, XEP-0445, XEP-0379).

A token is 24 URL-safe characters from 18 bytes of the OS's CSPRNG. Kinds, as Prosody has
them: an account invite (any username, or one bound to a username, which that name is then
reserved for until expiry), a password-reset invite, a contact invite (with or without
registration, ``;ibr=y``) and a reusable (group) invite, here optionally limited to
``max_uses``. URIs are built exactly as Prosody builds them; a landing page is attached from
the ``invites_page`` template (Prosody 13's ``invites_page_supports`` says for which kinds).

An invite is valid while now <= expires; one that is unknown, expired, used up or revoked is
simply not found. Using a single-use invite is one SQL statement, run in the same transaction
as whatever it is used for, so one token makes at most one account. Expired invites are
deleted ``invite_purge_after`` past their expiry (Prosody keeps them forever).

``load()`` returns the API (``InvitesApi``) that mod_invites_register, mod_invites_adhoc and the
CLI (admin commands ``invite.*``) use. ``invite-created`` fires before an invite is stored;
handlers may change it (e.g. set ``landing_page``).
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from minixmpp.admin import AdminCommand, AdminError
from minixmpp.config import ConfigError
from minixmpp.events import SERVER_STARTED, EventName
from minixmpp.jid import JID, InvalidJID, nodeprep
from minixmpp.module import Module
from minixmpp.storage import Transaction

DAY = 86400
RESET_EXPIRY = DAY
KINDS = ("account", "password-reset", "account-and-contact", "contact-only")  # Prosody 13's

MIGRATIONS = (
    """
    CREATE TABLE invites (
        host TEXT NOT NULL,
        token TEXT NOT NULL,
        type TEXT NOT NULL,
        jid TEXT NOT NULL,
        inviter TEXT,
        subject TEXT,
        allow_registration INTEGER NOT NULL,
        reusable INTEGER NOT NULL DEFAULT 0,
        max_uses INTEGER,
        uses INTEGER NOT NULL DEFAULT 0,
        data TEXT NOT NULL DEFAULT '{}',
        uri TEXT NOT NULL,
        landing_page TEXT,
        created_at INTEGER NOT NULL,
        expires INTEGER NOT NULL,
        PRIMARY KEY (host, token)
    ) WITHOUT ROWID;
    CREATE INDEX invites_by_subject ON invites (host, subject);
    CREATE INDEX invites_by_inviter ON invites (host, inviter);
    """,
)
COLUMNS = (
    "token, type, jid, inviter, subject, allow_registration, reusable, max_uses, uses, data,"
    " uri, landing_page, created_at, expires"
)

_UNITS = {
    "s": 1, "sec": 1, "second": 1, "min": 60, "minute": 60, "h": 3600, "hour": 3600,
    "d": DAY, "day": DAY, "w": 7 * DAY, "week": 7 * DAY, "month": 30 * DAY, "year": 365 * DAY,
}  # fmt: skip
_DURATION = re.compile(r"\s*(\d+)\s*([a-z]*?)s?\s*")
MAX_DURATION = 100 * 365 * DAY  # dates stay printable; nobody needs an invite for longer


def parse_duration(value: int | str) -> int:
    """Seconds from a number or a period like ``"1 week"``, ``"7d"``, ``"12 hours"``
    (Prosody 13's words; ``"1m"`` is refused as ambiguous)."""
    if isinstance(value, int):
        seconds = value
    else:
        match = _DURATION.fullmatch(value.lower())
        if match is None or (match.group(2) and match.group(2) not in _UNITS):
            raise ValueError(f"not a duration: {value!r} (e.g. 3600, '12h', '7 days', '1 week')")
        seconds = int(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    if seconds > MAX_DURATION:
        raise ValueError("a duration must be at most 100 years")
    return seconds


def new_token() -> str:
    """24 URL-safe characters: 18 random bytes (144 bits), base64url, no padding."""
    return base64.urlsafe_b64encode(secrets.token_bytes(18)).decode()


def short(token: str) -> str:
    """What a log may show of a token."""
    return token[:4] + "…"


_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.~_-")


def url_escape(text: str) -> str:
    """Prosody's interpolation escape: keep ``[A-Za-z0-9.~_-]``, else lower-case ``%xx``."""
    return "".join(chr(b) if b in _SAFE else f"%{b:02x}" for b in text.encode())


_FIELD = re.compile(r"\{([a-z_.]+)([!?&]?)([^}]*)\}")


def interpolate(template: str, values: dict[str, str | None]) -> str:
    """Prosody's util.interpolation, the parts invite templates use: ``{name}`` (escaped),
    ``{name!}`` (raw), ``{name?default}`` and ``{name&text}``."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.groups()
        value = values.get(name)
        if op == "?":
            return url_escape(value) if value else arg
        if op == "&":
            return arg if value else ""
        if value is None:
            return ""
        return value if op == "!" else url_escape(value)

    return _FIELD.sub(one, template)


@dataclass
class Invite:
    token: str
    type: str  # "register" (account, reset) or "roster" (contact)
    jid: str  # the host, user@host (bound or reset) or the inviter's JID (contact)
    inviter: str | None = None  # the issuing user (contact invites)
    subject: str | None = None  # the username it is for (bound account invites and resets)
    allow_registration: bool = True
    reusable: bool = False
    max_uses: int | None = None
    uses: int = 0
    roles: list[str] = field(default_factory=list)  # primary first
    groups: list[str] = field(default_factory=list)
    allow_reset: str | None = None
    source: str | None = None
    note: str | None = None
    uri: str = ""
    landing_page: str | None = None
    created_at: int = 0
    expires: int = 0

    @property
    def kind(self) -> str:
        if self.type == "roster":
            return "account-and-contact" if self.allow_registration else "contact-only"
        return "password-reset" if self.allow_reset else "account"

    @property
    def link(self) -> str:
        """What to hand out: the landing page if there is one, else the URI."""
        return self.landing_page or self.uri

    def describe(self) -> str:
        if self.kind == "password-reset":
            return f"Password reset for {self.allow_reset}"
        if self.kind == "contact-only":
            return f"Contact invite from {self.inviter}"
        if self.kind == "account-and-contact":
            return f"Account and contact invite from {self.inviter}"
        text = f"Account invite for {self.subject}" if self.subject else "Account invite"
        if self.reusable:
            limit = f"{self.uses}/{self.max_uses}" if self.max_uses else f"{self.uses}"
            text = f"Reusable account invite ({limit} uses)"
        if self.roles:
            text += f", roles {', '.join(self.roles)}"
        if self.groups:
            text += f", groups {', '.join(self.groups)}"
        return text

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if v not in (None, [], "")}
        data["kind"], data["link"] = self.kind, self.link
        return data


INVITE_CREATED: EventName[Invite] = EventName("invite-created")  # before it is stored


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


class InvitesApi:
    """Invites of one host."""

    def __init__(self, module: Module, opts: Options, expiry: int, purge_after: int) -> None:
        self._module = module
        self._storage = module.storage
        self.host = module.host
        self.opts = opts
        self.expiry = expiry
        self.purge_after = purge_after
        self.clock: Callable[[], float] = time.time  # tests move it

    def now(self) -> int:
        return int(self.clock())

    # -- creating ------------------------------------------------------------------------

    async def create_account(
        self,
        username: str | None = None,
        *,
        roles: list[str] | None = None,
        groups: list[str] | None = None,
        ttl: int | None = None,
        reusable: bool = False,
        max_uses: int | None = None,
        source: str | None = None,
        note: str | None = None,
    ) -> Invite:
        """An invite to create an account: any username, or ``username`` only."""
        if max_uses is not None and (not reusable or max_uses < 1):
            raise ValueError("max_uses needs a reusable invite and a count of at least 1")
        username = _prepared(username) if username else None
        jid = f"{username}@{self.host}" if username else self.host
        invite = Invite(
            token=new_token(), type="register", jid=jid, subject=username,
            roles=list(roles or []), groups=list(groups or []), reusable=reusable,
            max_uses=max_uses, source=source, note=note,
        )  # fmt: skip
        return await self._store(invite, ttl)

    async def create_reset(
        self, username: str, *, ttl: int | None = None, source: str | None = None
    ) -> Invite:
        """An invite to set a new password for the existing account ``username``."""
        username = _prepared(username)
        invite = Invite(
            token=new_token(), type="register", jid=f"{username}@{self.host}", subject=username,
            allow_reset=username, source=source,
        )  # fmt: skip
        return await self._store(invite, RESET_EXPIRY if ttl is None else ttl)

    async def create_contact(
        self,
        inviter: str,
        *,
        allow_registration: bool = False,
        username: str | None = None,
        ttl: int | None = None,
        source: str | None = None,
    ) -> Invite:
        """An invite to become ``inviter``'s contact (and, with ``allow_registration``, to
        create an account for that first, named ``username`` if given)."""
        inviter = _prepared(inviter)
        username = _prepared(username) if username else None
        invite = Invite(
            token=new_token(), type="roster", jid=f"{inviter}@{self.host}", inviter=inviter,
            subject=username, allow_registration=allow_registration,
            source=source or f"{inviter}@{self.host}",
        )  # fmt: skip
        return await self._store(invite, ttl)

    async def _store(self, invite: Invite, ttl: int | None) -> Invite:
        now = self.now()
        invite.created_at, invite.expires = now, now + (self.expiry if ttl is None else ttl)
        invite.uri = f"xmpp:{invite.jid}?{invite.type};preauth={invite.token}"  # the URI action
        if invite.type == "roster" and invite.allow_registration:
            invite.uri += ";ibr=y"
        await self._module.fire(INVITE_CREATED, invite)
        page = self.opts.invites_page
        if page and invite.landing_page is None and invite.kind in self.opts.invites_page_supports:
            values = {
                "host": self.host, "invite.token": invite.token, "invite.uri": invite.uri,
                "invite.jid": invite.jid, "invite.type": invite.type,
                "invite.inviter": invite.inviter,
            }  # fmt: skip
            invite.landing_page = interpolate(page, values)
        data = {
            "roles": invite.roles, "groups": invite.groups, "allow_reset": invite.allow_reset,
            "source": invite.source, "note": invite.note,
        }  # fmt: skip
        async with self._storage.transaction() as tx:
            await tx.execute(
                f"INSERT INTO invites (host, {COLUMNS}) VALUES"  # noqa: S608
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    self.host, invite.token, invite.type, invite.jid, invite.inviter,
                    invite.subject, int(invite.allow_registration), int(invite.reusable),
                    invite.max_uses, invite.uses,
                    json.dumps({k: v for k, v in data.items() if v}), invite.uri,
                    invite.landing_page, invite.created_at, invite.expires,
                ),
            )  # fmt: skip
        self._module.log.info("created %s invite %s", invite.kind, short(invite.token))
        return invite

    # -- finding -------------------------------------------------------------------------

    async def find(self, token: str, *, check_expiry: bool = True) -> Invite | None:
        """The invite with this token, if it still exists, is not used up and (with
        ``check_expiry``) has not expired."""
        if not token or len(token) > 64:
            return None
        row = await self._storage.fetchone(
            f"SELECT {COLUMNS} FROM invites WHERE host = ? AND token = ?",  # noqa: S608
            (self.host, token),
        )
        if row is None or not hmac.compare_digest(row[0], token):
            return None
        invite = _invite(row)
        if check_expiry and self.now() > invite.expires:
            return None
        if invite.max_uses is not None and invite.uses >= invite.max_uses:
            return None
        return invite

    async def for_registration(self, token: str, *, check_expiry: bool = True) -> Invite | None:
        """An invite that lets an account be created (or a password reset)."""
        invite = await self.find(token, check_expiry=check_expiry)
        return invite if invite is not None and invite.allow_registration else None

    async def for_subscription(self, token: str, username: str) -> Invite | None:
        """A contact invite that ``username`` issued (XEP-0379 approval)."""
        invite = await self.find(token)
        if invite is None or invite.type != "roster" or invite.inviter != username:
            return None
        return invite

    async def reserved_for(self, username: str) -> Invite | None:
        """A valid invite bound to this username (which nobody else may then register)."""
        rows = await self._storage.fetchall(
            f"SELECT {COLUMNS} FROM invites WHERE host = ? AND subject = ?"  # noqa: S608
            " AND expires >= ?",
            (self.host, username, self.now()),
        )
        for row in rows:
            invite = _invite(row)
            if invite.kind in ("account", "account-and-contact"):  # not a reset: that user exists
                return invite
        return None

    async def list(self) -> list[Invite]:
        """The invites that can still be used (as Prosody lists them: expires > now)."""
        rows = await self._storage.fetchall(
            f"SELECT {COLUMNS} FROM invites WHERE host = ? AND expires > ?"  # noqa: S608
            " ORDER BY created_at, token",
            (self.host, self.now()),
        )
        return [i for i in map(_invite, rows) if i.max_uses is None or i.uses < i.max_uses]

    # -- using, revoking, purging ----------------------------------------------------------

    async def use_in(self, tx: Transaction, token: str) -> bool:
        """Use the invite once, inside ``tx``; False if it is gone or used up meanwhile.
        Expiry is not checked again: it was checked when the token was presented (XEP-0401)."""
        count = await tx.execute(
            "DELETE FROM invites WHERE host = ? AND token = ? AND reusable = 0",
            (self.host, token),
        )
        if count:
            return True
        count = await tx.execute(
            "UPDATE invites SET uses = uses + 1 WHERE host = ? AND token = ? AND reusable = 1"
            " AND (max_uses IS NULL OR uses < max_uses)",
            (self.host, token),
        )
        return count == 1

    async def use(self, token: str) -> bool:
        async with self._storage.transaction() as tx:
            used = await self.use_in(tx, token)
        if used:
            self._module.log.info("invite %s used", short(token))
        return used

    async def revoke(self, token: str) -> bool:
        async with self._storage.transaction() as tx:
            count = await tx.execute(
                "DELETE FROM invites WHERE host = ? AND token = ?", (self.host, token)
            )
        return bool(count == 1)

    async def purge(self) -> int:
        """Delete invites expired more than ``invite_purge_after`` ago."""
        async with self._storage.transaction() as tx:
            count = await tx.execute(
                "DELETE FROM invites WHERE host = ? AND expires < ?",
                (self.host, self.now() - self.purge_after),
            )
        if count:
            self._module.log.info("purged %d expired invites", count)
        return int(count)


def _prepared(username: str) -> str:
    """A username as accounts have it (nodeprep); ValueError if it cannot be one."""
    try:
        return nodeprep(username, strict=True)
    except InvalidJID:
        raise ValueError(f"invalid username: {username!r}") from None


def _invite(row: sqlite3.Row) -> Invite:
    data = json.loads(row[9])
    return Invite(
        token=row[0], type=row[1], jid=row[2], inviter=row[3], subject=row[4],
        allow_registration=bool(row[5]), reusable=bool(row[6]), max_uses=row[7], uses=row[8],
        roles=data.get("roles", []), groups=data.get("groups", []),
        allow_reset=data.get("allow_reset"), source=data.get("source"), note=data.get("note"),
        uri=row[10], landing_page=row[11], created_at=row[12], expires=row[13],
    )  # fmt: skip


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
    module.migrate("invites", MIGRATIONS)
    module.own_user_rows("invites", user_column="inviter")  # a deleted user's contact invites
    module.own_user_rows("invites", user_column="subject")  # and invites for that name
    api = InvitesApi(module, opts, expiry, purge_after)

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

    for name, handler in (
        ("invite.create", create), ("invite.list", listing), ("invite.show", show),
        ("invite.delete", delete),
    ):  # fmt: skip
        module.add_item("admin-command", AdminCommand(name, handler))
    return api
