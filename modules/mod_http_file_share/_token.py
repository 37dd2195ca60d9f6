"""The upload token: a JSON Web Token (RFC 7519) signed with HMAC-SHA256, as Prosody's
mod_http_file_share hands out in the slot's ``Authorization: Bearer`` header.

It says who may upload what into which slot, until when (``exp``, five minutes after the slot
was issued): the PUT handler needs nothing else to decide, and the server keeps no per-slot
secret. Only HS256 is accepted; a token is at most ``MAX_LENGTH`` characters.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from typing import Any

MAX_LENGTH = 4096
HEADER = {"alg": "HS256", "typ": "JWT"}
# In the wire log: "Bearer " and the token's first 4 characters are kept.
IN_LOG = re.compile(r"Bearer ([A-Za-z0-9_-]{4})[A-Za-z0-9_.=-]*")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def sign(key: bytes, claims: dict[str, Any]) -> str:
    signed = f"{_b64(_json(HEADER))}.{_b64(_json(claims))}"
    mac = hmac.new(key, signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{_b64(mac)}"


def verify(key: bytes, token: str) -> dict[str, Any] | None:
    """The claims of a token this key signed; None for anything else."""
    if len(token) > MAX_LENGTH or token.count(".") != 2:
        return None
    header, claims, mac = token.split(".")
    expected = _b64(hmac.new(key, f"{header}.{claims}".encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected.encode(), mac.encode()):
        return None
    try:
        if json.loads(_unb64(header)) != HEADER:
            return None
        value = json.loads(_unb64(claims))
    except (ValueError, binascii.Error):
        return None
    return value if isinstance(value, dict) else None
