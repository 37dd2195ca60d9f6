"""A one-off upgrade: databases written before modules used store kinds had module tables
(``offline`` of mod_offline, ``invites`` of mod_invites). Their rows move into the stores those
modules now open, in the same formats the modules write, and the tables go. Core schema step 3;
a database that never had them skips it. (Once no database predates it, this file can go.)
"""

from __future__ import annotations

import json
import secrets
import time
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from minixmpp.storage.sqlite import Transaction

_INVITE_FIELDS = (
    "token", "type", "jid", "inviter", "subject", "allow_registration", "reusable", "max_uses",
    "uses", "data", "uri", "landing_page", "created_at", "expires",
)  # fmt: skip


async def _has_table(tx: Transaction, name: str) -> bool:
    row = await tx.fetchone(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    )
    return row is not None


async def move_module_tables(tx: Transaction) -> None:
    now = time.time()
    if await _has_table(tx, "offline"):
        rows = await tx.fetchall("SELECT host, username, stanza FROM offline ORDER BY id")
        await tx.executemany(
            "INSERT INTO archive (host, store, user, key, at, peer, value)"
            " VALUES (?, 'offline', ?, ?, ?, NULL, ?)",
            [(r[0], r[1], secrets.token_urlsafe(12), now, bytes(r[2])) for r in rows],
        )
        await tx.execute("DROP TABLE offline")
        await tx.execute("DELETE FROM schema_versions WHERE component = 'offline'")
    if await _has_table(tx, "invites"):
        columns = ", ".join(_INVITE_FIELDS)
        rows = await tx.fetchall(f"SELECT host, {columns} FROM invites")  # noqa: S608
        for row in rows:
            host, values = row[0], dict(zip(_INVITE_FIELDS, row[1:], strict=True))
            extra = json.loads(values.pop("data") or "{}")
            invite: dict[str, Any] = {
                **values,
                "allow_registration": bool(values["allow_registration"]),
                "reusable": bool(values["reusable"]),
                "roles": extra.get("roles", []),
                "groups": extra.get("groups", []),
                "allow_reset": extra.get("allow_reset"),
                "source": extra.get("source"),
                "note": extra.get("note"),
            }
            await tx.execute(
                "INSERT INTO kv (host, store, user, key, value) VALUES (?, 'invites', '', ?, ?)",
                (host, invite["token"], msgspec.json.encode(invite)),
            )
            for user in {invite["inviter"], invite["subject"]} - {None}:
                await tx.execute(
                    "INSERT OR IGNORE INTO kv (host, store, user, key, value)"
                    " VALUES (?, 'invite_users', ?, ?, '1')",
                    (host, user, invite["token"]),
                )
        await tx.execute("DROP TABLE invites")
        await tx.execute("DELETE FROM schema_versions WHERE component = 'invites'")
