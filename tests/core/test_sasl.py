"""SASL mechanisms in memory: scramp's client against our server side."""

from __future__ import annotations

import base64
import hashlib

import pytest
from scramp import ScramClient

from minixmpp.accounts import Credentials, check_password, derive_credentials, derive_keys
from minixmpp.sasl import (
    SaslFailure,
    decode_payload,
    downgrade_protection,
    make_mechanism,
    offered_mechanisms,
)

CREDS = {"alice": derive_credentials("pencil", 4096)}
BINDING = {"tls-server-end-point": b"\x01" * 32, "tls-unique": b"\x02" * 12}


async def lookup(username: str) -> Credentials | None:
    return CREDS.get(username)


def mechanism(name: str, bindings: dict[str, bytes] | None = None, secure: bool = True):  # type: ignore[no-untyped-def]
    return make_mechanism(
        name,
        host="localhost",
        lookup=lookup,
        bindings=bindings or {},
        secure=secure,
        secret=b"s" * 32,
        iterations=4096,
    )


async def run_scram(
    name: str,
    user: str,
    password: str,
    *,
    bindings: dict[str, bytes] | None = None,
    client_cb: tuple[str, bytes] | None = None,
) -> str:
    server = mechanism(name, bindings)
    client = ScramClient([name], user, password, channel_binding=client_cb)
    step = await server.step(client.get_client_first().encode())
    assert step.challenge is not None
    client.set_server_first(step.challenge.decode())
    step = await server.step(client.get_client_final().encode())
    assert step.success is not None
    client.set_server_final(step.success.decode())  # the server proved it knows the keys
    assert step.username is not None
    return step.username


@pytest.mark.parametrize("name", ["SCRAM-SHA-1", "SCRAM-SHA-256"])
async def test_scram(name: str) -> None:
    assert await run_scram(name, "alice", "pencil") == "alice"


@pytest.mark.parametrize("name", ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"])
@pytest.mark.parametrize("cb", ["tls-server-end-point", "tls-unique"])
async def test_scram_plus(name: str, cb: str) -> None:
    user = await run_scram(name, "alice", "pencil", bindings=BINDING, client_cb=(cb, BINDING[cb]))
    assert user == "alice"


async def test_scram_plus_wrong_binding_data() -> None:
    with pytest.raises(SaslFailure) as info:
        await run_scram(
            "SCRAM-SHA-256-PLUS",
            "alice",
            "pencil",
            bindings=BINDING,
            client_cb=("tls-server-end-point", b"\x09" * 32),
        )
    assert info.value.condition == "not-authorized"


async def test_scram_wrong_password() -> None:
    with pytest.raises(SaslFailure) as info:
        await run_scram("SCRAM-SHA-1", "alice", "crayon")
    assert info.value.condition == "not-authorized"


async def test_unknown_user_fails_only_at_the_proof() -> None:
    server = mechanism("SCRAM-SHA-1")
    client = ScramClient(["SCRAM-SHA-1"], "nobody", "x")
    step = await server.step(client.get_client_first().encode())
    assert step.challenge is not None  # looks like a real account
    again = await mechanism("SCRAM-SHA-1").step(b"n,,n=nobody,r=abc")
    salt = lambda c: [p for p in c.decode().split(",") if p.startswith("s=")]  # noqa: E731
    assert salt(step.challenge) == salt(again.challenge or b"")  # stable fake salt
    client.set_server_first(step.challenge.decode())
    with pytest.raises(SaslFailure):
        await server.step(client.get_client_final().encode())


def server_first_fields(challenge: bytes | None) -> dict[str, str]:
    assert challenge is not None
    return dict(part.split("=", 1) for part in challenge.decode().split(","))


async def test_unknown_users_look_like_real_accounts() -> None:
    """The configured iteration count, a stable salt per name, and one salt per hash (a real
    account has a salt for each hash: one shared salt would give decoys away)."""
    first = {}
    for name in ("SCRAM-SHA-1", "SCRAM-SHA-256"):
        server = make_mechanism(
            name,
            host="localhost",
            lookup=lookup,
            bindings={},
            secure=True,
            secret=b"s" * 32,
            iterations=12345,
        )
        first[name] = server_first_fields((await server.step(b"n,,n=nobody,r=abc")).challenge)
        assert first[name]["i"] == "12345"
        assert len(base64.b64decode(first[name]["s"])) == 16
    assert first["SCRAM-SHA-1"]["s"] != first["SCRAM-SHA-256"]["s"]
    other = await mechanism("SCRAM-SHA-1").step(b"n,,n=somebody,r=abc")
    assert server_first_fields(other.challenge)["s"] != first["SCRAM-SHA-1"]["s"]


async def test_downgrade_flag_is_refused_when_binding_is_offered() -> None:
    server = mechanism("SCRAM-SHA-1", BINDING)
    with pytest.raises(SaslFailure):
        await server.step(b"y,,n=alice,r=abcdef")


async def test_y_flag_is_fine_without_binding() -> None:
    step = await mechanism("SCRAM-SHA-1").step(b"y,,n=alice,r=abcdef")
    assert step.challenge is not None


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"n,,",
        b"x,,n=alice,r=1",
        b"n,,r=1",
        b"\xff\xfe",
        b"p=tls-exporter,,n=alice,r=1",
        b"n,a=bob@localhost,n=alice,r=1",
    ],
)
async def test_malformed_client_first(message: bytes) -> None:
    with pytest.raises(SaslFailure):
        await mechanism("SCRAM-SHA-1", BINDING).step(message)


async def test_plus_requires_a_binding() -> None:
    with pytest.raises(SaslFailure):
        await mechanism("SCRAM-SHA-1-PLUS", BINDING).step(b"n,,n=alice,r=abc")


async def test_plain() -> None:
    step = await mechanism("PLAIN").step(b"\0Alice\0pencil")
    assert step.username == "alice" and step.success == b""
    step = await mechanism("PLAIN").step(b"alice@localhost\0alice\0pencil")
    assert step.username == "alice"
    for bad, condition in [
        (b"\0alice\0crayon", "not-authorized"),
        (b"\0nobody\0x", "not-authorized"),
        (b"bob\0alice\0pencil", "invalid-authzid"),
        (b"alice", "malformed-request"),
        (b"\0a b\0x", "not-authorized"),
    ]:
        with pytest.raises(SaslFailure) as info:
            await mechanism("PLAIN").step(bad)
        assert info.value.condition == condition


def test_offered_mechanisms() -> None:
    assert offered_mechanisms(secure=True, bindings=BINDING) == [
        "SCRAM-SHA-256-PLUS",
        "SCRAM-SHA-1-PLUS",
        "SCRAM-SHA-256",
        "SCRAM-SHA-1",
        "PLAIN",
    ]
    assert offered_mechanisms(secure=False, bindings={}) == ["SCRAM-SHA-256", "SCRAM-SHA-1"]
    with pytest.raises(SaslFailure) as info:
        mechanism("PLAIN", secure=False)
    assert info.value.condition == "invalid-mechanism"
    with pytest.raises(SaslFailure):
        mechanism("DIGEST-MD5")


def test_decode_payload() -> None:
    assert decode_payload("=") == b""
    assert decode_payload(None) == b""
    assert decode_payload(base64.b64encode(b"x").decode()) == b"x"
    with pytest.raises(SaslFailure) as info:
        decode_payload("!!notbase64")
    assert info.value.condition == "incorrect-encoding"
    # SASL2 (XEP-0388): an empty element is the empty payload; "=" is no special case
    assert decode_payload("", sasl2=True) == b""
    with pytest.raises(SaslFailure):
        decode_payload("=", sasl2=True)


def test_stored_keys_match_scramp_and_never_hold_the_password() -> None:
    from scramp import ScramMechanism

    for hash_name, mech in (("sha1", "SCRAM-SHA-1"), ("sha256", "SCRAM-SHA-256")):
        keys = derive_keys(hash_name, "pencil", 4096, b"0123456789abcdef")
        _salt, stored, server, _i = ScramMechanism(mech).make_auth_info(
            "pencil", iteration_count=4096, salt=b"0123456789abcdef"
        )
        assert (keys.stored_key, keys.server_key) == (stored, server)
    creds = CREDS["alice"]
    assert check_password(creds, "pencil") and not check_password(creds, "pencil ")
    assert b"pencil" not in repr(creds).encode()


@pytest.mark.parametrize(
    ("name", "hash_name", "salt", "client_first", "server_nonce", "client_final", "server_final"),
    [
        (  # RFC 5802 §5
            "SCRAM-SHA-1",
            "sha1",
            "QSXCR+Q6sek8bf92",
            "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
            "3rfcNHYJY1ZVvWVs7j",
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
            "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
        ),
        (  # RFC 7677 §3
            "SCRAM-SHA-256",
            "sha256",
            "W22ZaJ0SNY7soEsUEjb6gQ==",
            "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
            "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
        ),
    ],
)
async def test_rfc_test_vectors(
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    hash_name: str,
    salt: str,
    client_first: str,
    server_nonce: str,
    client_final: str,
    server_final: str,
) -> None:
    import minixmpp.sasl

    keys = derive_keys(hash_name, "pencil", 4096, base64.b64decode(salt))

    async def vector_lookup(username: str) -> Credentials | None:
        assert username == "user"
        return Credentials(sha1=keys, sha256=keys)

    monkeypatch.setattr(minixmpp.sasl.secrets, "token_urlsafe", lambda _n: server_nonce)
    # the RFCs' server-first messages have no XEP-0474 attributes (tested below)
    monkeypatch.setattr(minixmpp.sasl, "downgrade_protection", lambda *_a: "")
    server = make_mechanism(
        name, host="h", lookup=vector_lookup, bindings={}, secure=True, secret=b"s", iterations=1
    )
    step = await server.step(client_first.encode())
    assert (
        step.challenge == f"r={client_first.split('r=')[1]}{server_nonce},s={salt},i=4096".encode()
    )
    step = await server.step(client_final.encode())
    assert (step.success, step.username) == (server_final.encode(), "user")


def test_downgrade_protection_matches_xep_0474s_examples() -> None:
    """XEP-0474's example: SCRAM-SHA-1 and -PLUS offered, tls-exporter and
    tls-server-end-point advertised; 0.4's h= (in 0.5.0's example) and 0.3's d=."""
    attributes = downgrade_protection(
        ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-1"], ["tls-server-end-point", "tls-exporter"], "sha1"
    )
    assert attributes == ",d=dRc3RenuSY9ypgPpERowoaySQZY=,h=G6k/rBLDqgOhRRaCuuatSDFkJ08="
    # without XEP-0440 channel-binding types: the mechanisms alone, no separator
    none = downgrade_protection(["SCRAM-SHA-1", "SCRAM-SHA-256"], [], "sha256")
    digest = hashlib.sha256(b"SCRAM-SHA-1\x1eSCRAM-SHA-256").digest()
    assert none.endswith(",h=" + base64.b64encode(digest).decode())


async def test_server_first_carries_the_offered_mechanisms_hash() -> None:
    bindings = {"tls-server-end-point": b"e" * 32}
    server = mechanism("SCRAM-SHA-256", bindings)
    step = await server.step(b"n,,n=alice,r=abcdefghijklmnop")
    assert step.challenge is not None
    attributes = dict(a.split("=", 1) for a in step.challenge.decode().split(","))
    offered = offered_mechanisms(secure=True, bindings=bindings)
    assert list(attributes) == ["r", "s", "i", "d", "h"]
    assert "," + ",".join(f"{k}={attributes[k]}" for k in "dh") == downgrade_protection(
        offered, ["tls-server-end-point"], "sha256"
    )
