"""An account's PEP service (XEP-0163), and the cache of loaded ones.

Prosody's mod_pep rules: the account owns every node (``owner`` for its bare JID); nodes are
created when first published to, with ``publish-options`` as their configuration; a node's
defaults are ``max_items`` 1, ``access_model`` presence and ``send_last_published_item``
on_sub_and_presence; ``presence`` lets in the contacts with a ``from`` or ``both``
subscription, ``roster`` those in the node's ``roster_groups_allowed`` groups (Prosody 0.12
refuses ``roster``), ``open`` anyone, ``whitelist`` only who has an affiliation. Notifications
come from the account's bare JID and name the publisher, and go to the node's subscribers and
to the contacts' (and the owner's own) resources that asked for the node with ``+notify``
(``Recipients``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from lxml import etree

from minixmpp.module import Module
from minixmpp.pubsub.items import Limits
from minixmpp.pubsub.node import PEP_NODE_CHANGED, Node, NodeChange, bare
from minixmpp.pubsub.service import Service
from minixmpp.pubsub.store import ServiceStore

if TYPE_CHECKING:
    from ._recipients import Recipients

NODE_DEFAULTS = {
    "max_items": 1,
    "persist_items": True,
    "access_model": "presence",
    "send_last_published_item": "on_sub_and_presence",
}


class PepService(Service):
    autocreate_on_publish = True
    access_models = frozenset({"open", "presence", "roster", "whitelist"})
    publisher_in_events = True

    def __init__(
        self, module: Module, username: str, limits: Limits, recipients: Recipients
    ) -> None:
        store = ServiceStore(module, module.open_store("pep", "map"), username, f"pep/{username}/")
        super().__init__(f"{username}@{module.host}", store, NODE_DEFAULTS, limits)
        self.module = module
        self.username = username
        self.recipients_of = recipients

    async def service_affiliation(self, actor: str) -> str | None:
        return "owner" if actor == self.jid else None

    async def access(self, model: str, actor: str, config: Mapping[str, Any]) -> bool:
        contact = bare(actor)
        if contact == self.jid:
            return True
        item = await self.module.rosters.item(self.module.host, self.username, contact)
        if item is None:
            return False
        if model == "presence":
            return item.from_
        allowed = config.get("roster_groups_allowed") or ()
        return any(group in allowed for group in item.groups)

    async def recipients(self, node: Node) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for jid in self.recipients_of.wanting(self.username, node.name):
            if await self.may(node, jid, "subscribe"):
                found[jid] = {}
        return found

    async def send(self, stanza: etree._Element) -> None:
        await self.module.send(stanza)

    async def changed(self, change: NodeChange) -> None:
        await self.module.fire(PEP_NODE_CHANGED, change)


class Services:
    """Loaded PEP services, the ``size`` most recently used (``pep_service_cache_size``)."""

    def __init__(self, size: int, make: Callable[[str], PepService]) -> None:
        self.size = size
        self._make = make
        self._loaded: OrderedDict[str, PepService] = OrderedDict()

    async def get(self, username: str) -> PepService:
        service = self._loaded.get(username)
        if service is not None:
            self._loaded.move_to_end(username)
            return service
        service = self._make(username)
        await service.load()
        # Another request may have loaded it meanwhile: keep the first, so one lock rules.
        service = self._loaded.setdefault(username, service)
        self._loaded.move_to_end(username)
        while len(self._loaded) > self.size:
            oldest, dropped = next(iter(self._loaded.items()))
            if dropped.lock.locked():
                break  # busy: it stays until it is done
            del self._loaded[oldest]
        return service

    def forget(self, username: str) -> None:
        self._loaded.pop(username, None)

    def clear(self) -> None:
        self._loaded.clear()
