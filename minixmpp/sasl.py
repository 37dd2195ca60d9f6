"""SASL mechanisms: SCRAM-SHA-1/256 (and -PLUS) and PLAIN.

The SCRAM server (RFC 5802) is written here on hashlib and hmac: scramp's server costs ~80 µs
per exchange in Python-level validation, a tenth of the login budget (bench/); scramp remains the
SASLprep implementation and, in the tests, the independent client that drives this server.

Unknown users get decoy credentials (``decoy_credentials``): the configured iteration count and,
per hash, a salt derived from a server secret and the name, so a SCRAM exchange looks like a real
account's and fails at the proof as a wrong password does, and PLAIN hashes the password as
much for them as for a real account. Neither tells which accounts exist. PLAIN's PBKDF2 runs in
a worker thread: it releases the GIL, and the event loop goes on serving everyone else.

Channel bindings offered: ``tls-server-end-point`` (a hash of our certificate; TLS 1.2 and 1.3)
and ``tls-unique`` on TLS 1.2 only (RFC 9266 forbids it on 1.3; slixmpp uses it on 1.2).

SCRAM downgrade protection (XEP-0474): the server-first message carries a hash of the mechanisms
and channel-binding types that were offered, which the client compares with what it saw; being
part of the signed auth message, it cannot be changed on the way. Both forms are sent: ``h=``
(XEP-0474 0.4 and later: values joined by U+001E, the two lists by U+001F) and ``d=`` (0.3.0,
what Monal 6 and prosody-modules' mod_sasl_ssdp implement: "," and "|"). Clients ignore SCRAM
attributes they do not know (RFC 5802 §5).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from minixmpp.accounts import Credentials, ScramKeys, check_password
from minixmpp.jid import InvalidJID, nodeprep

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


def downgrade_protection(mechanisms: Sequence[str], bindings: Iterable[str], hash_name: str) -> str:
    """The XEP-0474 attributes for a server-first message (with their leading commas): the
    hash of the offered ``mechanisms`` and channel-binding types (``bindings``, advertised
    with XEP-0440 when there are any), sorted by octet, with ``hash_name``."""
    names, types = sorted(mechanisms), sorted(bindings)
    old = ",".join(names) + ("|" + ",".join(types) if types else "")
    new = "\x1e".join(names) + ("\x1f" + "\x1e".join(types) if types else "")

    def digest(text: str) -> str:
        return base64.b64encode(hashlib.new(hash_name, text.encode()).digest()).decode()

    return f",d={digest(old)},h={digest(new)}"


def decode_payload(text: str | None, *, sasl2: bool = False) -> bytes:
    """Base64 payload of ``<auth>``/``<response>``; ``=`` means empty (RFC 6120 §6.4.2), but
    in SASL2 (XEP-0388), where an empty element is the empty string."""
    if not text or (text.strip() == "=" and not sasl2):
        return b""
    try:
        return base64.b64decode(text.strip(), validate=True)
    except ValueError:
        raise SaslFailure("incorrect-encoding") from None


class Mechanism:
    """One authentication exchange. ``username``: the prepared username the client gave, once
    known (for the log: a failure names it)."""

    name: str
    username: str | None = None

    async def step(self, data: bytes) -> Step:
        raise NotImplementedError


def decoy_credentials(secret: bytes, host: str, username: str, iterations: int) -> Credentials:
    """Stand-in credentials for an account that does not exist: the same salt for the same name
    every time (derived from ``secret``), a different one per hash as real accounts have, the
    configured iteration count, and keys that no password matches."""

    def keys(hash_name: str, size: int) -> ScramKeys:
        mac = hmac.digest(secret, f"{hash_name}\0{host}\0{username}".encode(), "sha256")
        return ScramKeys(mac[:16], iterations, os.urandom(size), os.urandom(size))

    return Credentials(sha1=keys("sha1", 20), sha256=keys("sha256", 32))


class Plain(Mechanism):
    name = "PLAIN"

    def __init__(self, host: str, lookup: Lookup, secret: bytes, iterations: int) -> None:
        self.host = host
        self.lookup = lookup
        self.secret = secret
        self.iterations = iterations

    async def step(self, data: bytes) -> Step:
        username, password = read_plain(self, data, self.host)
        credentials = await self.lookup(username)
        exists = credentials is not None
        if credentials is None:  # the same work as for a real account
            credentials = decoy_credentials(self.secret, self.host, username, self.iterations)
        matches = await asyncio.to_thread(check_password, credentials, password)
        if not (exists and matches):
            raise SaslFailure("not-authorized", PLAIN_FAILED)
        return Step(success=b"", username=username)


class Scram(Mechanism):
    """The server side of SCRAM (RFC 5802, RFC 7677), with channel binding for -PLUS."""

    def __init__(
        self,
        name: str,
        host: str,
        lookup: Lookup,
        bindings: Mapping[str, bytes],
        secret: bytes,
        iterations: int,
        offered: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.offered = offered  # the mechanisms offered on this stream (XEP-0474)
        self.host = host
        self.lookup = lookup
        self.bindings = bindings
        self.secret = secret
        self.iterations = iterations
        self.hash_name = "sha256" if name.startswith("SCRAM-SHA-256") else "sha1"
        self._keys: ScramKeys | None = None  # set by the client-first message
        self._nonce = ""
        self._cbind = b""  # what c= must decode to: GS2 header + channel-binding data
        self._auth_prefix = ""  # client-first-bare "," server-first ","
        self._username = ""

    async def step(self, data: bytes) -> Step:
        try:
            message = data.decode("utf-8")
        except UnicodeDecodeError:
            raise SaslFailure("malformed-request", "Invalid UTF-8") from None
        if self._keys is None:
            return await self._first(message)
        return self._final(message)

    async def _first(self, message: str) -> Step:
        flag, _, rest = message.partition(",")
        authzid_field, sep, bare = rest.partition(",")
        if not sep:
            raise SaslFailure("malformed-request", "Invalid SCRAM client-first message")
        gs2_header = message[: len(flag) + len(authzid_field) + 2]
        attrs = bare.split(",")
        if len(attrs) < 2 or not attrs[0].startswith("n=") or not attrs[1].startswith("r="):
            raise SaslFailure("malformed-request", "Invalid SCRAM client-first message")
        username = self.username = prep_username(_unescape(attrs[0][2:]))
        client_nonce = attrs[1][2:]
        if not _NONCE_RE.fullmatch(client_nonce):
            raise SaslFailure("malformed-request", "Invalid SCRAM nonce")
        if authzid_field:
            if not authzid_field.startswith("a="):
                raise SaslFailure("malformed-request", "Invalid SCRAM client-first message")
            check_authzid(_unescape(authzid_field[2:]), username, self.host)
        plus = self.name.endswith("-PLUS")
        if flag.startswith("p="):
            data = self.bindings.get(flag[2:])
            if data is None or not plus:
                raise SaslFailure("malformed-request", "Channel binding not supported")
            self._cbind = gs2_header.encode() + data
        elif not plus and (flag == "n" or (flag == "y" and not self.bindings)):
            # 'y' while we offer -PLUS would mean a downgrade (RFC 5802 §6): refused.
            self._cbind = gs2_header.encode()
        else:
            raise SaslFailure("malformed-request", "Invalid channel-binding flag")
        credentials = await self.lookup(username)
        if credentials is None:
            credentials = decoy_credentials(self.secret, self.host, username, self.iterations)
        keys = credentials.for_hash(self.hash_name)
        self._nonce = client_nonce + secrets.token_urlsafe(18)
        server_first = (
            f"r={self._nonce},s={base64.b64encode(keys.salt).decode()},i={keys.iterations}"
            + downgrade_protection(self.offered, self.bindings, self.hash_name)
        )
        self._auth_prefix = f"{bare},{server_first},"
        self._username = username
        self._keys = keys
        return Step(challenge=server_first.encode())

    def _final(self, message: str) -> Step:
        keys = self._keys
        assert keys is not None
        without_proof, sep, proof_field = message.rpartition(",")
        attrs = without_proof.split(",")
        if not sep or not proof_field.startswith("p=") or len(attrs) < 2:
            raise SaslFailure("malformed-request", "Invalid SCRAM client-final message")
        try:
            cbind = base64.b64decode(attrs[0][2:], validate=True)
            proof = base64.b64decode(proof_field[2:], validate=True)
        except ValueError:
            raise SaslFailure("malformed-request", "Invalid SCRAM client-final message") from None
        if (
            not attrs[0].startswith("c=")
            or not hmac.compare_digest(cbind, self._cbind)
            or attrs[1] != f"r={self._nonce}"
            or len(proof) != len(keys.stored_key)
        ):
            raise SaslFailure("not-authorized", SCRAM_FAILED)
        auth_message = (self._auth_prefix + without_proof).encode()
        signature = hmac.digest(keys.stored_key, auth_message, self.hash_name)
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(
            hashlib.new(self.hash_name, client_key).digest(), keys.stored_key
        ):
            raise SaslFailure("not-authorized", SCRAM_FAILED)
        server_signature = hmac.digest(keys.server_key, auth_message, self.hash_name)
        return Step(success=b"v=" + base64.b64encode(server_signature), username=self._username)


_NONCE_RE = re.compile(r"[\x21-\x2b\x2d-\x7e]+")  # printable ASCII except ','


def _unescape(saslname: str) -> str:
    """RFC 5802 saslname: '=2C' is ',', '=3D' is '='; any other '=' is malformed."""
    if "=" in saslname.replace("=2C", "").replace("=3D", ""):
        raise SaslFailure("malformed-request", "Invalid SCRAM username")
    return saslname.replace("=2C", ",").replace("=3D", "=")


def prep_username(name: str) -> str:
    try:
        return nodeprep(name)
    except InvalidJID:
        raise SaslFailure("not-authorized", PLAIN_FAILED) from None


def read_plain(mechanism: Mechanism, data: bytes, host: str) -> tuple[str, str]:
    """A PLAIN message (RFC 4616: authzid NUL authcid NUL password): its prepared username
    (also set as ``mechanism.username`` before the authzid is checked: failures are logged
    with it) and the password; SaslFailure for a malformed one or a foreign authzid."""
    try:
        authzid, authcid, password = data.decode("utf-8").split("\0")
    except ValueError:
        raise SaslFailure("malformed-request") from None
    if not authcid or not password:
        raise SaslFailure("malformed-request")
    username = mechanism.username = prep_username(authcid)
    check_authzid(authzid, username, host)
    return username, password


def check_authzid(authzid: str, username: str, host: str) -> None:
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
    iterations: int,
) -> Mechanism:
    """The mechanism object for ``name``, if we offer it here; SaslFailure otherwise.
    ``secret`` and ``iterations`` (new accounts' count) make the decoys for unknown users."""
    offered = offered_mechanisms(secure=secure, bindings=bindings)
    if name not in offered:
        raise SaslFailure("invalid-mechanism")
    if name == "PLAIN":
        return Plain(host, lookup, secret, iterations)
    return Scram(name, host, lookup, bindings, secret, iterations, offered)


def end_point_hash(cert_der: bytes, signature_hash: str | None) -> bytes:
    """RFC 5929 tls-server-end-point: the certificate hashed with its signature hash,
    upgraded to SHA-256 when that is MD5 or SHA-1."""
    name = (signature_hash or "sha256").lower().replace("-", "")
    if name in ("md5", "sha1"):
        name = "sha256"
    return hashlib.new(name, cert_der).digest()
