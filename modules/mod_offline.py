"""Offline messages (XEP-0160): chat and normal messages to an account with no available
resource are stored with a delay stamp (XEP-0203) and delivered, oldest first, when a resource
sends its first available presence with a non-negative priority.

mod_message decides what is offered here (never headlines, groupchat or errors); a user with
``offline_max_messages`` stored gets no more, and the sender gets ``service-unavailable``.
"""

from __future__ import annotations

from dataclasses import dataclass

from minixmpp.events import OFFLINE_BROADCAST, StanzaEvent
from minixmpp.module import Module
from minixmpp.xml import stanza as st

MIGRATIONS = (
    """
    CREATE TABLE offline (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        host TEXT NOT NULL,
        username TEXT NOT NULL,
        stanza BLOB NOT NULL
    );
    CREATE INDEX offline_by_user ON offline (host, username, id);
    """,
)


@dataclass
class Options:
    offline_max_messages: int = 1000  # per account


def load(module: Module) -> None:
    opts = module.options(Options)
    module.migrate("offline", MIGRATIONS)
    module.own_user_rows("offline")
    module.add_feature("msgoffline")
    storage = module.storage
    host = module.host
    # Accounts that may have messages stored (a superset), so that the logins of all the
    # others need no trip to the database: filled at the first delivery, added to by store().
    holders: set[str] = set()
    loaded = False
    stores = 0

    @module.hook("message/offline/handle")
    async def store(event: StanzaEvent) -> bool | None:
        assert event.to is not None and event.to.node is not None
        username = event.to.node
        stanza = event.stanza
        st.add_delay(stanza, host)
        async with storage.transaction() as tx:
            row = await tx.fetchone(
                "SELECT count(*) FROM offline WHERE host = ? AND username = ?", (host, username)
            )
            if row is not None and row[0] >= opts.offline_max_messages:
                module.log.info("offline store of %s@%s is full", username, host)
                return None  # mod_message answers service-unavailable
            await tx.execute(
                "INSERT INTO offline (host, username, stanza) VALUES (?, ?, ?)",
                (host, username, st.tostring(stanza)),
            )
        nonlocal stores
        stores += 1
        holders.add(username)
        return True

    @module.hook(OFFLINE_BROADCAST)
    async def deliver(event: StanzaEvent) -> None:
        session = event.session
        username = session.username
        assert username is not None
        nonlocal loaded
        if not loaded:
            found = await storage.fetchall(
                "SELECT DISTINCT username FROM offline WHERE host = ?", (host,)
            )
            holders.update(row[0] for row in found)
            loaded = True
        if username not in holders:
            return
        before = stores
        # Read, send and delete in one write transaction: two resources coming online at once
        # take turns, and the second finds nothing left (sending only queues, it never waits).
        async with storage.transaction() as tx:
            rows = await tx.fetchall(
                "SELECT id, stanza FROM offline WHERE host = ? AND username = ? ORDER BY id",
                (host, username),
            )
            sent = []
            for row_id, data in rows:
                stanza = st.from_stored(bytes(data))
                if stanza is None:  # undeliverable: it must not hold up the ones behind it
                    module.log.warning("dropping an unreadable offline message for %s", username)
                    sent.append(row_id)
                elif session.send(stanza):
                    sent.append(row_id)
            if sent:
                await tx.executemany("DELETE FROM offline WHERE id = ?", [(i,) for i in sent])
        if len(sent) == len(rows) and before == stores:
            holders.discard(username)
