"""Offline messages (XEP-0160): chat and normal messages to an account with no available
resource are stored with a delay stamp (XEP-0203) and delivered, oldest first, when a resource
sends its first available presence with a non-negative priority.

mod_message decides what is offered here (never headlines, groupchat or errors). An account
holds at most ``offline_max_messages`` messages and ``offline_max_bytes`` bytes (the stored
stanzas, delay stamps included); a message that does not fit is refused and the sender gets
``service-unavailable``, as from Prosody when its archive store is over quota.

The backlog is delivered in batches of at most ``BATCH_MESSAGES`` messages and ``BATCH_BYTES``
bytes (always at least one message): each batch is read, sent and deleted in one transaction,
and the next is read only once the client has taken the previous one off the socket's buffer
(Session.drain), so a large backlog costs neither memory nor the connection.
"""

from __future__ import annotations

from dataclasses import dataclass

from minixmpp.config import NonNegativeInt
from minixmpp.events import (
    CONFIG_RELOADED,
    OFFLINE_BROADCAST,
    SERVER_RESETTING,
    ConfigReloaded,
    ServerEvent,
    StanzaEvent,
)
from minixmpp.module import Module
from minixmpp.session import Session
from minixmpp.storage import ArchiveStore
from minixmpp.xml import stanza as st

BATCH_MESSAGES = 100
BATCH_BYTES = 256 * 1024  # far below the 4 MB of unsent output at which a client is dropped


@dataclass
class Options:
    offline_max_messages: NonNegativeInt = 1000  # per account
    offline_max_bytes: NonNegativeInt = 10 * 1024 * 1024  # per account


def load(module: Module) -> None:
    opts = module.options(Options)
    module.add_feature("msgoffline")
    archive: ArchiveStore = module.open_store("offline", "archive")  # Prosody's store too

    @module.hook(CONFIG_RELOADED)
    async def reloaded(_event: ConfigReloaded) -> None:
        nonlocal opts
        opts = module.options(Options)

    host = module.host
    # Accounts that may have messages stored (a superset), so that the logins of all the
    # others need no trip to the database: filled at the first delivery, added to by store().
    holders: set[str] = set()
    loaded = False
    stores = 0

    @module.hook(SERVER_RESETTING)
    async def resetting(_event: ServerEvent) -> None:
        nonlocal loaded
        holders.clear()  # the stores are replaced: learn them again at the next delivery
        loaded = False

    @module.hook("message/offline/handle")
    async def store(event: StanzaEvent) -> bool | None:
        assert event.to is not None and event.to.node is not None
        username = event.to.node
        stanza = event.stanza
        st.add_delay(stanza, host, module.clock.stamp())
        data = st.tostring(stanza)
        async with module.transaction() as tx:
            count, size = await archive.summary(username, tx=tx)
            if count >= opts.offline_max_messages or size + len(data) > opts.offline_max_bytes:
                module.log.info("offline store of %s@%s is full", username, host)
                return None  # mod_message answers service-unavailable
            await archive.append(
                username, data, peer=stanza.get("from"), when=module.clock.time(), tx=tx
            )
        nonlocal stores
        stores += 1
        holders.add(username)
        return True

    @module.hook(OFFLINE_BROADCAST)
    async def deliver(event: StanzaEvent) -> None:
        session = event.session
        assert session.username is not None
        username = session.username
        nonlocal loaded
        if not loaded:
            holders.update(await archive.users())
            loaded = True
        if username not in holders:
            return
        before = stores
        while True:
            sent = await deliver_batch(session, username)
            if sent is None:  # the stream is gone: the rest stays stored
                return
            if not sent:
                break
            await session.drain()
        if before == stores:
            holders.discard(username)

    async def deliver_batch(session: Session, username: str) -> int | None:
        """Send the oldest messages (one batch) and delete them. Returns how many were taken,
        None if the stream stopped taking them. Read, send and delete are one transaction: two
        resources coming online at once take turns, and each message goes to one of them."""
        async with module.transaction() as tx:
            items = await archive.find(username, limit=BATCH_MESSAGES, max_bytes=BATCH_BYTES, tx=tx)
            taken = []
            for item in items:
                stanza = st.from_stored(item.value)
                if stanza is None:  # undeliverable: it must not hold up the ones behind it
                    module.log.warning("dropping an unreadable offline message for %s", username)
                elif not session.send(stanza):
                    break
                taken.append(item.id)
            await archive.delete(username, ids=taken, tx=tx)
        return len(taken) if len(taken) == len(items) else None
