"""SASL mechanisms: SCRAM-SHA-1/256 (and -PLUS) through scramp, and PLAIN.

scramp asks for credentials synchronously in the middle of parsing the client-first message, and
our credentials live in the database. So the client-first message's GS2 header and username are
read here first, the credentials are loaded, and scramp then does the protocol work with them.

Unknown users get deterministic fake credentials (salt derived from a server secret and the
name), so the exchange fails at the proof like a wrong password does and does not tell which
accounts exist.

Channel bindings offered: ``tls-server-end-point`` (a hash of our certificate; TLS 1.2 and 1.3)
and ``tls-unique`` on TLS 1.2 only (RFC 9266 forbids it on 1.3; slixmpp uses it on 1.2).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from scramp import ScramException, ScramMechanism

from minixmpp.accounts import Credentials, ScramKeys, check_password
from minixmpp.jid import InvalidJID, nodeprep

log = logging.getLogger("minixmpp.sasl")

Lookup = Callable[[str], Awaitable[Credentials | None]]

SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-1")

# Prosody's failure texts.
PLAIN_FAILED = "Unable to authorize you with the authentication credentials you've sent."
SCRAM_FAILED = "The response provided by the client doesn't match the one we calculated."


class SaslFailure(Exception):
    """Authentication failed; ``condition`` is a RFC 6120 §6.5 SASL failure condition."""

    def __init__(self, condition: str, text: str | None = None) -> None:
        super().__init__(condition)
        self.condition = condition
        self.text = text


@dataclass(slots=True)
class Step:
    """Outcome of one SASL step: a challenge to send, or success (with the username)."""

    challenge: bytes | None = None
    success: bytes | None = None
    username: str | None = None


def offered_mechanisms(*, secure: bool, bindings: Mapping[str, bytes]) -> list[str]:
    """Mechanisms to advertise, strongest first. PLAIN only over TLS."""
    names: list[str] = []
    if bindings:
        names += [f"{m}-PLUS" for m in SCRAM_MECHANISMS]
    names += SCRAM_MECHANISMS
    if secure:
        names.append("PLAIN")
    return names


def decode_payload(text: str | None) -> bytes:
    """Base64 payload of ``<auth>``/``<response>``; ``=`` means empty (RFC 6120 §6.4.2)."""
    if not text or text.strip() == "=":
        return b""
    try:
        return base64.b64decode(text.strip(), validate=True)
    except ValueError:
        raise SaslFailure("incorrect-encoding") from None


class Mechanism:
    """One authentication exchange."""

    name: str

    async def step(self, data: bytes) -> Step:
        raise NotImplementedError


class Plain(Mechanism):
    name = "PLAIN"

    def __init__(self, host: str, lookup: Lookup) -> None:
        self.host = host
        self.lookup = lookup

    async def step(self, data: bytes) -> Step:
        try:
            authzid, authcid, password = data.decode("utf-8").split("\0")
        except ValueError:
            raise SaslFailure("malformed-request") from None
        if not authcid or not password:
            raise SaslFailure("malformed-request")
        username = _prep_username(authcid)
        _check_authzid(authzid, username, self.host)
        credentials = await self.lookup(username)
        if credentials is None or not check_password(credentials, password):
            raise SaslFailure("not-authorized", PLAIN_FAILED)
        return Step(success=b"", username=username)


class Scram(Mechanism):
    def __init__(
        self,
        name: str,
        host: str,
        lookup: Lookup,
        bindings: Mapping[str, bytes],
        secret: bytes,
    ) -> None:
        self.name = name
        self.host = host
        self.lookup = lookup
        self.bindings = bindings
        self.secret = secret
        self.hash_name = "sha256" if name.startswith("SCRAM-SHA-256") else "sha1"
        self._server: Any = None  # scramp.ScramServer (untyped)
        self._username: str | None = None

    async def step(self, data: bytes) -> Step:
        try:
            message = data.decode("utf-8")
        except UnicodeDecodeError:
            raise SaslFailure("malformed-request", "Invalid UTF-8") from None
        if self._server is None:
            return await self._first(message)
        return self._final(message)

    async def _first(self, message: str) -> Step:
        parts = message.split(",", 3)
        if len(parts) < 4 or not parts[2].startswith("n="):
            raise SaslFailure("malformed-request", "Invalid SCRAM client-first message")
        flag, authzid_field = parts[0], parts[1]
        saslname = parts[2][2:].replace("=2C", ",").replace("=3D", "=")
        username = _prep_username(saslname)
        if authzid_field:
            if not authzid_field.startswith("a="):
                raise SaslFailure("malformed-request", "Invalid SCRAM client-first message")
            authzid = authzid_field[2:].replace("=2C", ",").replace("=3D", "=")
            _check_authzid(authzid, username, self.host)
        channel_binding: tuple[str, bytes] | None = None
        if flag.startswith("p="):
            cb_name = flag[2:]
            if cb_name not in self.bindings:
                raise SaslFailure("malformed-request", f"Channel binding {cb_name} not supported")
            channel_binding = (cb_name, self.bindings[cb_name])
        elif flag == "y" and self.bindings:
            # The client thinks we cannot bind but we offered -PLUS: a downgrade. scramp
            # refuses 'y' whenever it is given binding data.
            channel_binding = next(iter(self.bindings.items()))
        elif flag not in ("n", "y"):
            raise SaslFailure("malformed-request", "Invalid GS2 header")
        if self.name.endswith("-PLUS") and channel_binding is None:
            raise SaslFailure("malformed-request", "Channel binding required for -PLUS")
        credentials = await self.lookup(username)
        keys = credentials.for_hash(self.hash_name) if credentials else self._fake(username)
        try:
            server = ScramMechanism(self.name).make_server(
                lambda _name: (keys.salt, keys.stored_key, keys.server_key, keys.iterations),
                channel_binding=channel_binding,
            )
            server.set_client_first(message)
            challenge = server.get_server_first().encode()
        except ScramException as exc:
            log.debug("SCRAM client-first refused: %s", exc)
            raise SaslFailure("not-authorized") from None
        self._server = server
        self._username = username
        return Step(challenge=challenge)

    def _final(self, message: str) -> Step:
        server = self._server
        try:
            server.set_client_final(message)
            final = server.get_server_final().encode()
        except ScramException as exc:
            log.debug("SCRAM client-final refused: %s", exc)
            raise SaslFailure("not-authorized", SCRAM_FAILED) from None
        return Step(success=final, username=self._username)

    def _fake(self, username: str) -> ScramKeys:
        mac = hmac.digest(self.secret, f"{self.host}\0{username}".encode(), "sha256")
        size = 20 if self.hash_name == "sha1" else 32
        return ScramKeys(mac[:16], 4096, os.urandom(size), os.urandom(size))


def _prep_username(name: str) -> str:
    try:
        return nodeprep(name)
    except InvalidJID:
        raise SaslFailure("not-authorized", PLAIN_FAILED) from None


def _check_authzid(authzid: str, username: str, host: str) -> None:
    if authzid and authzid not in (username, f"{username}@{host}"):
        raise SaslFailure("invalid-authzid")


def make_mechanism(
    name: str,
    *,
    host: str,
    lookup: Lookup,
    bindings: Mapping[str, bytes],
    secure: bool,
    secret: bytes,
) -> Mechanism:
    """The mechanism object for ``name``, if we offer it here; SaslFailure otherwise."""
    if name not in offered_mechanisms(secure=secure, bindings=bindings):
        raise SaslFailure("invalid-mechanism")
    if name == "PLAIN":
        return Plain(host, lookup)
    return Scram(name, host, lookup, bindings, secret)


def end_point_hash(cert_der: bytes, signature_hash: str | None) -> bytes:
    """RFC 5929 tls-server-end-point: the certificate hashed with its signature hash,
    upgraded to SHA-256 when that is MD5 or SHA-1."""
    name = (signature_hash or "sha256").lower().replace("-", "")
    if name in ("md5", "sha1"):
        name = "sha256"
    return hashlib.new(name, cert_der).digest()
