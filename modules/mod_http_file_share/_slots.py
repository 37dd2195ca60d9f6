"""The slots issued: one item each in the host's own archive store ``uploads`` (Prosody's
layout: its id is the slot, its time when it was issued, its peer the uploader's bare JID, its
value the ``Record``), and the quotas checked against them.

A slot counts against the quotas from the moment it is issued, whether or not a file is ever
put into it (as in Prosody): a client cannot get around a quota by asking for slots it does not
use. Checking the quotas and adding the slot happen in one transaction, so clients racing for
the last bytes of a quota cannot both get them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from lxml import etree

from minixmpp.clock import Clock, stamp
from minixmpp.errors import StanzaError
from minixmpp.storage import ArchiveItem, ArchiveStore, Transaction
from minixmpp.xml import stanza as st

from ._rules import NS, Record

DAY = 86400.0
PAGE = 500


@dataclass(frozen=True)
class Quotas:
    daily_bytes: int  # per uploader, over the last 24 hours
    daily_slots: int  # likewise (minixmpp's own: records are small, but not free)
    global_bytes: int | None  # every slot's size on this host together


def new_slot_id() -> str:
    """24 URL-safe characters (144 random bits): long enough that URLs cannot be guessed."""
    return secrets.token_urlsafe(18)


def size_of(item: ArchiveItem) -> int:
    record = Record.decode(item.value)
    return record.size if record is not None else 0


class Slots:
    def __init__(
        self,
        store: ArchiveStore,
        transaction: Callable[[], AbstractAsyncContextManager[Transaction]],
        clock: Clock,
        quotas: Quotas,
    ) -> None:
        self._store = store
        self._transaction = transaction
        self._clock = clock
        self.quotas = quotas
        self._total: int | None = None  # bytes of all slots, counted when first needed

    def forget_total(self) -> None:
        """Slots went (expiry, a deleted account, a reset): count again when next needed."""
        self._total = None

    async def issue(self, uploader: str, record: Record) -> tuple[str, float]:
        """A new slot for ``uploader``: (its id, when it was issued); StanzaError when a quota
        would be exceeded (Prosody's conditions and texts, and the XEP's <retry/>)."""
        now = self._clock.time()
        async with self._transaction() as tx:
            total = await self._global_total(tx)
            limit = self.quotas.global_bytes
            if limit is not None and total + record.size > limit:
                raise StanzaError("resource-constraint", "Server global storage quota reached")
            recent = await self._store.find(None, peer=uploader, start=now - DAY, tx=tx)
            used = sum(size_of(item) for item in recent)
            if (
                used + record.size > self.quotas.daily_bytes
                or len(recent) >= self.quotas.daily_slots
            ):
                raise StanzaError(
                    "resource-constraint", "Daily quota reached", app=self._retry(recent, record)
                )
            slot = new_slot_id()
            await self._store.append(None, record.encode(), peer=uploader, when=now, id=slot, tx=tx)
        if self._total is not None:
            self._total += record.size
        return slot, now

    def _retry(self, recent: list[ArchiveItem], record: Record) -> etree._Element | None:
        """XEP-0363's <retry stamp=…/>: when enough of the last day's slots are a day old for
        this one to fit (none if it never will)."""
        used, count = sum(size_of(item) for item in recent), len(recent)
        for item in sorted(recent, key=lambda i: i.when):
            used, count = used - size_of(item), count - 1
            if used + record.size <= self.quotas.daily_bytes and count < self.quotas.daily_slots:
                return st.element(f"{{{NS}}}retry", {"stamp": stamp(item.when + DAY + 1)})
        return None

    async def _global_total(self, tx: Transaction) -> int:
        if self.quotas.global_bytes is None:
            return 0
        if self._total is None:
            total, after = 0, None
            while True:
                page = await self._store.find(None, after_id=after, limit=PAGE, tx=tx)
                total += sum(size_of(item) for item in page)
                if len(page) < PAGE:
                    break
                after = page[-1].id
            self._total = total
        return self._total

    async def get(self, slot: str) -> tuple[Record, float, str | None] | None:
        """The slot's record, when it was issued and by whom; None if there is no such slot."""
        found = await self._store.find(None, ids=[slot])
        if not found:
            return None
        record = Record.decode(found[0].value)
        return None if record is None else (record, found[0].when, found[0].peer)

    async def existing(self, ids: list[str], tx: Transaction | None = None) -> set[str]:
        """Which of these slots exist."""
        found: set[str] = set()
        for start in range(0, len(ids), PAGE):
            batch = ids[start : start + PAGE]
            found.update(item.id for item in await self._store.find(None, ids=batch, tx=tx))
        return found

    async def older_than(self, boundary: float) -> list[ArchiveItem]:
        """The oldest slots issued before ``boundary`` (a page of them)."""
        return await self._store.find(None, end=boundary, limit=PAGE)

    async def of(self, uploader: str, tx: Transaction) -> list[str]:
        """The ids of every slot ``uploader`` was issued."""
        return [item.id for item in await self._store.find(None, peer=uploader, tx=tx)]

    async def delete(self, ids: list[str], tx: Transaction | None = None) -> None:
        if ids:
            await self._store.delete(None, ids=ids, tx=tx)
            self.forget_total()
