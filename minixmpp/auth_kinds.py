"""The other kinds of ``authentication`` a host may have (Prosody's option, set per host):

- ``"internal_hashed"`` (the default): accounts with SCRAM keys; SCRAM and PLAIN.
- ``"anonymous"`` (Prosody's mod_auth_anonymous, XEP-0175): SASL ANONYMOUS only; each login
  gets a new random name, its account lives as long as its sessions, and is deleted (with
  all its data) when the last one ends. For test suites and guest access.
- ``"insecure"`` (prosody-modules' mod_auth_insecure): PLAIN only, and any password is right;
  an account that does not exist is made at its first login, with that password. Only for
  test hosts: aioxmpp's ``AnyProvisioner`` and similar suites log in this way.

PLAIN is offered over TLS only, unless ``allow_unencrypted_plain_auth`` (Prosody's option).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from minixmpp.sasl import (
    PLAIN_FAILED,
    Mechanism,
    SaslFailure,
    Step,
    read_plain,
)

KINDS = ("internal_hashed", "anonymous", "insecure")
Create = Callable[[str, str], Awaitable[bool]]


class Anonymous(Mechanism):
    """SASL ANONYMOUS (RFC 4505): the trace information is ignored; the account is new."""

    name = "ANONYMOUS"

    def __init__(self, create: Create) -> None:
        self.create = create

    async def step(self, data: bytes) -> Step:
        if len(data) > 1020:  # RFC 4505: at most 255 characters of trace information
            raise SaslFailure("malformed-request")
        for _ in range(3):
            username = self.username = str(uuid.uuid4())
            if await self.create(username, uuid.uuid4().hex):
                return Step(success=b"", username=username)
        raise SaslFailure("temporary-auth-failure")


class AnyPassword(Mechanism):
    """PLAIN where any password is right; a missing account is made with it."""

    name = "PLAIN"

    def __init__(self, host: str, exists: Callable[[str], Awaitable[bool]], create: Create):
        self.host, self.exists, self.create = host, exists, create

    async def step(self, data: bytes) -> Step:
        username, password = read_plain(self, data, self.host)
        if not await self.exists(username):
            try:
                await self.create(username, password)
            except ValueError:  # a password SASLprep refuses (BadPassword)
                raise SaslFailure("not-authorized", PLAIN_FAILED) from None
        return Step(success=b"", username=username)
