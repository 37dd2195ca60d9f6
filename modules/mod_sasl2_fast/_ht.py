"""The HT SASL mechanisms (draft-schmaus-kitten-sasl-ht-09), FAST's token mechanisms.

One message from the client: ``authcid NUL HMAC(token, "Initiator" || cb-data)``; the server
answers with ``HMAC(token, "Responder" || cb-data)`` as SASL2's additional data, so the client
knows the server holds the token too. ``cb-data`` is the TLS channel binding the name ends in:
``-NONE`` none, ``-UNIQ`` tls-unique (TLS 1.2), ``-ENDP`` tls-server-end-point; ``-EXPR``
(tls-exporter) is not offered, Python's ``ssl`` having no exporter. Only HMAC-SHA-256.

Tokens are stored hashed: a token is longer than SHA-256's 64-byte block, and HMAC (RFC 2104
§2) first hashes such a key, so ``HMAC(token, m) == HMAC(SHA-256(token), m)``: the server keeps
only ``SHA-256(token)`` and computes every HMAC from it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping

from minixmpp.jid import InvalidJID, nodeprep
from minixmpp.sasl import PLAIN_FAILED, Mechanism, SaslFailure, Step

BINDINGS = {  # mechanism -> the channel binding it uses (None: none)
    "HT-SHA-256-UNIQ": "tls-unique",
    "HT-SHA-256-ENDP": "tls-server-end-point",
    "HT-SHA-256-NONE": None,
}
DIGEST = 32  # SHA-256
BLOCK = 64  # SHA-256's block: tokens must be longer (see the module docstring)

# (the exchange, username, the client's HMAC) -> the key that verified it (the token's
# SHA-256), after checking expiry, mechanism and count; SaslFailure otherwise.
Verify = Callable[["HashedToken", str, bytes], Awaitable[bytes]]


def offered(bindings: Mapping[str, bytes]) -> list[str]:
    """The HT mechanisms this stream's channel bindings allow, channel-bound ones first."""
    return [name for name, cb in BINDINGS.items() if cb is None or cb in bindings]


def key_of(token: str) -> bytes:
    """What the server stores of a token: its SHA-256, the key HMAC itself would use."""
    data = token.encode()
    if len(data) <= BLOCK:
        raise ValueError("FAST tokens must be longer than 64 bytes")
    return hashlib.sha256(data).digest()


def initiator(key: bytes, cb: bytes) -> bytes:
    return hmac.digest(key, b"Initiator" + cb, "sha256")


def responder(key: bytes, cb: bytes) -> bytes:
    return hmac.digest(key, b"Responder" + cb, "sha256")


class HashedToken(Mechanism):
    """One HT exchange; ``verify`` finds and checks the token (the FAST module's store).
    ``count`` and ``invalidate`` come from the client's ``<fast/>``; ``rotate`` is set by
    ``verify`` when the token is due for a successor."""

    def __init__(
        self,
        name: str,
        bindings: Mapping[str, bytes],
        verify: Verify,
        *,
        count: int | None = None,
        invalidate: bool = False,
    ) -> None:
        binding = BINDINGS[name]
        self.name = name
        self.cb = b"" if binding is None else bindings[binding]
        self.verify = verify
        self.count = count
        self.invalidate = invalidate
        self.rotate = False

    async def step(self, data: bytes) -> Step:
        authcid, sep, proof = data.partition(b"\0")
        if not sep or not authcid or len(proof) != DIGEST:
            raise SaslFailure("malformed-request", "Invalid HT message")
        try:
            username = self.username = nodeprep(authcid.decode("utf-8"))
        except (UnicodeDecodeError, InvalidJID):
            raise SaslFailure("not-authorized", PLAIN_FAILED) from None
        key = await self.verify(self, username, proof)
        return Step(success=responder(key, self.cb), username=username)
