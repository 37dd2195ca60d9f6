"""A user's message archive on the store: appending within the limits (the oldest go first,
as Prosody truncates), expiry, and the cached sizes that let an append skip a count."""

from __future__ import annotations

from collections import OrderedDict

from lxml import etree

from minixmpp.clock import stamp as stamp  # archived items' <delay/>
from minixmpp.module import Module
from minixmpp.storage import ArchiveStore, Transaction
from minixmpp.xml import stanza as st

CACHED_USERS = 1024
TRUNCATE_BATCH_BYTES = 1024 * 1024  # read at most this much of the oldest items at a time


_WRAP_OPEN, _WRAP_CLOSE = b"<w xmlns='jabber:client'>", b"</w>"


def embedded(value: bytes) -> etree._Element | None:
    """A stored stanza in explicit ``jabber:client``, to nest in ``<forwarded/>``; None if it
    does not parse (then it is left out of results, never sent broken)."""
    wrapper = st.from_stored(_WRAP_OPEN + value + _WRAP_CLOSE)
    if wrapper is None or len(wrapper) != 1:
        return None
    return wrapper[0]


class Archive:
    """One host's archives (store ``archive``), with per-user limits."""

    def __init__(self, module: Module, store: ArchiveStore, max_items: int, max_bytes: int):
        self.module = module
        self.store = store
        self.max_items = max_items
        self.max_bytes = max_bytes
        # user -> [items, bytes], for the limits without a count per message
        self.usage: OrderedDict[str, list[int]] = OrderedDict()

    async def _usage_of(self, user: str, tx: Transaction) -> list[int]:
        usage = self.usage.get(user)
        if usage is None:
            usage = list(await self.store.summary(user, tx=tx))
            self.usage[user] = usage
            while len(self.usage) > CACHED_USERS:
                self.usage.popitem(last=False)
        self.usage.move_to_end(user)
        return usage

    def items_held(self, user: str) -> int | None:
        """How many items ``user``'s archive holds, if its sizes are in memory (kept by every
        append since they were counted; an RSM ``<count/>`` without a count over the whole
        archive on every page); None if they are not."""
        usage = self.usage.get(user)
        return None if usage is None else usage[0]

    def _fits(self, usage: list[int], adding: int) -> bool:
        return usage[0] + 1 <= self.max_items and usage[1] + adding <= self.max_bytes

    def forget(self, user: str) -> None:
        self.usage.pop(user, None)

    async def append(self, user: str, stanza: etree._Element, peer: str, when: float) -> str:
        """Store a message; over a limit, the oldest items go first until 99% of it is left
        (Prosody's truncation): an archive never refuses, and never grows without bound."""
        data = st.tostring(stanza)
        usage = self.usage.get(user)
        if usage is not None and self._fits(usage, len(data)):
            # The sizes are known and there is room: one statement (one trip to the database),
            # the room taken before anything is awaited, so that appends racing it count it
            self.usage.move_to_end(user)
            usage[0] += 1
            usage[1] += len(data)
            try:
                return await self.store.append(user, data, peer=peer, when=when)
            except BaseException:
                self.forget(user)
                raise
        try:
            async with self.module.transaction() as tx:
                usage = await self._usage_of(user, tx)
                if not self._fits(usage, len(data)):
                    await self._truncate(user, usage, len(data), tx)
                key = await self.store.append(user, data, peer=peer, when=when, tx=tx)
                usage[0] += 1
                usage[1] += len(data)
        except BaseException:
            self.forget(user)  # the transaction is undone: so must the cached sizes be
            raise
        return key

    async def _truncate(self, user: str, usage: list[int], adding: int, tx: Transaction) -> None:
        keep_items = max(int(self.max_items * 0.99) - 1, 0)
        keep_bytes = int(self.max_bytes * 0.99) - adding
        dropped = 0
        while usage[0] > 0 and (usage[0] > keep_items or usage[1] > keep_bytes):
            oldest = await self.store.find(
                user, limit=max(usage[0] - keep_items, 1), max_bytes=TRUNCATE_BATCH_BYTES, tx=tx
            )
            if not oldest:
                break
            taken: list[str] = []
            for item in oldest:
                if usage[0] <= keep_items and usage[1] <= keep_bytes:
                    break
                taken.append(item.id)
                usage[0] -= 1
                usage[1] -= len(item.value)
            await self.store.delete(user, ids=taken, tx=tx)
            dropped += len(taken)
        host = self.module.host
        self.module.log.info("archive of %s@%s full: %d oldest items deleted", user, host, dropped)

    async def expire(self, older_than: float) -> int:
        """Delete every user's items from before ``older_than``; how many went."""
        total = 0
        for user in await self.store.users():
            total += await self.store.delete(user, before=older_than)
            self.forget(user)
        return total
