"""Storage: the store kinds modules use, and the backend behind them.

Modules never write SQL: they open stores by name and kind (``module.open_store(name, kind)``,
see ``kinds.py``: ``keyval``, ``map``, ``archive``), run several operations atomically with
``module.transaction()``, and register ``module.delete_with_account(step)`` for data keyed by
something else than the account's username.

The backend
-----------
``Storage`` (sqlite.py, the embedded default) is what the server opens. A second backend
(PostgreSQL, say) is a class with the same methods, and no module changes:

- ``open(path)`` / ``close()``; ``meta(key, default) -> bytes`` (server-wide secrets);
- ``transaction()``: an async context manager giving a transaction handle (``Transaction``:
  ``execute``, ``executemany``, ``fetchone``, ``fetchall``) that commits on exit, rolls back on
  an exception, and serialises writers (single-use invites rely on it);
- ``keyval(host, name)``, ``map(host, name)``, ``archive(host, name)``: the store kinds of
  ``kinds.py``, each method taking ``tx=`` (that handle) or none;
- per-account data: ``user_tables``, ``user_deletion_steps``, ``user_rows_deleted`` and
  ``delete_user_rows(tx, host, username)``, which deletes everything an account owns inside the
  transaction that deletes the account;
- ``migrate(component, steps)``: versioned schema steps per component.

The core's own tables (``accounts``, ``roster``, ``roster_pending``, ``roster_version``,
``meta``) are read and written with SQL through ``fetchone``/``fetchall`` and the transaction
handle (accounts.py, roster.py): a backend runs that SQL (standard SQL with ``ON CONFLICT`` and
``RETURNING``-free statements; SQLite's ``julianday('now')`` in roster.py is the one dialect
function to map).
"""

from minixmpp.storage.kinds import ArchiveItem, ArchiveStore, KeyValueStore, MapStore
from minixmpp.storage.sqlite import Storage, StorageError, Transaction
from minixmpp.storage.stores import put

__all__ = [
    "ArchiveItem",
    "ArchiveStore",
    "KeyValueStore",
    "MapStore",
    "Storage",
    "StorageError",
    "Transaction",
    "put",
]
