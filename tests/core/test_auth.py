"""SASL and resource binding over real TLS connections, with Prosody's replies."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import ssl
import threading
from pathlib import Path

import pytest

import minixmpp.accounts
from minixmpp.testing import TestServer, running_server
from tests.xmpp import NS_BIND, NS_SASL, Closed, RawClient, login, same_xml, stanza_error


async def tls_client(server: TestServer, maximum: ssl.TLSVersion | None = None) -> RawClient:
    client = await RawClient.connect(server.c2s_port)
    await client.open()
    await client.starttls(server.ca_file, maximum=maximum)
    return client


def end_point(client: RawClient) -> bytes:
    der = client.ssl_object.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).digest()  # our certificates are signed with ECDSA-SHA256


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1", "SCRAM-SHA-256"])
async def test_scram(server: TestServer, mechanism: str) -> None:
    client = await tls_client(server)
    assert (await client.scram("alice", "alice-secret", mechanism)).tag == f"{{{NS_SASL}}}success"
    await client.open()
    assert await client.bind("desk") == "alice@localhost/desk"


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"])
async def test_scram_plus_tls_server_end_point_on_tls13(server: TestServer, mechanism: str) -> None:
    client = await tls_client(server)
    assert client.ssl_object.version() == "TLSv1.3"
    binding = ("tls-server-end-point", end_point(client))
    result = await client.scram("alice", "alice-secret", mechanism, channel_binding=binding)
    assert result.tag == f"{{{NS_SASL}}}success"


async def test_scram_plus_tls_unique_on_tls12(server: TestServer) -> None:
    client = await RawClient.connect(server.c2s_port)
    await client.open()
    features = await client.starttls(server.ca_file, maximum=ssl.TLSVersion.TLSv1_2)
    offered = {e.get("type") for e in features.iter("{urn:xmpp:sasl-cb:0}channel-binding")}
    assert offered == {"tls-server-end-point", "tls-unique"}
    unique = client.ssl_object.get_channel_binding("tls-unique")
    assert unique is not None
    result = await client.scram(
        "alice", "alice-secret", "SCRAM-SHA-1-PLUS", channel_binding=("tls-unique", unique)
    )
    assert result.tag == f"{{{NS_SASL}}}success"


async def test_scram_plus_with_a_forged_binding_fails(server: TestServer) -> None:
    client = await tls_client(server)
    forged = ("tls-server-end-point", hashlib.sha256(b"another certificate").digest())
    result = await client.scram(
        "alice", "alice-secret", "SCRAM-SHA-256-PLUS", channel_binding=forged
    )
    assert result.tag == f"{{{NS_SASL}}}failure"


async def test_plain(server: TestServer) -> None:
    client = await tls_client(server)
    success = await client.plain("Alice", "alice-secret")  # nodeprep'ed like Prosody
    same_xml(success, f"<success xmlns='{NS_SASL}'/>")
    await client.open()
    assert (await client.bind()).startswith("alice@localhost/")


async def test_wrong_password_then_retry(server: TestServer) -> None:
    client = await tls_client(server)
    same_xml(
        await client.plain("alice", "wrong"),
        f"<failure xmlns='{NS_SASL}'><not-authorized/><text>Unable to authorize you with the"
        " authentication credentials you've sent.</text></failure>",
    )
    same_xml(
        await client.scram("alice", "wrong"),
        f"<failure xmlns='{NS_SASL}'><not-authorized/><text>The response provided by the client"
        " doesn't match the one we calculated.</text></failure>",
    )
    assert (await client.scram("alice", "alice-secret")).tag == f"{{{NS_SASL}}}success"


async def test_unknown_user_is_indistinguishable_from_a_wrong_password(server: TestServer) -> None:
    client = await tls_client(server)
    failure = await client.scram("nobody", "whatever")
    same_xml(
        failure,
        f"<failure xmlns='{NS_SASL}'><not-authorized/><text>The response provided by the client"
        " doesn't match the one we calculated.</text></failure>",
    )


async def scram_server_first(client: RawClient, username: str, mechanism: str) -> dict[str, str]:
    payload = base64.b64encode(f"n,,n={username},r=abcdefgh".encode()).decode()
    await client.send(f"<auth xmlns='{NS_SASL}' mechanism='{mechanism}'>{payload}</auth>")
    challenge = await client.expect(f"{{{NS_SASL}}}challenge")
    await client.send(f"<abort xmlns='{NS_SASL}'/>")
    await client.expect(f"{{{NS_SASL}}}failure")
    text = base64.b64decode(challenge.text or "").decode()
    return dict(part.split("=", 1) for part in text.split(","))


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1", "SCRAM-SHA-256"])
async def test_scram_does_not_tell_which_accounts_exist(tmp_path: Path, mechanism: str) -> None:
    """A missing account's first server message has a real account's iteration count and a
    salt that stays the same across attempts (it used to be i=4096 whatever the setting)."""
    async with running_server(tmp_path, options={"default_iteration_count": 5000}) as srv:
        await srv.create_user("alice", "pw")
        client = await tls_client(srv)
        real = await scram_server_first(client, "alice", mechanism)
        missing = await scram_server_first(client, "nobody", mechanism)
        again = await scram_server_first(client, "nobody", mechanism)
    assert real["i"] == missing["i"] == "5000"
    assert missing["s"] == again["s"]
    assert len(base64.b64decode(missing["s"])) == len(base64.b64decode(real["s"])) == 16
    assert missing["r"].startswith("abcdefgh") and len(missing["r"]) == len(real["r"])


async def test_plain_hashes_as_much_for_a_missing_account(
    server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, int]] = []
    real_pbkdf2 = minixmpp.accounts.pbkdf2

    def spy(hash_name: str, password: bytes, salt: bytes, iterations: int) -> bytes:
        calls.append((hash_name, iterations))
        return real_pbkdf2(hash_name, password, salt, iterations)

    monkeypatch.setattr(minixmpp.accounts, "pbkdf2", spy)
    client = await tls_client(server)
    for username in ("alice", "nobody"):
        failure = await client.plain(username, "wrong")
        assert failure[0].tag == f"{{{NS_SASL}}}not-authorized"
    assert calls == [("sha256", 4096), ("sha256", 4096)]


async def test_plain_does_not_block_other_clients(
    server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one PLAIN login hashes its password, another client is served: the hashing is
    held until the other client's ping has been answered. On the event loop it would hang."""
    started, release = threading.Event(), threading.Event()
    released: list[bool] = []
    real_pbkdf2 = minixmpp.accounts.pbkdf2

    def held(hash_name: str, password: bytes, salt: bytes, iterations: int) -> bytes:
        started.set()
        released.append(release.wait(5))  # False: timed out, nobody could answer the ping
        return real_pbkdf2(hash_name, password, salt, iterations)

    other, _ = await login(server.c2s_port, server.ca_file, "bob", "bob-secret")
    monkeypatch.setattr(minixmpp.accounts, "pbkdf2", held)
    client = await tls_client(server)
    payload = base64.b64encode(b"\0alice\0alice-secret").decode()
    await client.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{payload}</auth>")
    for _ in range(500):  # bounded: 5 s
        if started.is_set():
            break
        await asyncio.sleep(0.01)
    assert started.is_set()
    try:
        pong = await other.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost", id="p")
        assert pong.get("type") == "result"
    finally:
        release.set()
    assert (await client.next()).tag == f"{{{NS_SASL}}}success"
    assert released == [True]


@pytest.mark.parametrize(
    ("element", "condition"),
    [
        (f"<auth xmlns='{NS_SASL}' mechanism='X-FOO'>AAAA</auth>", "invalid-mechanism"),
        (f"<auth xmlns='{NS_SASL}' mechanism='plain'>AAAA</auth>", "invalid-mechanism"),
        (f"<auth xmlns='{NS_SASL}'>AAAA</auth>", "invalid-mechanism"),
        (f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>!!!notbase64***</auth>", "incorrect-encoding"),
        (f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>=</auth>", "malformed-request"),
        (
            f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-1'>Z2FyYmFnZQ==</auth>",
            "malformed-request",
        ),
        (f"<abort xmlns='{NS_SASL}'/>", "aborted"),
    ],
)
async def test_sasl_failures(server: TestServer, element: str, condition: str) -> None:
    client = await tls_client(server)
    await client.send(element)
    failure = await client.next()
    assert failure.tag == f"{{{NS_SASL}}}failure"
    assert failure[0].tag == f"{{{NS_SASL}}}{condition}"
    assert (await client.scram("alice", "alice-secret")).tag == f"{{{NS_SASL}}}success"


async def test_out_of_order_response(server: TestServer) -> None:
    client = await tls_client(server)
    await client.send(f"<response xmlns='{NS_SASL}'>AAAA</response>")
    same_xml(
        await client.next(),
        f"<failure xmlns='{NS_SASL}'><not-authorized/>"
        "<text>Out of order SASL element</text></failure>",
    )


async def test_empty_initial_response_gets_an_empty_challenge(server: TestServer) -> None:
    client = await tls_client(server)
    await client.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'/>")
    same_xml(await client.next(), f"<challenge xmlns='{NS_SASL}'/>")
    payload = base64.b64encode(b"\0alice\0alice-secret").decode()
    await client.send(f"<response xmlns='{NS_SASL}'>{payload}</response>")
    assert (await client.next()).tag == f"{{{NS_SASL}}}success"


async def test_authzid_must_be_the_user(server: TestServer) -> None:
    client = await tls_client(server)
    failure = await client.plain("alice", "alice-secret", authzid="bob@localhost")
    assert failure[0].tag == f"{{{NS_SASL}}}invalid-authzid"
    assert (await client.plain("alice", "alice-secret", authzid="alice@localhost")).tag.endswith(
        "success"
    )


async def test_too_many_failures_close_the_stream(tmp_path: Path) -> None:
    async with running_server(tmp_path, options={"c2s_max_auth_failures": 3}) as srv:
        await srv.create_user("alice", "pw")
        client = await tls_client(srv)
        for _ in range(3):
            assert (await client.plain("alice", "nope")).tag == f"{{{NS_SASL}}}failure"
        condition, text = await client.stream_error()
        assert (condition, text) == ("policy-violation", "Too many failed authentication attempts")


async def test_auth_after_authentication_is_unsupported(server: TestServer) -> None:
    client, _ = await login(server.c2s_port, server.ca_file, "alice", "alice-secret")
    await client.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>AAAA</auth>")
    assert (await client.stream_error())[0] == "unsupported-stanza-type"


async def test_passwords_and_sasl_payloads_never_reach_the_log(
    server: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="minixmpp")
    client = await tls_client(server)
    payload = base64.b64encode(b"\0alice\0alice-secret").decode()
    await client.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{payload}</auth>")
    assert (await client.next()).tag.endswith("success")
    await client.open()
    await client.bind("r")
    await client.iq(
        "<query xmlns='jabber:iq:register'><username>alice</username>"
        "<password>new-secret-pw</password></query>",
        type="set",
    )
    # however it is written, and even when a read splits it in two
    await client.send("<iq type='set' id='p2'><query xmlns='jabber:iq:register'><username>alice")
    await asyncio.sleep(0.05)  # let the server read the first half on its own
    await client.send("</username><password><![CDATA[cdata-secret-pw]]></password></query></iq>")
    await client.expect("iq")
    logged = caplog.text
    assert "RECV" in logged and "SEND" in logged  # wire logging was on
    for secret in ("alice-secret", payload, "new-secret-pw", "cdata-secret-pw", "secret-pw"):
        assert secret not in logged


async def test_bind_generates_a_resource_like_prosody(server: TestServer) -> None:
    client = await tls_client(server)
    await client.scram("alice", "alice-secret")
    await client.open()
    await client.send(f"<iq type='set' id='b0'><bind xmlns='{NS_BIND}'/></iq>")
    reply = await client.expect("iq")
    jid = reply.findtext(f"{{{NS_BIND}}}bind/{{{NS_BIND}}}jid") or ""
    same_xml(
        reply, f"<iq type='result' id='b0'><bind xmlns='{NS_BIND}'><jid>{jid}</jid></bind></iq>"
    )
    resource = jid.split("/", 1)[1]
    assert len(resource) == 12


async def test_an_invalid_resource_gets_a_random_one(server: TestServer) -> None:
    client = await tls_client(server)
    await client.scram("alice", "alice-secret")
    await client.open()
    jid = await client.bind("bad\ufdd0resource")  # a noncharacter: Resourceprep refuses it
    assert jid.startswith("alice@localhost/") and "bad" not in jid


async def test_resource_conflict_replaces_the_old_session(server: TestServer) -> None:
    old, _ = await login(server.c2s_port, server.ca_file, "alice", "alice-secret", "r1")
    new, jid = await login(server.c2s_port, server.ca_file, "alice", "alice-secret", "r1")
    assert jid == "alice@localhost/r1"
    assert await old.stream_error() == ("conflict", "Replaced by new connection")
    reply = await new.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")
    assert reply.get("type") == "result"


async def test_resource_limit(tmp_path: Path) -> None:
    async with running_server(tmp_path, host_options={"localhost": {"max_resources": 2}}) as srv:
        await srv.create_user("alice", "pw")
        await login(srv.c2s_port, srv.ca_file, "alice", "pw", "a")
        await login(srv.c2s_port, srv.ca_file, "alice", "pw", "b")
        client = await tls_client(srv)
        await client.scram("alice", "pw")
        await client.open()
        await client.send(f"<iq type='set' id='b3'><bind xmlns='{NS_BIND}'/></iq>")
        error = stanza_error(await client.expect("iq"))
        assert error == (
            "wait",
            "resource-constraint",
            "Resource limit reached; only 2 resources allowed",
        )
        replaced = await login(
            srv.c2s_port, srv.ca_file, "alice", "pw", "a"
        )  # a replacement is fine
        assert replaced[1] == "alice@localhost/a"


async def test_stanzas_before_bind_get_service_unavailable(server: TestServer) -> None:
    client = await tls_client(server)
    await client.scram("alice", "alice-secret")
    await client.open()
    reply = await client.iq("<query xmlns='jabber:iq:roster'/>", id="rb")
    same_xml(
        reply,
        "<iq type='error' id='rb'><error type='cancel'><service-unavailable"
        " xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
    )


async def test_legacy_session_and_second_bind(server: TestServer) -> None:
    client, jid = await login(server.c2s_port, server.ca_file, "alice", "alice-secret", "rs")
    reply = await client.iq(
        "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/>", type="set", id="s1"
    )
    same_xml(reply, f"<iq to='{jid}' id='s1' type='result'/>")
    reply = await client.iq(f"<bind xmlns='{NS_BIND}'/>", type="set", id="b1")
    assert stanza_error(reply)[:2] == ("cancel", "service-unavailable")


async def test_closing_before_auth(server: TestServer) -> None:
    client = await tls_client(server)
    await client.send("</stream:stream>")
    with pytest.raises(Closed):
        await client.next()
    assert client.stream_closed
