"""FAST tokens (XEP-0484 §7), kept in the map store ``fast_tokens`` as prosody-modules keeps them.

Per account, each client installation (the SHA-256 of its SASL2 user-agent id) has two slots,
``<client>-new`` and ``<client>-cur``: a token is issued into ``new`` (replacing one the client
never used); a login checks ``new`` first, and a token that succeeds there moves to ``cur``
(replacing the one before it). So a client that missed the newest token still logs in with the
one it has, and a token is void once a later one has been used. A record holds the mechanism the
token is bound to, its key (the token's SHA-256: see ``_ht``; never the token), when it was
issued and expires, the last ``count`` seen, and ``revoked`` once the password changed. Each
check runs in a write transaction, so two logins with one token are checked one after the other
(the ``count`` replay protection needs that).

An account keeps tokens for at most ``sasl2_fast_max_tokens`` clients: issuing one for another
client drops the client whose token is oldest; expired and revoked records are dropped then too.
Everything goes with the account when it is deleted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from minixmpp.clock import Clock
from minixmpp.sasl import SaslFailure
from minixmpp.storage import MapStore, Transaction

from ._ht import HashedToken, initiator, key_of

PREFIX = "secret-token:fast-"  # RFC 8959: scanners know it; log redaction finds it
SLOTS = ("new", "cur")


@dataclass(frozen=True, slots=True)
class Issued:
    token: str
    expires: float


def client_of(agent_id: str) -> str:
    """The store key part naming a client installation (its user-agent id, hashed)."""
    return hashlib.sha256(agent_id.encode()).hexdigest()


def new_token() -> str:
    """90 characters: the prefix and 54 random bytes (432 bits), longer than HMAC's block."""
    return PREFIX + secrets.token_urlsafe(54)


class Tokens:
    def __init__(
        self,
        store: MapStore,
        transaction: Callable[[], AbstractAsyncContextManager[Transaction]],
        clock: Clock,
        log: logging.Logger,
    ) -> None:
        self.store = store
        self.transaction = transaction
        self.clock = clock
        self.log = log
        self.ttl = 86400.0 * 21
        self.min_ttl = 86400.0
        self.max_clients = 64

    async def _match(
        self, exchange: HashedToken, username: str, proof: bytes, client: str, tx: Any
    ) -> tuple[str, dict[str, Any], bytes] | None:
        """(slot, record, key) of the client's token that ``proof`` was made with."""
        for slot in SLOTS:
            record = await self.store.get(username, f"{client}-{slot}", tx=tx)
            if not isinstance(record, dict) or record.get("mechanism") != exchange.name:
                continue
            secret = base64.b64decode(record["key"])
            if hmac.compare_digest(initiator(secret, exchange.cb), proof):
                return slot, record, secret
        return None

    async def verify(
        self, exchange: HashedToken, username: str, proof: bytes, agent_id: str
    ) -> bytes:
        """The key of the token ``proof`` was made with, for this client and mechanism;
        SaslFailure ``not-authorized`` if none, ``credentials-expired`` if it expired or the
        password changed since it was issued (it is dropped then). Moves it to ``cur``, or
        drops it when the client invalidates it; sets ``exchange.rotate``. The usual login
        (the ``cur`` token, no count) only reads; the others check again and write in one
        transaction."""
        client = client_of(agent_id)
        found = await self._match(exchange, username, proof, client, None)
        if found is None:
            raise SaslFailure("not-authorized")
        slot, record, secret = found
        now = self.clock.time()
        if (
            slot == "cur"
            and exchange.count is None
            and not exchange.invalidate
            and not record.get("revoked")
            and record["expires"] > now
        ):
            exchange.rotate = now - record["issued"] > self.min_ttl
            return secret
        async with self.transaction() as tx:  # what it deletes stays deleted when it fails
            found = await self._match(exchange, username, proof, client, tx)
            if found is None:  # another login changed it meanwhile
                failure = SaslFailure("not-authorized")
            else:
                slot, record, secret = found
                key = f"{client}-{slot}"
                if record.get("revoked") or record["expires"] <= now:
                    self.log.debug("FAST token of %s expired or revoked: dropped", username)
                    await self.store.set(username, key, None, tx=tx)
                    failure = SaslFailure("credentials-expired")
                elif exchange.count is not None and exchange.count <= record.get("count", 0):
                    failure = SaslFailure("not-authorized", "FAST count must increase")
                else:
                    if exchange.count is not None:
                        record["count"] = exchange.count
                    if exchange.invalidate:
                        await self.store.set(username, key, None, tx=tx)
                    elif slot == "new":
                        await self.store.set(username, key, None, tx=tx)
                        await self.store.set(username, f"{client}-cur", record, tx=tx)
                    elif exchange.count is not None:
                        await self.store.set(username, key, record, tx=tx)
                    rotate = not exchange.invalidate and now - record["issued"] > self.min_ttl
                    exchange.rotate = rotate
                    return secret
        raise failure

    async def issue(self, username: str, agent_id: str, mechanism: str) -> Issued:
        """A new token for this client, bound to ``mechanism``, in its ``new`` slot."""
        token = new_token()
        now = self.clock.time()
        record: dict[str, Any] = {
            "mechanism": mechanism,
            "key": base64.b64encode(key_of(token)).decode(),
            "issued": now,
            "expires": now + self.ttl,
        }
        client = client_of(agent_id)
        async with self.transaction() as tx:
            items = await self.store.items(username, tx=tx)
            newest: dict[str, float] = {}  # client -> when its newest live token was issued
            for key, old in items.items():
                if not isinstance(old, dict) or old.get("revoked") or old["expires"] <= now:
                    await self.store.set(username, key, None, tx=tx)
                    continue
                owner = key.rpartition("-")[0]
                newest[owner] = max(newest.get(owner, 0.0), old["issued"])
            newest.pop(client, None)
            while len(newest) >= self.max_clients:
                oldest = min(newest, key=lambda owner: newest[owner])
                del newest[oldest]
                for slot in SLOTS:
                    await self.store.set(username, f"{oldest}-{slot}", None, tx=tx)
            await self.store.set(username, f"{client}-new", record, tx=tx)
        return Issued(token, record["expires"])

    async def revoke(self, username: str) -> int:
        """The password changed: every token of the account is refused from now on (with
        ``credentials-expired``, XEP-0484 §7). How many there were."""
        async with self.transaction() as tx:
            items = await self.store.items(username, tx=tx)
            for key, record in items.items():
                if isinstance(record, dict) and not record.get("revoked"):
                    record["revoked"] = True
                    await self.store.set(username, key, record, tx=tx)
        return len(items)
