"""Accounts, rosters and invites of a test server (``XmppServer``'s part for them)."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from minixmpp.jid import JID
from minixmpp.roster import RosterItem

if TYPE_CHECKING:
    from minixmpp.server import Server

_user_numbers = itertools.count(1)


@dataclass(frozen=True)
class Account:
    """An account made for a test: its bare JID and password."""

    jid: str
    password: str

    @property
    def username(self) -> str:
        return self.jid.split("@", 1)[0]

    @property
    def host(self) -> str:
        return self.jid.split("@", 1)[1]

    def __str__(self) -> str:
        return self.jid


class AccountsMixin:
    """Accounts made through the server object, rosters, invites."""

    accounts: dict[str, Account]

    @property
    def server(self) -> Server:
        raise NotImplementedError

    @property
    def host(self) -> str:
        raise NotImplementedError

    async def create_user(
        self,
        username: str,
        password: str | None = None,
        host: str | None = None,
        *,
        roles: Sequence[str] = (),
    ) -> Account:
        """Make an account (a random password unless given); ValueError if it exists."""
        h = self.server.hosts[host or self.host]
        password = password if password is not None else secrets.token_urlsafe(12)
        if not await h.users.create(username, password, source="test"):
            raise ValueError(f"user {username}@{h.name} exists")
        if roles:
            await h.users.set_roles(username, roles)
        account = Account(f"{username}@{h.name}", password)
        self.accounts[account.jid] = account
        return account

    async def new_user(self, prefix: str = "user", host: str | None = None) -> Account:
        """An account with a name no other test of this process uses."""
        while True:
            name = f"{prefix}{next(_user_numbers)}"
            if not await self.server.hosts[host or self.host].users.exists(name):
                return await self.create_user(name, host=host)

    async def delete_user(self, jid: str | Account) -> bool:
        parsed = JID.parse(str(jid))
        self.accounts.pop(parsed.bare, None)
        assert parsed.node is not None
        return await self.server.hosts[parsed.domain].users.delete(parsed.node, source="test")

    async def add_contact(
        self,
        owner: str | Account,
        contact: str | Account,
        subscription: str = "both",
        *,
        name: str | None = None,
        groups: Sequence[str] = (),
        mutual: bool = True,
    ) -> None:
        """Put ``contact`` on ``owner``'s roster with ``subscription`` (none, to, from,
        both); with ``mutual``, the contact's roster gets the matching item (``to`` on one
        side is ``from`` on the other) when the contact is an account of this server."""
        if subscription not in ("none", "to", "from", "both"):
            raise ValueError("subscription is none, to, from or both")
        a, b = JID.parse(str(owner)), JID.parse(str(contact))
        assert a.node is not None
        rosters = self.server.rosters
        await rosters.save(
            a.domain, a.node, RosterItem(b.bare, name, subscription, groups=tuple(groups))
        )
        if mutual and b.node is not None and b.domain in self.server.hosts:
            mirror = {"to": "from", "from": "to"}.get(subscription, subscription)
            await rosters.save(b.domain, b.node, RosterItem(a.bare, None, mirror))

    async def roster(self, owner: str | Account) -> dict[str, RosterItem]:
        jid = JID.parse(str(owner))
        assert jid.node is not None
        return await self.server.rosters.items(jid.domain, jid.node)

    def invites(self, host: str | None = None) -> Any:
        """The invites API of a host (``modules=[..., "invites"]``): ``create_account()``,
        ``create_contact()``, ``create_reset()`` (each with ``token=`` to choose the token,
        ``ttl=`` its life in seconds), ``find()``, ``revoke()``; expiry follows ``clock``."""
        module = self.server.hosts[host or self.host].modules.get("invites")
        if module is None:
            raise ValueError("the invites module is not enabled")
        return module.api

    async def create_invite(
        self,
        kind: str = "account",
        *,
        token: str | None = None,
        username: str | None = None,
        inviter: str | None = None,
        roles: Sequence[str] = (),
        groups: Sequence[str] = (),
        ttl: int | None = None,
        max_uses: int | None = None,
        host: str | None = None,
    ) -> Any:
        """An invite of ``kind``: ``account`` (any name, or ``username``), ``contact``
        (``inviter``'s contact; with ``username``, it may create that account first),
        ``account-and-contact``, or ``reset`` (``username``'s password)."""
        api = self.invites(host)
        if kind == "account":
            return await api.create_account(
                username, roles=list(roles), groups=list(groups), ttl=ttl, token=token,
                reusable=max_uses is not None, max_uses=max_uses,
            )  # fmt: skip
        if kind in ("contact", "account-and-contact"):
            if inviter is None:
                raise ValueError("a contact invite needs an inviter")
            return await api.create_contact(
                JID.parse(str(inviter)).node or str(inviter), ttl=ttl, token=token,
                allow_registration=kind == "account-and-contact", username=username,
            )  # fmt: skip
        if kind == "reset":
            if username is None:
                raise ValueError("a reset invite needs the username")
            return await api.create_reset(username, ttl=ttl, token=token)
        raise ValueError("kind is account, contact, account-and-contact or reset")
