"""Rosters (RFC 6121 §2 and §3) in core tables: items, a version per roster, pending requests.

An item holds the subscription state of one contact (``none``/``to``/``from``/``both``), the
pending-out flag (``ask``), the pre-approval flag (``approved``, §3.4), a name and groups. A
pending-in subscription request is kept as the whole stanza, so that it can be redelivered
verbatim, extensions and all (Prosody's keep_full_sub_req). Every change bumps the roster's
version (§2.6), which roster pushes carry.

This is storage only; mod_roster (the protocol, pushes) and mod_presence (the subscription
state machine) work on top of it.
"""

from __future__ import annotations

import json
import sqlite3
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from lxml import etree

from minixmpp.events import EventName
from minixmpp.storage import Storage, Transaction
from minixmpp.xml import stanza as st

NS_ROSTER = "jabber:iq:roster"

MIGRATIONS = (
    """
    CREATE TABLE roster (
        host TEXT NOT NULL,
        username TEXT NOT NULL,
        contact TEXT NOT NULL,
        name TEXT,
        subscription TEXT NOT NULL DEFAULT 'none',
        ask INTEGER NOT NULL DEFAULT 0,
        approved INTEGER NOT NULL DEFAULT 0,
        groups TEXT NOT NULL DEFAULT '[]',
        PRIMARY KEY (host, username, contact)
    ) WITHOUT ROWID;
    CREATE TABLE roster_version (
        host TEXT NOT NULL,
        username TEXT NOT NULL,
        version INTEGER NOT NULL,
        PRIMARY KEY (host, username)
    ) WITHOUT ROWID;
    CREATE TABLE roster_pending (
        host TEXT NOT NULL,
        username TEXT NOT NULL,
        contact TEXT NOT NULL,
        stanza BLOB NOT NULL,
        received_at REAL NOT NULL,
        PRIMARY KEY (host, username, contact)
    ) WITHOUT ROWID;
    """,
    "CREATE INDEX roster_by_contact ON roster (host, contact) WHERE approved = 1",
)
# Deleted with the account. Its roster_version row stays, one version on: a version is never
# reused, not even by a new account of the same name (a client's cache would look current).
USER_TABLES = ("roster", "roster_pending")


class RosterFull(Exception):
    """A change would add an item to a roster that holds ``limit`` items already."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"roster holds {limit} items")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class RosterItem:
    jid: str  # the contact's bare JID
    name: str | None = None
    subscription: str = "none"  # none | to | from | both
    ask: bool = False  # we asked to subscribe to them (pending out)
    approved: bool = False  # we pre-approved their request (RFC 6121 §3.4)
    groups: tuple[str, ...] = field(default_factory=tuple)

    @property
    def to(self) -> bool:
        """We receive their presence."""
        return self.subscription in ("to", "both")

    @property
    def from_(self) -> bool:
        """They receive our presence."""
        return self.subscription in ("from", "both")

    def with_(self, **changes: object) -> RosterItem:
        return replace(self, **changes)  # type: ignore[arg-type]

    def element(self, *, removed: bool = False) -> etree._Element:
        """The ``<item/>`` of a roster result or push."""
        item = st.element(
            f"{{{NS_ROSTER}}}item",
            {
                "jid": self.jid,
                "name": self.name,
                "subscription": "remove" if removed else self.subscription,
                "ask": "subscribe" if self.ask and not removed else None,
                "approved": "true" if self.approved and not removed else None,
            },
        )
        if not removed:
            for group in self.groups:
                st.sub(item, f"{{{NS_ROSTER}}}group", text=group)
        return item


@dataclass(slots=True)
class RosterItemRemoved:
    """A user removed ``item`` from the roster; ``pending`` says a request from the contact was
    waiting. Subscriptions are cancelled by whoever handles this (mod_presence)."""

    username: str
    item: RosterItem
    pending: bool


# a user removed a contact
ROSTER_ITEM_REMOVED: EventName[RosterItemRemoved] = EventName("roster-item-removed")


@dataclass(frozen=True, slots=True)
class SubscriptionApproved:
    """``username`` let ``contact`` see its presence (the subscription is now from or both):
    the user said so (``by="user"``), or an invite did (``by="invite"``, XEP-0379)."""

    username: str
    contact: str
    by: str = "user"


SUBSCRIPTION_APPROVED: EventName[SubscriptionApproved] = EventName("subscription-approved")


def subscription_of(to: bool, from_: bool) -> str:
    return "both" if to and from_ else "to" if to else "from" if from_ else "none"


def with_directions(
    to: bool | None = None, from_: bool | None = None, **changes: object
) -> Callable[[RosterItem | None], RosterItem | None]:
    """A change (for Rosters.update) to an existing item's subscription directions (None:
    keep) and other fields; no item stays no item."""

    def change(item: RosterItem | None) -> RosterItem | None:
        if item is None:
            return None
        subscription = subscription_of(
            item.to if to is None else to, item.from_ if from_ is None else from_
        )
        return item.with_(subscription=subscription, **changes)

    return change


class Rosters:
    """Roster rows of every host. Usernames and JIDs given here are prepared.

    The rosters most recently read whole are kept in memory (``cache_size`` users): presence
    reads a user's roster at every broadcast and a contact's item at every probe. Every change
    goes through this class (or ``forget()``, for deleted accounts), which keeps them current;
    a read that raced with a change is not kept.
    """

    cache_size = 1024

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._cache: OrderedDict[tuple[str, str], dict[str, RosterItem]] = OrderedDict()
        self._changes = 0  # bumped by every change: reads in flight across one are not kept
        # Users who may have pending requests (a superset): most have none, and then no
        # login needs the database to find out.
        self._pending_users: set[tuple[str, str]] = set()
        self._pending_changes = 0

    async def reload(self) -> None:
        """Forget what is kept in memory and read it again (the rows were replaced under us:
        the test harness's reset)."""
        self._cache.clear()
        self._pending_users.clear()
        self._pending_changes += 1
        await self._load_pending()

    async def _load_pending(self) -> None:
        rows = await self.storage.fetchall("SELECT DISTINCT host, username FROM roster_pending")
        self._pending_users.update((row[0], row[1]) for row in rows)

    async def setup(self) -> None:
        await self.storage.migrate("roster", MIGRATIONS)
        self.storage.user_rows_deleted.append(self.forget)
        self.storage.user_deletion_steps.append(_bump_if_versioned)
        await self._load_pending()
        for table in USER_TABLES:
            self.storage.own_user_rows(table, "host", "username")

    async def version(self, host: str, username: str) -> int:
        row = await self.storage.fetchone(
            "SELECT version FROM roster_version WHERE host = ? AND username = ?", (host, username)
        )
        return int(row[0]) if row else 0

    async def items(self, host: str, username: str) -> dict[str, RosterItem]:
        """The whole roster (a copy the caller may keep), ordered by contact."""
        key = (host, username)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return dict(cached)
        changes = self._changes
        rows = await self.storage.lookup(  # the primary key's order: at most roster_max_items
            "SELECT contact, name, subscription, ask, approved, groups FROM roster"
            " WHERE host = ? AND username = ? ORDER BY contact",
            (host, username),
        )
        items = {row[0]: _item(row) for row in rows}
        if changes == self._changes:
            self._cache[key] = items
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return dict(items)

    async def item(self, host: str, username: str, contact: str) -> RosterItem | None:
        cached = self._cache.get((host, username))
        if cached is not None:
            self._cache.move_to_end((host, username))
            return cached.get(contact)
        # The whole roster, kept: whoever asks about one contact (a PEP access check for each
        # of 100 recipients, presence probes) asks about the next one soon
        return (await self.items(host, username)).get(contact)

    async def approving(self, host: str, contact: str) -> list[str]:
        """The users of ``host`` who have pre-approved ``contact`` (RFC 6121 §3.4)."""
        rows = await self.storage.fetchall(
            "SELECT username FROM roster WHERE host = ? AND contact = ? AND approved = 1",
            (host, contact),
        )
        return [row[0] for row in rows]

    def forget(self, host: str, username: str) -> None:
        """Drop what is kept of a roster changed behind this class's back (a deleted account)."""
        self._changes += 1
        self._cache.pop((host, username), None)
        self._pending_users.discard((host, username))

    def _changed(self, host: str, username: str, contact: str, item: RosterItem | None) -> None:
        self._changes += 1
        key = (host, username)
        cached = self._cache.get(key)
        if cached is None:
            return
        if item is None:
            cached.pop(contact, None)
        elif contact in cached:
            cached[contact] = item
        else:  # a new contact: keep the order by contact, as read from the database
            cached[contact] = item
            self._cache[key] = dict(sorted(cached.items()))

    async def save(self, host: str, username: str, item: RosterItem) -> int:
        """Store ``item``; return the roster's new version."""
        async with self.storage.transaction() as tx:
            version = await self.save_in(tx, host, username, item)
        self._changed(host, username, item.jid, item)
        return version

    async def save_in(self, tx: Transaction, host: str, username: str, item: RosterItem) -> int:
        """Store ``item`` as part of a larger transaction (the caller must ``forget()`` the
        roster once it is committed)."""
        await tx.execute(
            "INSERT INTO roster (host, username, contact, name, subscription, ask, approved,"
            " groups) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (host, username, contact) DO"
            " UPDATE SET name = excluded.name, subscription = excluded.subscription,"
            " ask = excluded.ask, approved = excluded.approved, groups = excluded.groups",
            (
                host,
                username,
                item.jid,
                item.name,
                item.subscription,
                int(item.ask),
                int(item.approved),
                json.dumps(list(item.groups)),
            ),
        )
        return await _bump(tx, host, username)

    async def update(
        self,
        host: str,
        username: str,
        contact: str,
        change: Callable[[RosterItem | None], RosterItem | None],
        max_items: int | None = None,
    ) -> tuple[RosterItem | None, RosterItem | None, int | None]:
        """Read-modify-write one item atomically (the subscription state machine races with
        itself otherwise). ``change`` gets the current item (or None) and returns the new one
        (None: delete). Returns (old, new, new version or None when nothing changed). Raises
        RosterFull, changing nothing, if it would add an item beyond ``max_items``."""
        async with self.storage.transaction() as tx:
            row = await tx.fetchone(
                "SELECT contact, name, subscription, ask, approved, groups FROM roster"
                " WHERE host = ? AND username = ? AND contact = ?",
                (host, username, contact),
            )
            old = None if row is None else _item(row)
            new = change(old)
            if new == old:
                return old, new, None
            if old is None and max_items is not None:
                count = await tx.fetchone(
                    "SELECT count(*) FROM roster WHERE host = ? AND username = ?",
                    (host, username),
                )
                if count is not None and count[0] >= max_items:
                    raise RosterFull(max_items)
            if new is None:
                await tx.execute(
                    "DELETE FROM roster WHERE host = ? AND username = ? AND contact = ?",
                    (host, username, contact),
                )
                version = await _bump(tx, host, username)
            else:
                version = await self.save_in(tx, host, username, new)
        self._changed(host, username, contact, new)
        return old, new, version

    # -- pending-in subscription requests ----------------------------------------------------

    async def add_pending(
        self, host: str, username: str, contact: str, stanza: bytes, limit: int | None = None
    ) -> bool:
        """Keep an inbound subscription request (the last one from a contact wins). False, and
        nothing kept, when ``limit`` requests from other contacts are pending already."""
        self._pending_users.add((host, username))
        self._pending_changes += 1
        async with self.storage.transaction() as tx:
            if limit is not None:
                row = await tx.fetchone(
                    "SELECT count(*) FROM roster_pending"
                    " WHERE host = ? AND username = ? AND contact != ?",
                    (host, username, contact),
                )
                if row is not None and row[0] >= limit:
                    return False
            await tx.execute(
                "INSERT INTO roster_pending (host, username, contact, stanza, received_at)"
                " VALUES (?, ?, ?, ?, julianday('now')) ON CONFLICT (host, username, contact)"
                " DO UPDATE SET stanza = excluded.stanza, received_at = excluded.received_at",
                (host, username, contact, stanza),
            )
        return True

    async def remove_pending(self, host: str, username: str, contact: str) -> bool:
        if (host, username) not in self._pending_users:
            return False
        async with self.storage.transaction() as tx:
            count = await tx.execute(
                "DELETE FROM roster_pending WHERE host = ? AND username = ? AND contact = ?",
                (host, username, contact),
            )
        return count == 1

    async def is_pending(self, host: str, username: str, contact: str) -> bool:
        if (host, username) not in self._pending_users:
            return False
        row = await self.storage.fetchone(
            "SELECT 1 FROM roster_pending WHERE host = ? AND username = ? AND contact = ?",
            (host, username, contact),
        )
        return row is not None

    async def pending(self, host: str, username: str) -> list[tuple[str, bytes]]:
        """Pending requests to ``username``, oldest first: (contact, the stanza as received)."""
        key = (host, username)
        if key not in self._pending_users:
            return []
        changes = self._pending_changes
        rows = await self.storage.fetchall(
            "SELECT contact, stanza FROM roster_pending WHERE host = ? AND username = ?"
            " ORDER BY received_at",
            (host, username),
        )
        if not rows and changes == self._pending_changes:
            self._pending_users.discard(key)
        return [(row[0], bytes(row[1])) for row in rows]


def _item(row: sqlite3.Row) -> RosterItem:
    return RosterItem(
        jid=row[0],
        name=row[1],
        subscription=row[2],
        ask=bool(row[3]),
        approved=bool(row[4]),
        groups=tuple(json.loads(row[5])),
    )


async def _bump(tx: Transaction, host: str, username: str) -> int:
    await tx.execute(
        "INSERT INTO roster_version (host, username, version) VALUES (?, ?, 1)"
        " ON CONFLICT (host, username) DO UPDATE SET version = version + 1",
        (host, username),
    )
    row = await tx.fetchone(
        "SELECT version FROM roster_version WHERE host = ? AND username = ?", (host, username)
    )
    assert row is not None
    return int(row[0])


async def _bump_if_versioned(tx: Transaction, host: str, username: str) -> None:
    await tx.execute(
        "UPDATE roster_version SET version = version + 1 WHERE host = ? AND username = ?",
        (host, username),
    )
