"""The invites of one host (``InvitesApi``), kept in two map stores: ``invites`` (token ->
invite) and ``invite_users`` (an inviter's or a reserved name's tokens, so that an account's
invites are found, and deleted with it, without reading them all).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from minixmpp.module import Module
from minixmpp.storage import MapStore, Transaction

from ._invite import (
    INVITE_CREATED,
    INVITE_USED,
    RESET_EXPIRY,
    Invite,
    InviteUsed,
    interpolate,
    new_token,
    prepared,
    short,
)

if TYPE_CHECKING:
    from . import Options

CHOSEN_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what a URI, a path and a query carry as is


class InvitesApi:
    """Invites of one host."""

    # Prosody's URL templates ("{invite.token}", "{app.link!}", …), for the modules that
    # build links from invites (landing pages, app links)
    interpolate = staticmethod(interpolate)

    def __init__(self, module: Module, opts: Options, expiry: int, purge_after: int) -> None:
        self._module = module
        self._invites: MapStore = module.open_store("invites", "map")  # token -> invite
        self._users: MapStore = module.open_store("invite_users", "map")  # user -> its tokens
        self.host = module.host
        self.opts = opts
        self.expiry = expiry
        self.purge_after = purge_after
        self.clock = module.clock

    def now(self) -> int:
        return int(self.clock.time())

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
        token: str | None = None,
    ) -> Invite:
        """An invite to create an account: any username, or ``username`` only. ``token``:
        a token of the caller's choosing (tests); a new random one by default."""
        if max_uses is not None and (not reusable or max_uses < 1):
            raise ValueError("max_uses needs a reusable invite and a count of at least 1")
        username = prepared(username) if username else None
        jid = f"{username}@{self.host}" if username else self.host
        invite = Invite(
            token=token or new_token(), type="register", jid=jid, subject=username,
            roles=list(roles or []), groups=list(groups or []), reusable=reusable,
            max_uses=max_uses, source=source, note=note,
        )  # fmt: skip
        return await self._store(invite, ttl)

    async def create_reset(
        self,
        username: str,
        *,
        ttl: int | None = None,
        source: str | None = None,
        token: str | None = None,
    ) -> Invite:
        """An invite to set a new password for the existing account ``username``."""
        username = prepared(username)
        invite = Invite(
            token=token or new_token(), type="register", jid=f"{username}@{self.host}",
            subject=username,
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
        token: str | None = None,
    ) -> Invite:
        """An invite to become ``inviter``'s contact (and, with ``allow_registration``, to
        create an account for that first, named ``username`` if given)."""
        inviter = prepared(inviter)
        username = prepared(username) if username else None
        invite = Invite(
            token=token or new_token(), type="roster", jid=f"{inviter}@{self.host}",
            inviter=inviter,
            subject=username, allow_registration=allow_registration,
            source=source or f"{inviter}@{self.host}",
        )  # fmt: skip
        return await self._store(invite, ttl)

    async def _store(self, invite: Invite, ttl: int | None) -> Invite:
        if not CHOSEN_TOKEN.fullmatch(invite.token):
            raise ValueError("a token is 1 to 64 of A-Z a-z 0-9 - _")
        if await self._invites.get(None, invite.token) is not None:
            raise ValueError("an invite with this token exists")
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
        async with self._module.transaction() as tx:
            await self._invites.set(None, invite.token, invite.stored(), tx=tx)
            for user in _users_of(invite):
                await self._users.set(user, invite.token, 1, tx=tx)
        self._module.log.info("created %s invite %s", invite.kind, short(invite.token))
        return invite

    # -- finding -------------------------------------------------------------------------

    async def _get(self, token: str, tx: Transaction | None = None) -> Invite | None:
        if not token or len(token) > 64:
            return None
        data = await self._invites.get(None, token, tx=tx)
        return None if data is None else Invite.from_stored(data)

    async def find(self, token: str, *, check_expiry: bool = True) -> Invite | None:
        """The invite with this token, if it still exists, is not used up and (with
        ``check_expiry``) has not expired."""
        invite = await self._get(token)
        if invite is None:
            return None
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
        now = self.now()
        for token in await self._users.items(username):
            invite = await self._get(token)
            if (
                invite is not None
                and invite.subject == username
                and invite.expires >= now
                and invite.kind in ("account", "account-and-contact")  # not a reset
            ):
                return invite
        return None

    async def list(self) -> list[Invite]:
        """The invites that can still be used (as Prosody lists them: expires > now)."""
        now = self.now()
        invites = [Invite.from_stored(d) for d in (await self._invites.items(None)).values()]
        usable = [
            i for i in invites if i.expires > now and (i.max_uses is None or i.uses < i.max_uses)
        ]
        return sorted(usable, key=lambda i: (i.created_at, i.token))

    # -- using, revoking, purging ----------------------------------------------------------

    async def use_in(self, tx: Transaction, token: str) -> bool:
        """Use the invite once, inside ``tx``; False if it is gone or used up meanwhile.
        Expiry is not checked again: it was checked when the token was presented (XEP-0401).
        Write transactions run one at a time, so two streams racing for a single-use token
        cannot both have it."""
        invite = await self._get(token, tx)
        if invite is None:
            return False
        if not invite.reusable:
            await self._delete(invite, tx)
            return True
        if invite.max_uses is not None and invite.uses >= invite.max_uses:
            return False
        invite.uses += 1
        await self._invites.set(None, token, invite.stored(), tx=tx)
        return True

    async def use(self, token: str) -> bool:
        async with self._module.transaction() as tx:
            used = await self.use_in(tx, token)
        if used:
            self._module.log.info("invite %s used", short(token))
        return used

    async def used(self, invite: Invite, username: str, purpose: str) -> None:
        """Say that ``invite`` was used (``invite-used``), once its use is stored: by whoever
        used it (registration, a reset, a subscription)."""
        await self._module.fire(INVITE_USED, InviteUsed(invite, username, purpose))

    async def revoke(self, token: str) -> bool:
        async with self._module.transaction() as tx:
            invite = await self._get(token, tx)
            if invite is None:
                return False
            await self._delete(invite, tx)
        return True

    async def purge(self) -> int:
        """Delete invites expired more than ``invite_purge_after`` ago."""
        cutoff = self.now() - self.purge_after
        async with self._module.transaction() as tx:
            stored = await self._invites.items(None, tx=tx)
            expired = [Invite.from_stored(d) for d in stored.values() if d["expires"] < cutoff]
            for invite in expired:
                await self._delete(invite, tx)
        if expired:
            self._module.log.info("purged %d expired invites", len(expired))
        return len(expired)

    async def forget_user(self, tx: Transaction, username: str) -> None:
        """An account is being deleted: the invites it issued and those for its name go."""
        for token in await self._users.items(username, tx=tx):
            invite = await self._get(token, tx)
            if invite is not None and username in _users_of(invite):
                await self._delete(invite, tx)

    async def _delete(self, invite: Invite, tx: Transaction) -> None:
        await self._invites.set(None, invite.token, None, tx=tx)
        for user in _users_of(invite):
            await self._users.set(user, invite.token, None, tx=tx)


def _users_of(invite: Invite) -> set[str]:
    """The accounts an invite is filed under: its inviter and the name it is for."""
    return {u for u in (invite.inviter, invite.subject) if u is not None}
