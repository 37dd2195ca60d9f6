"""Where a service keeps its nodes and items: the core's stores, never SQL.

Node records (configuration, subscriptions, affiliations) are JSON in a map store, one key per
node, under the service's owner (an account's username for PEP, the host's own entries for a
pubsub component). Each node's items are an archive store of their own, named
``<prefix><node>`` (``pep/alice/urn:xmpp:avatar:data``; a username holds no ``/``): its order is
the publishing order, its ids the item ids, its peer the publisher, and each value the payload
as XML. An account's rows go with the account (the archive's user is the username; the
component's is ``""``, which no account has).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lxml import etree

from minixmpp.module import Module
from minixmpp.storage import ArchiveItem, ArchiveStore, MapStore, Transaction
from minixmpp.xml import stanza as st

NS_PUBSUB = "http://jabber.org/protocol/pubsub"


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    publisher: str | None
    payload: bytes  # the payload element, serialised

    def element(self, ns: str = NS_PUBSUB, *, publisher: bool = False) -> etree._Element:
        """``<item id=…>payload</item>`` in namespace ``ns`` (a payload that no longer
        parses, which cannot happen for what this module stored, is left out)."""
        item = st.element(
            f"{{{ns}}}item", {"id": self.id, "publisher": self.publisher if publisher else None}
        )
        payload = st.from_stored(self.payload)
        if payload is not None:
            item.append(payload)
        return item


def serialise(payload: etree._Element) -> bytes:
    """A payload as stored: its XML on its own (the namespaces it uses declared on it)."""
    return etree.tostring(payload, encoding="UTF-8", with_tail=False)


def item_of(row: ArchiveItem) -> Item:
    return Item(row.id, row.peer, row.value)


class ServiceStore:
    """One service's nodes and items (see the module docstring)."""

    def __init__(self, module: Module, nodes: MapStore, owner: str | None, prefix: str) -> None:
        self.module = module
        self._nodes = nodes
        self.owner = owner
        self.items_user = owner or ""
        self.prefix = prefix

    def transaction(self) -> Any:
        return self.module.transaction()

    def items(self, node: str) -> ArchiveStore:
        return self.module.open_store(self.prefix + node, "archive")

    async def records(self) -> dict[str, Any]:
        return await self._nodes.items(self.owner)

    async def save(self, node: str, record: dict[str, Any], tx: Transaction | None = None) -> None:
        await self._nodes.set(self.owner, node, record, tx=tx)

    async def delete(self, node: str, tx: Transaction) -> None:
        await self._nodes.set(self.owner, node, None, tx=tx)
        await self.items(node).delete(self.items_user, tx=tx)

    async def summary(self, node: str) -> tuple[int, int]:
        return await self.items(node).summary(self.items_user)

    async def find(self, node: str, **query: Any) -> list[Item]:
        rows = await self.items(node).find(self.items_user, **query)
        return [item_of(row) for row in rows]

    async def put(self, node: str, item: Item, tx: Transaction) -> None:
        """Store ``item``, replacing one with the same id (which becomes the newest)."""
        archive = self.items(node)
        await archive.delete(self.items_user, ids=[item.id], tx=tx)
        await archive.append(
            self.items_user,
            item.payload,
            peer=item.publisher,
            when=self.module.clock.time(),
            id=item.id,
            tx=tx,
        )

    async def remove(self, node: str, ids: list[str], tx: Transaction) -> None:
        await self.items(node).delete(self.items_user, ids=ids, tx=tx)

    async def clear(self, node: str, tx: Transaction) -> None:
        await self.items(node).delete(self.items_user, tx=tx)
