"""Who hears of an account's PEP events without subscribing (XEP-0163 §4.3, "filtered
notifications"): the resources whose presence reached the account (its contacts', and its
own) with caps naming the node with ``+notify``.

Kept in memory, as Prosody does: per account (the ``pep_info_cache_size`` most recently
used), per full JID, the caps it came with and the nodes it wants. An ``unavailable`` presence,
an ``unsubscribe`` or the end of the session removes it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from ._caps import Nodes

Entry = tuple[str | None, Nodes]  # (caps key, nodes)


class Recipients:
    def __init__(self, size: int, alive: Callable[[str], bool]) -> None:
        self.size = size
        self._alive = alive  # whether a full JID still has a session
        self._owners: OrderedDict[str, dict[str, Entry]] = OrderedDict()

    def current(self, owner: str, jid: str) -> Entry | None:
        entries = self._owners.get(owner)
        return None if entries is None else entries.get(jid)

    def set(self, owner: str, jid: str, key: str | None, nodes: Nodes) -> None:
        entries = self._owners.get(owner)
        if entries is None:
            entries = self._owners[owner] = {}
        self._owners.move_to_end(owner)
        entries[jid] = (key, nodes)
        while len(self._owners) > self.size:
            self._owners.popitem(last=False)

    def remove(self, owner: str, jid: str) -> None:
        entries = self._owners.get(owner)
        if entries is not None:
            entries.pop(jid, None)
            if not entries:
                del self._owners[owner]

    def remove_bare(self, owner: str, bare: str) -> None:
        """Every resource of ``bare`` (it unsubscribed)."""
        entries = self._owners.get(owner, {})
        for jid in [j for j in entries if j.partition("/")[0] == bare]:
            self.remove(owner, jid)

    def forget(self, owner: str) -> None:
        self._owners.pop(owner, None)

    def clear(self) -> None:
        self._owners.clear()

    def wanting(self, owner: str, node: str) -> list[str]:
        """The full JIDs that want ``node``'s events; those whose session ended are dropped
        (their ``unavailable`` does not reach an account they are not subscribed to)."""
        entries = self._owners.get(owner)
        if entries is None:
            return []
        found = []
        for jid, (_, nodes) in list(entries.items()):
            if node in nodes:
                if self._alive(jid):
                    found.append(jid)
                else:
                    self.remove(owner, jid)
        return found
