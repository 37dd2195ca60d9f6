"""Accounts: SCRAM credentials for SHA-1 and SHA-256, never the password.

``Accounts`` is the storage side (rows in the ``accounts`` table). ``Users`` is the host-scoped
face that modules and the CLI use: it also fires ``user-created``, ``user-deleted`` and
``user-password-changed`` on the host's event bus so modules can react (kick sessions, clean up).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from scramp.utils import ScramException, saslprep

from minixmpp.events import (
    USER_CREATED,
    USER_DELETED,
    USER_DELETING,
    USER_PASSWORD_CHANGED,
    EventBus,
    UserEvent,
)
from minixmpp.storage import Storage, Transaction, put

if TYPE_CHECKING:
    from minixmpp.session import Session

HASHES = ("sha1", "sha256")
_ALGORITHMS: dict[str, type[hashes.HashAlgorithm]] = {"sha1": hashes.SHA1, "sha256": hashes.SHA256}


def pbkdf2(hash_name: str, password: bytes, salt: bytes, iterations: int) -> bytes:
    """RFC 5802's Hi(): PBKDF2 with HMAC, as long as the hash. Done by ``cryptography``: its
    OpenSSL (3.5 and later) takes 1.7 ms for 10 000 SHA-1 iterations where hashlib's, linked
    to the system's OpenSSL 3.0, takes 3.5 ms; like hashlib it releases the GIL meanwhile."""
    algorithm = _ALGORITHMS[hash_name]()
    return PBKDF2HMAC(algorithm, algorithm.digest_size, salt, iterations).derive(password)


@dataclass(frozen=True, slots=True)
class ScramKeys:
    """What a SCRAM server needs for one hash: enough to verify a client, not to log in."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


@dataclass(frozen=True, slots=True)
class Credentials:
    sha1: ScramKeys
    sha256: ScramKeys

    def for_hash(self, name: str) -> ScramKeys:
        return self.sha1 if name == "sha1" else self.sha256


class BadPassword(ValueError):
    """A password SASLprep refuses (RFC 4013: control characters, bad bidi, unassigned code
    points) or that it maps to nothing."""


def prepare_password(password: str) -> bytes:
    try:
        prepared: str = saslprep(password)
    except ScramException:
        raise BadPassword("password fails SASLprep") from None
    if not prepared:
        raise BadPassword("password is empty")
    return prepared.encode()


def derive_keys(
    hash_name: str, password: str, iterations: int, salt: bytes | None = None
) -> ScramKeys:
    """RFC 5802 key derivation from a SASLprep'ed password (BadPassword if it has none)."""
    salt = os.urandom(16) if salt is None else salt
    salted = pbkdf2(hash_name, prepare_password(password), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", hash_name)
    return ScramKeys(
        salt=salt,
        iterations=iterations,
        stored_key=hashlib.new(hash_name, client_key).digest(),
        server_key=hmac.digest(salted, b"Server Key", hash_name),
    )


def derive_credentials(password: str, iterations: int) -> Credentials:
    return Credentials(
        sha1=derive_keys("sha1", password, iterations),
        sha256=derive_keys("sha256", password, iterations),
    )


def check_password(credentials: Credentials, password: str) -> bool:
    """Check a plaintext password (SASL PLAIN) against the stored SHA-256 keys."""
    keys = credentials.sha256
    try:
        derived = derive_keys("sha256", password, keys.iterations, keys.salt)
    except BadPassword:
        return False
    return hmac.compare_digest(derived.stored_key, keys.stored_key)


ACCOUNT_DETAILS = "account_details"  # keyval store: what registration learnt (Prosody's name)
_COLUMNS = ", ".join(
    f"{h}_{c}" for h in HASHES for c in ("salt", "iterations", "stored_key", "server_key")
)


class Accounts:
    """Account rows. Usernames and hosts given here are already prepared (nodeprep/nameprep)."""

    def __init__(self, storage: Storage, iterations: int = 10000) -> None:
        self.storage = storage
        self.iterations = iterations

    async def credentials(self, host: str, username: str) -> Credentials | None:
        rows = await self.storage.lookup(
            f"SELECT {_COLUMNS} FROM accounts WHERE host = ? AND username = ?",  # noqa: S608
            (host, username),
        )
        if not rows:
            return None
        row = rows[0]
        return Credentials(
            sha1=ScramKeys(bytes(row[0]), row[1], bytes(row[2]), bytes(row[3])),
            sha256=ScramKeys(bytes(row[4]), row[5], bytes(row[6]), bytes(row[7])),
        )

    async def exists(self, host: str, username: str) -> bool:
        row = await self.storage.fetchone(
            "SELECT 1 FROM accounts WHERE host = ? AND username = ?", (host, username)
        )
        return row is not None

    async def list(self, host: str) -> list[str]:
        rows = await self.storage.fetchall(
            "SELECT username FROM accounts WHERE host = ? ORDER BY username", (host,)
        )
        return [row[0] for row in rows]

    async def count(self, host: str) -> int:
        row = await self.storage.fetchone("SELECT count(*) FROM accounts WHERE host = ?", (host,))
        return int(row[0]) if row else 0

    async def derive(self, password: str) -> Credentials:
        # PBKDF2 releases the GIL: run it off the event loop so logins elsewhere go on.
        return await asyncio.to_thread(derive_credentials, password, self.iterations)

    @staticmethod
    def _values(c: Credentials) -> tuple[object, ...]:
        return tuple(
            v
            for keys in (c.sha1, c.sha256)
            for v in (keys.salt, keys.iterations, keys.stored_key, keys.server_key)
        )

    async def insert(
        self, tx: Transaction, host: str, username: str, credentials: Credentials
    ) -> bool:
        """Insert inside an open transaction; False if the account exists."""
        count = await tx.execute(
            f"INSERT OR IGNORE INTO accounts (host, username, created_at, {_COLUMNS})"  # noqa: S608
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (host, username, int(time.time()), *self._values(credentials)),
        )
        return count == 1

    async def create(
        self,
        host: str,
        username: str,
        password: str,
        details: dict[str, Any] | None = None,
        within: Sequence[Callable[[Transaction], Awaitable[None]]] = (),
    ) -> bool:
        """Create the account, with its ``account_details`` if given, in one transaction;
        False if it already exists. ``within`` run in that transaction too: if one raises,
        nothing is created."""
        credentials = await self.derive(password)
        async with self.storage.transaction() as tx:
            if not await self.insert(tx, host, username, credentials):
                return False
            if details is not None:
                await put(tx, host, ACCOUNT_DETAILS, username, "", details)
            for step in within:
                await step(tx)
            return True

    async def set_password(
        self,
        host: str,
        username: str,
        password: str,
        within: Sequence[Callable[[Transaction], Awaitable[None]]] = (),
    ) -> bool:
        """Set the password; False if there is no such account. ``within`` run in the same
        transaction: if one raises, the password is unchanged."""
        credentials = await self.derive(password)
        assignments = ", ".join(f"{c} = ?" for c in _COLUMNS.split(", "))
        async with self.storage.transaction() as tx:
            count = await tx.execute(
                f"UPDATE accounts SET {assignments} WHERE host = ? AND username = ?",  # noqa: S608
                (*self._values(credentials), host, username),
            )
            if count != 1:
                return False
            for step in within:
                await step(tx)
        return True

    async def delete(self, host: str, username: str) -> bool:
        """Delete the account and every row it owns (see Storage.user_tables), atomically."""
        async with self.storage.transaction() as tx:
            count = await tx.execute(
                "DELETE FROM accounts WHERE host = ? AND username = ?", (host, username)
            )
            if count:
                await self.storage.delete_user_rows(tx, host, username)
        if count:
            for forget in self.storage.user_rows_deleted:
                forget(host, username)
        return count == 1


ROLES = "roles"  # keyval store: an account's roles, primary first (Prosody 13's model)
ADMIN_ROLE = "prosody:admin"


class Users:
    """Accounts of one host, with the events other modules listen to."""

    def __init__(self, accounts: Accounts, host: str, events: EventBus) -> None:
        self.accounts = accounts
        self.host = host
        self.events = events
        self.admins: set[str] = set()  # usernames holding ADMIN_ROLE (see load_roles)
        # How often each user's credentials were revoked (password changed, account deleted)
        # since start: a login that looked its credentials up before then may not bind.
        self._revoked: dict[str, int] = {}

    def epoch(self, username: str) -> int:
        """Changes whenever logins made with the user's credentials so far stop counting."""
        return self._revoked.get(username, 0)

    def _revoke(self, username: str) -> None:
        self._revoked[username] = self._revoked.get(username, 0) + 1

    async def load_roles(self) -> None:
        rows = await self.accounts.storage.fetchall(
            "SELECT user, value FROM kv WHERE host = ? AND store = ? AND key = ''",
            (self.host, ROLES),
        )
        self.admins = {row[0] for row in rows if ADMIN_ROLE in msgspec.json.decode(row[1])}

    async def roles(self, username: str) -> list[str]:
        roles = await self.accounts.storage.keyval(self.host, ROLES).get(username)
        return list(roles or [])

    async def set_roles(self, username: str, roles: Sequence[str]) -> None:
        """Give the account these roles (``prosody:admin`` makes it an admin)."""
        await self.accounts.storage.keyval(self.host, ROLES).set(username, list(roles) or None)
        if ADMIN_ROLE in roles:
            self.admins.add(username)
        else:
            self.admins.discard(username)

    async def exists(self, username: str) -> bool:
        return await self.accounts.exists(self.host, username)

    async def list(self) -> list[str]:
        return await self.accounts.list(self.host)

    async def count(self) -> int:
        return await self.accounts.count(self.host)

    async def credentials(self, username: str) -> Credentials | None:
        return await self.accounts.credentials(self.host, username)

    async def create(
        self,
        username: str,
        password: str,
        *,
        source: str = "core",
        session: Session | None = None,
        details: dict[str, Any] | None = None,
        within: Sequence[Callable[[Transaction], Awaitable[None]]] = (),
    ) -> bool:
        """Create the account (with ``details`` in the ``account_details`` store and the
        ``within`` steps, atomically); False if it exists, BadPassword if SASLprep refuses the
        password. ``user-created`` fires after."""
        if not await self.accounts.create(self.host, username, password, details, within):
            return False
        await self.events.fire(USER_CREATED, UserEvent(username, self.host, source, session))
        return True

    async def set_password(
        self,
        username: str,
        password: str,
        *,
        source: str = "core",
        session: Session | None = None,
        close_sessions: bool = True,
        within: Sequence[Callable[[Transaction], Awaitable[None]]] = (),
    ) -> bool:
        """Set a new password (with the ``within`` steps, atomically; BadPassword if SASLprep
        refuses it); the user's sessions
        other than ``session`` are then closed (``reset``), unless ``close_sessions`` is false
        (a reset by invite, as Prosody)."""
        if not await self.accounts.set_password(self.host, username, password, within):
            return False
        if close_sessions:
            self._revoke(username)
        event = UserEvent(username, self.host, source, session)
        event.extra["close_sessions"] = close_sessions
        await self.events.fire(USER_PASSWORD_CHANGED, event)
        return True

    async def delete(
        self, username: str, *, source: str = "core", session: Session | None = None
    ) -> bool:
        """Delete the account and all it owns in one transaction. ``user-deleting`` fires first
        (handlers keep what they need in ``event.extra``), ``user-deleted`` after."""
        if not await self.accounts.exists(self.host, username):
            return False
        event = UserEvent(username, self.host, source, session)
        await self.events.fire(USER_DELETING, event)
        if not await self.accounts.delete(self.host, username):
            return False
        self._revoke(username)
        self.admins.discard(username)
        await self.events.fire(USER_DELETED, event)
        return True
