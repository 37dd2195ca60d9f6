"""Properties of the SASL server side (minixmpp/sasl.py): whatever a client sends, the answer is
a challenge, a success, or SaslFailure, never another exception; scramp's client always logs
in with the right password and never with a wrong one; a client-final message changed in any
way succeeds only if it still says the same thing.
"""

from __future__ import annotations

import asyncio
import base64
import random

from hypothesis import assume, given
from hypothesis import strategies as s
from scramp import ScramClient
from scramp.utils import ScramException, saslprep

from minixmpp.accounts import Credentials, derive_credentials
from minixmpp.jid import InvalidJID, nodeprep
from minixmpp.sasl import (
    SaslFailure,
    Scram,
    Step,
    decode_payload,
    make_mechanism,
)
from tests.properties import examples

SETTINGS = examples(100)
ITERATIONS = 4096  # scramp's client refuses fewer
BINDINGS = {"tls-server-end-point": b"\x01" * 32, "tls-unique": b"\x02" * 12}
SCRAMS = ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"]
ACCOUNTS: dict[str, Credentials] = {}
seeded = s.integers(min_value=0, max_value=2**32 - 1).map(random.Random)
_DERIVED: dict[str, Credentials] = {}


def credentials(password: str) -> Credentials:
    if password not in _DERIVED:
        _DERIVED[password] = derive_credentials(password, ITERATIONS)
    return _DERIVED[password]


async def lookup(username: str) -> Credentials | None:
    return ACCOUNTS.get(username)


def server(name: str, *, bindings: dict[str, bytes] | None = None) -> Scram:
    mechanism = make_mechanism(
        name,
        host="localhost",
        lookup=lookup,
        bindings=BINDINGS if bindings is None else bindings,
        secure=True,
        secret=b"k" * 32,
        iterations=ITERATIONS,
    )
    assert isinstance(mechanism, Scram)
    return mechanism


def step(mechanism: object, data: bytes) -> Step | SaslFailure:
    """One step; SaslFailure is returned, anything else propagates (and fails the test)."""
    try:
        return asyncio.run(mechanism.step(data))  # type: ignore[attr-defined]
    except SaslFailure as failure:
        return failure


# Strings a SCRAM parser trips on: separators, escapes, attribute names, base64 and its
# padding, non-ASCII, and anything else.
PIECES = [",", "=", "=2C", "=3D", "n", "y", "p", "a=", "n=", "r=", "c=", "p=", "s=", "i=", "m=",
          "biws", "eSws", "==", "\x00", "é", "alice", "tls-unique", "tls-server-end-point",
          "cD10bHMtdW5pcXVlLCw="]  # fmt: skip
scram_text = s.lists(s.sampled_from(PIECES) | s.text(max_size=4), max_size=12).map("".join)
payloads = s.binary(max_size=80) | scram_text.map(lambda t: t.encode())


@s.composite
def client_firsts(draw: s.DrawFn) -> bytes:
    """Near-valid client-first messages: every field drawn from valid and invalid choices."""
    flag = draw(
        s.sampled_from(["n", "y", "p=tls-unique", "p=tls-server-end-point", "p=", "p=x", "x"])
    )
    authzid = draw(s.sampled_from(["", "a=alice", "a=alice@localhost", "a=bob", "a=", "z"]))
    user = draw(
        s.sampled_from(["alice", "Alice", "nobody", "a=2Cb", "a=3Db", "a=b", ""])
        | s.text(max_size=8)
    )
    nonce = draw(s.sampled_from(["abc", "x" * 40, "", "a,b", "é"]) | s.text(max_size=8))
    extra = draw(s.sampled_from(["", ",m=x", ",x=y", ","]))
    return f"{flag},{authzid},n={user},r={nonce}{extra}".encode()


def setup_module() -> None:
    ACCOUNTS["alice"] = credentials("pencil")


@SETTINGS
@given(s.sampled_from([*SCRAMS, "PLAIN"]), payloads | client_firsts())
def test_any_first_message_gets_a_challenge_or_sasl_failure(name: str, data: bytes) -> None:
    if name == "PLAIN":
        mechanism = make_mechanism(
            name,
            host="localhost",
            lookup=lookup,
            bindings={},
            secure=True,
            secret=b"k" * 32,
            iterations=ITERATIONS,
        )
    else:
        mechanism = server(name)
    result = step(mechanism, data)
    if isinstance(result, SaslFailure):
        assert result.condition in (
            "malformed-request", "not-authorized", "invalid-authzid", "incorrect-encoding"
        )  # fmt: skip
        return
    if name == "PLAIN":  # only the right password succeeds
        assert result.success == b"" and result.username == "alice"
        assert data.split(b"\0")[2] == b"pencil"
        return
    assert result.challenge is not None and result.success is None
    fields = dict(f.split("=", 1) for f in result.challenge.decode().split(","))
    client_nonce = data.decode().split(",")[3][2:]
    assert fields["r"].startswith(client_nonce) and len(fields["r"]) > len(client_nonce)
    assert len(base64.b64decode(fields["s"], validate=True)) == 16
    assert fields["i"] == str(ITERATIONS)


@SETTINGS
@given(s.sampled_from(SCRAMS), payloads)
def test_any_final_message_fails_with_sasl_failure(name: str, data: bytes) -> None:
    """Without the password nothing succeeds: any client-final gets SaslFailure."""
    mechanism = server(name)
    flag = "p=tls-unique" if name.endswith("-PLUS") else "n"
    first = step(mechanism, f"{flag},,n=alice,r=nonce".encode())
    assert isinstance(first, Step) and first.challenge is not None
    result = step(mechanism, data)
    assert isinstance(result, SaslFailure)
    assert result.condition in ("malformed-request", "not-authorized")


def _username(text: str) -> str | None:
    """A stored username from ``text``: prepared by nodeprep, and left as it is by SASLprep
    (scramp's client prepares the name it sends); None if there is none."""
    try:
        name = nodeprep(text)
        return name if saslprep(name) == name else None
    except (InvalidJID, ScramException):
        return None


LATIN = s.characters(min_codepoint=0x21, max_codepoint=0x24F, exclude_categories=("Cc",))
# '=' and ',' must be escaped in SCRAM (=3D, =2C); U+00A0 is a space and U+00AD nothing to
# SASLprep, so different passwords can be the same password.
usernames = (
    s.text(alphabet=s.sampled_from("abcz09=,.-_~!éßΣ中") | LATIN, min_size=1, max_size=12)
    .map(_username)
    .filter(lambda name: name is not None)
)
passwords = s.text(
    alphabet=s.sampled_from("aA0 =,\u00a0\u00ad\u2003éΣ中") | LATIN,
    min_size=1,
    max_size=16,
).filter(lambda p: _prepared(p) is not None)


def _prepared(password: str) -> str | None:
    try:
        return saslprep(password) or None
    except ScramException:
        return None


def scramp_login(name: str, user: str, password: str) -> Step | SaslFailure:
    mechanism = server(name)
    binding = ("tls-unique", BINDINGS["tls-unique"]) if name.endswith("-PLUS") else None
    client = ScramClient([name], user, password, channel_binding=binding)
    first = step(mechanism, client.get_client_first().encode())
    assert isinstance(first, Step) and first.challenge is not None
    client.set_server_first(first.challenge.decode())
    final = step(mechanism, client.get_client_final().encode())
    if isinstance(final, Step):
        assert final.success is not None
        client.set_server_final(final.success.decode())  # the server proves it knows the keys
    return final


@examples(40)
@given(s.sampled_from(SCRAMS), usernames, passwords, passwords)
def test_scramp_logs_in_with_the_right_password_only(
    name: str, user: str, password: str, other: str
) -> None:
    ACCOUNTS[user] = credentials(password)
    try:
        ok = scramp_login(name, user, password)
        assert isinstance(ok, Step) and ok.username == user
        wrong = scramp_login(name, user, other)
        if _prepared(other) == _prepared(password):  # the same password once prepared
            assert isinstance(wrong, Step)
        else:
            assert isinstance(wrong, SaslFailure) and wrong.condition == "not-authorized"
    finally:
        del ACCOUNTS[user]


@examples(60)
@given(s.sampled_from(SCRAMS), seeded)
def test_a_changed_client_final_succeeds_only_if_it_says_the_same(
    name: str, rnd: random.Random
) -> None:
    mechanism = server(name)
    binding = ("tls-unique", BINDINGS["tls-unique"]) if name.endswith("-PLUS") else None
    client = ScramClient([name], "alice", "pencil", channel_binding=binding)
    first = step(mechanism, client.get_client_first().encode())
    assert isinstance(first, Step) and first.challenge is not None
    client.set_server_first(first.challenge.decode())
    final = bytearray(client.get_client_final().encode())
    original = bytes(final)
    i = rnd.randrange(len(final))
    change = rnd.randrange(3)
    if change == 0:
        final[i] ^= 1 << rnd.randrange(8)
    elif change == 1:
        del final[i]
    else:
        final.insert(i, rnd.choice(b",=abcAZ09+/\x00\xff"))
    assume(bytes(final) != original)
    result = step(mechanism, bytes(final))
    if isinstance(result, Step):
        assert _meaning(bytes(final)) == _meaning(original)


def _meaning(final: bytes) -> tuple[str, bytes]:
    """What a client-final says: everything but the proof, and the proof's bytes (base64 can
    spell the same bytes differently in its last character's unused bits)."""
    without_proof, _, proof = final.decode().rpartition(",")
    return without_proof, base64.b64decode(proof[2:])


@SETTINGS
@given(s.text(max_size=40) | s.binary(max_size=30).map(lambda b: base64.b64encode(b).decode()))
def test_payload_decoding_gives_bytes_or_incorrect_encoding(text: str) -> None:
    try:
        data = decode_payload(text)
    except SaslFailure as failure:
        assert failure.condition == "incorrect-encoding"
        return
    assert isinstance(data, bytes)
    if text.strip() not in ("", "="):
        assert base64.b64encode(data) == text.strip().encode() or data == base64.b64decode(
            text.strip()
        )
