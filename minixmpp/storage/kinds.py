"""The store kinds modules use, whatever the backend (``module.open_store(name, kind)``).

Each is per host. ``user=None`` (keyval, map) means the host's own entries. Every method takes
an optional ``tx``: a transaction from ``module.transaction()``; inside one, reads see what it
wrote and everything commits or rolls back together (with the account change it may belong
to, e.g. ``Registration.in_transaction``). Without ``tx`` a read sees committed data and a write
commits on its own. A value of ``None`` deletes. Keyval and map values are JSON-able (dict,
list, str, int, float, bool); archive items are bytes.

A store a module opens holds per-account data under the account's username: it is deleted with
the account, in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

# An opaque transaction handle (the backend's own type).
Tx = Any


@dataclass(frozen=True, slots=True)
class ArchiveItem:
    id: str
    when: float  # Unix time
    peer: str | None
    value: bytes


class KeyValueStore(Protocol):
    """One value per user (Prosody's keyval store)."""

    async def get(self, user: str | None, *, tx: Tx = None) -> Any: ...
    async def set(self, user: str | None, value: Any, *, tx: Tx = None) -> None: ...


class MapStore(Protocol):
    """Values by (user, key) (Prosody's map store)."""

    async def get(self, user: str | None, key: str, *, tx: Tx = None) -> Any: ...
    async def set(self, user: str | None, key: str, value: Any, *, tx: Tx = None) -> bool:
        """True if something changed (a delete of a missing key: False)."""
        ...

    async def items(self, user: str | None, *, tx: Tx = None) -> dict[str, Any]: ...


class ArchiveStore(Protocol):
    """Append-only items per user, kept in order (Prosody's archive store: offline messages,
    message archives)."""

    async def append(
        self,
        user: str,
        value: bytes,
        *,
        peer: str | None = None,
        when: float | None = None,
        id: str | None = None,
        tx: Tx = None,
    ) -> str:
        """Add an item (now, unless ``when``); returns its id, ``id`` or a new random one."""
        ...

    async def find(
        self,
        user: str,
        *,
        start: float | None = None,
        end: float | None = None,
        peer: str | None = None,
        after_id: str | None = None,
        before_id: str | None = None,
        ids: list[str] | None = None,
        limit: int | None = None,
        max_bytes: int | None = None,
        reverse: bool = False,
        tx: Tx = None,
    ) -> list[ArchiveItem]:
        """Items in the order added (newest first with ``reverse``): within [start, end],
        with ``peer``, after or before the item of an id, among ``ids``; at most ``limit``, and
        (``max_bytes``) as many as fit in that many bytes of values, the first always."""
        ...

    async def count(
        self,
        user: str,
        *,
        start: float | None = None,
        end: float | None = None,
        peer: str | None = None,
        ids: list[str] | None = None,
        tx: Tx = None,
    ) -> int:
        """How many items ``find`` with these filters (and no position or limit) would give."""
        ...

    async def delete(
        self, user: str, *, ids: list[str] | None = None, before: float | None = None, tx: Tx = None
    ) -> int:
        """Delete the items with these ids, or older than ``before``, or all; how many went."""
        ...

    async def summary(self, user: str, *, tx: Tx = None) -> tuple[int, int]:
        """(items, bytes) that ``user`` holds."""
        ...

    async def users(self, *, tx: Tx = None) -> list[str]:
        """The users that hold items."""
        ...
