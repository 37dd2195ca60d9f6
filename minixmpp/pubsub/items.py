"""The items of a service's nodes: storing within the limits, trimming to ``max_items``, and
reading them back by id, newest first, or a page at a time (XEP-0059).

How many items each node holds and how many bytes they take is kept in memory (read once when
the service loads), so a publish is checked against ``max_items``, ``max_item_size`` and the
service's ``max_bytes`` without adding up the store.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from minixmpp.pubsub import rsm
from minixmpp.pubsub.errors import pubsub_error
from minixmpp.pubsub.store import Item, ServiceStore
from minixmpp.storage import Transaction

REPLY_BUDGET = 1 << 20  # bytes of payloads in one reply; beyond, the newest that fit + RSM


@dataclass(frozen=True)
class Limits:
    """What one service may hold (the modules' options)."""

    max_items: int = 256  # items a node may keep (its "max")
    max_nodes: int = 256
    max_item_size: int = 256 * 1024  # bytes of one item's payload
    max_bytes: int = 10 * 1024 * 1024  # bytes of all the service's items
    max_subscriptions: int = 1000  # subscriptions (and affiliations) per node


class NodeItems:
    def __init__(self, store: ServiceStore, limits: Limits) -> None:
        self.store = store
        self.limits = limits
        self.sizes: dict[str, tuple[int, int]] = {}  # node -> (items, bytes)

    @property
    def total(self) -> int:
        return sum(size for _, size in self.sizes.values())

    def count(self, node: str) -> int:
        return self.sizes.get(node, (0, 0))[0]

    async def load(self, node: str) -> None:
        self.sizes[node] = await self.store.summary(node)

    def created(self, node: str) -> None:
        self.sizes[node] = (0, 0)

    def deleted(self, node: str) -> None:
        self.sizes.pop(node, None)

    async def put(self, node: str, item: Item, max_items: int) -> None:
        """Store ``item`` (replacing its id), dropping the oldest beyond ``max_items``;
        policy-violation if the service's items would take more than ``max_bytes``."""
        count, size = self.sizes.get(node, (0, 0))
        async with self.store.transaction() as tx:
            old = await self.store.find(node, ids=[item.id], tx=tx)
            if old:
                count, size = count - 1, size - len(old[0].payload)
            excess = count + 1 - max_items
            dropped: list[Item] = []
            if excess > 0:
                oldest = await self.store.find(node, limit=excess + 1, tx=tx)
                dropped = [i for i in oldest if i.id != item.id][:excess]
            freed = sum(len(i.payload) for i in dropped)
            others = self.total - self.sizes.get(node, (0, 0))[1]
            max_bytes = self.limits.max_bytes
            if others + size - freed + len(item.payload) > max_bytes:
                raise pubsub_error(
                    "policy-violation", text=f"Items may take at most {max_bytes} bytes in all"
                )
            await self.store.put(node, item, tx)
            if dropped:
                await self.store.remove(node, [i.id for i in dropped], tx)
        self.sizes[node] = (count + 1 - len(dropped), size - freed + len(item.payload))

    async def remove(self, node: str, item_id: str) -> bool:
        count, size = self.sizes.get(node, (0, 0))
        async with self.store.transaction() as tx:
            found = await self.store.find(node, ids=[item_id], tx=tx)
            if not found:
                return False
            await self.store.remove(node, [item_id], tx)
        self.sizes[node] = (count - 1, size - len(found[0].payload))
        return True

    async def clear(self, node: str, tx: Transaction) -> None:
        await self.store.clear(node, tx)
        self.sizes[node] = (0, 0)

    async def trim(self, node: str, max_items: int, tx: Transaction) -> None:
        count, size = self.sizes.get(node, (0, 0))
        if count <= max_items:
            return
        dropped = await self.store.find(node, limit=count - max_items, tx=tx)
        await self.store.remove(node, [i.id for i in dropped], tx)
        self.sizes[node] = (count - len(dropped), size - sum(len(i.payload) for i in dropped))

    async def last(self, node: str) -> Item | None:
        found = await self.store.find(node, reverse=True, limit=1)
        return found[0] if found else None

    async def by_ids(self, node: str, ids: list[str]) -> list[Item]:
        """The items with these ids that exist, in the order asked (Prosody's)."""
        wanted = list(dict.fromkeys(ids))
        found = {i.id: i for i in await self.store.find(node, ids=wanted)}
        return [found[i] for i in wanted if i in found]

    async def newest(self, node: str, limit: int) -> tuple[list[Item], etree._Element | None]:
        """The newest ``limit`` items, oldest first (Prosody's order); if they would take
        more than REPLY_BUDGET bytes, the newest that fit, with a ``<set/>`` saying so
        (XEP-0060 §6.5.4)."""
        found = await self.store.find(node, reverse=True, limit=limit, max_bytes=REPLY_BUDGET)
        total = min(limit, self.count(node))
        extra = None
        if len(found) < total:
            extra = rsm.result(found[0].id, found[-1].id, self.count(node), 0)
        return list(reversed(found)), extra

    async def page(
        self, node: str, request: rsm.Request, cap: int
    ) -> tuple[list[Item], etree._Element]:
        """A page of the node's items, newest first (the result set's order), and its
        ``<set/>``. ``after``/``before`` name items of the node (item-not-found otherwise)."""
        size = cap if request.max is None else min(request.max, cap)
        count = self.count(node)
        index: int | None = None
        for anchor in (request.after, request.before):
            if anchor and not await self.store.find(node, ids=[anchor]):
                raise pubsub_error("item-not-found")
        if size == 0:
            found: list[Item] = []
        elif request.after is not None:
            found = await self.store.find(node, before_id=request.after, reverse=True, limit=size)
        elif request.before == "":  # the last page: the oldest items
            found = list(reversed(await self.store.find(node, limit=size)))
            index = max(0, count - len(found))
        elif request.before is not None:
            found = list(reversed(await self.store.find(node, after_id=request.before, limit=size)))
        elif request.index is not None:
            newest = await self.store.find(node, reverse=True, limit=request.index + size)
            found, index = newest[request.index :], request.index
        else:
            found, index = await self.store.find(node, reverse=True, limit=size), 0
        if not found:
            return [], rsm.result(None, None, count, None)
        return found, rsm.result(found[0].id, found[-1].id, count, index)
