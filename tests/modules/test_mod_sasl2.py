"""SASL2 (XEP-0388) on the wire: the feature, every mechanism, each element and failure, the
features after success without a restart, limit_auth, the log, and XEP-0474 downgrade
protection as a client checks it (a stripped mechanism list shows)."""

from __future__ import annotations

import base64
import hashlib
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from lxml import etree

from minixmpp.testing import TestServer, running_server
from tests.sasl2 import (
    MODULES,
    NS_BIND2,
    NS_SASL,
    NS_SASL2,
    agent,
    authenticate,
    b64,
    binding_types,
    condition,
    connect,
    end_point,
    identifier,
    mechanisms,
    scram,
    scram_attributes,
    ssdp,
)
from tests.xmpp import NS_BIND, NS_STREAM, RawClient, login, same_xml

SUCCESS = f"{{{NS_SASL2}}}success"
FEATURES = f"{{{NS_STREAM}}}features"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[TestServer]:
    async with running_server(tmp_path, modules=MODULES) as srv:
        await srv.create_user("alice", "alice-secret")
        await srv.create_user("bob", "bob-secret")
        yield srv


async def test_the_feature_offers_what_sasl_offers(server: TestServer) -> None:
    _, features = await connect(server)
    authentication = features.find(f"{{{NS_SASL2}}}authentication")
    assert authentication is not None
    assert (
        mechanisms(features)
        == mechanisms(features, NS_SASL)
        == [
            "SCRAM-SHA-256-PLUS",
            "SCRAM-SHA-1-PLUS",
            "SCRAM-SHA-256",
            "SCRAM-SHA-1",
            "PLAIN",
        ]
    )
    inline = authentication.find(f"{{{NS_SASL2}}}inline")
    assert inline is not None
    assert [etree.QName(e).localname for e in inline] == ["bind", "fast"]
    assert binding_types(features) == ["tls-server-end-point"]  # XEP-0440, shared with SASL


async def test_no_sasl2_before_tls(tmp_path: Path) -> None:
    """Offered over TLS only, even when plain-text logins are allowed (XEP-0388 §5)."""
    options = {"c2s_require_encryption": False}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        await srv.create_user("alice", "alice-secret")
        client = await RawClient.connect(srv.c2s_port)
        features = await client.open()
        assert mechanisms(features, NS_SASL) == ["SCRAM-SHA-256", "SCRAM-SHA-1"]
        assert features.find(f"{{{NS_SASL2}}}authentication") is None
        result = await scram(client, "alice", "alice-secret")
        same_xml(
            result.reply,
            f"<failure xmlns='{NS_SASL2}'><encryption-required xmlns='{NS_SASL}'/></failure>",
        )


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1", "SCRAM-SHA-256"])
async def test_scram_success_then_features_without_a_restart(
    server: TestServer, mechanism: str
) -> None:
    client, _ = await connect(server)
    result = await scram(client, "alice", "alice-secret", mechanism)
    # scramp checked the server signature in <additional-data/>
    assert [etree.QName(e).localname for e in result.reply] == [
        "additional-data",
        "authorization-identifier",
    ]
    assert identifier(result.reply) == "alice@localhost"  # bare: nothing bound
    features = await client.next()
    assert features.tag == FEATURES
    assert features.find(f"{{{NS_BIND}}}bind") is not None  # RFC 6120 binding next
    assert features.find(f"{{{NS_SASL2}}}authentication") is None
    assert await client.bind("desk") == "alice@localhost/desk"
    pong = await client.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")
    assert pong.get("type") == "result"


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"])
async def test_scram_plus_with_tls_server_end_point(server: TestServer, mechanism: str) -> None:
    client, _ = await connect(server)
    binding = ("tls-server-end-point", end_point(client))
    result = await scram(client, "alice", "alice-secret", mechanism, channel_binding=binding)
    assert result.reply.tag == SUCCESS


async def test_scram_plus_with_tls_unique_on_tls12(server: TestServer) -> None:
    client, features = await connect(server, maximum=ssl.TLSVersion.TLSv1_2)
    assert binding_types(features) == ["tls-server-end-point", "tls-unique"]
    unique = client.ssl_object.get_channel_binding("tls-unique")
    assert unique is not None
    binding = ("tls-unique", unique)
    result = await scram(client, "bob", "bob-secret", "SCRAM-SHA-1-PLUS", channel_binding=binding)
    assert result.reply.tag == SUCCESS


async def test_a_forged_binding_fails(server: TestServer) -> None:
    client, _ = await connect(server)
    binding = ("tls-server-end-point", b"\0" * 32)
    result = await scram(
        client, "alice", "alice-secret", "SCRAM-SHA-256-PLUS", channel_binding=binding
    )
    assert condition(result.reply) == "not-authorized"


async def test_plain(server: TestServer) -> None:
    client, _ = await connect(server)
    reply = await authenticate(client, "PLAIN", b"\0alice\0alice-secret", agent())
    same_xml(
        reply,
        f"<success xmlns='{NS_SASL2}'>"
        "<authorization-identifier>alice@localhost</authorization-identifier></success>",
    )
    assert (await client.next()).tag == FEATURES


async def test_wrong_password_gets_prosodys_failure_text(server: TestServer) -> None:
    client, _ = await connect(server)
    result = await scram(client, "alice", "wrong")
    same_xml(
        result.reply,
        f"<failure xmlns='{NS_SASL2}'><not-authorized xmlns='{NS_SASL}'/>"
        "<text>The response provided by the client doesn't match the one we calculated."
        "</text></failure>",
    )
    reply = await authenticate(client, "PLAIN", b"\0alice\0wrong")
    same_xml(
        reply,
        f"<failure xmlns='{NS_SASL2}'><not-authorized xmlns='{NS_SASL}'/>"
        "<text>Unable to authorize you with the authentication credentials you've sent."
        "</text></failure>",
    )
    # the stream is unchanged: the right password works now
    assert (await scram(client, "alice", "alice-secret")).reply.tag == SUCCESS


@pytest.mark.parametrize(
    ("element", "expected"),
    [
        (f"<authenticate xmlns='{NS_SASL2}' mechanism='X-FOO'/>", "invalid-mechanism"),
        (f"<authenticate xmlns='{NS_SASL2}' mechanism='plain'/>", "invalid-mechanism"),
        (f"<authenticate xmlns='{NS_SASL2}'/>", "invalid-mechanism"),
        (  # HT without FAST's <fast/>: not a SASL2 mechanism
            f"<authenticate xmlns='{NS_SASL2}' mechanism='HT-SHA-256-NONE'>"
            f"<initial-response>{b64(b'alice' + bytes(33))}</initial-response></authenticate>",
            "invalid-mechanism",
        ),
        (
            f"<authenticate xmlns='{NS_SASL2}' mechanism='PLAIN'>"
            "<initial-response>!!!notbase64***</initial-response></authenticate>",
            "incorrect-encoding",
        ),
        (  # "=" is no empty payload in SASL2
            f"<authenticate xmlns='{NS_SASL2}' mechanism='PLAIN'>"
            "<initial-response>=</initial-response></authenticate>",
            "incorrect-encoding",
        ),
        (
            f"<authenticate xmlns='{NS_SASL2}' mechanism='PLAIN'>"
            "<initial-response/></authenticate>",
            "malformed-request",
        ),
        (
            f"<authenticate xmlns='{NS_SASL2}' mechanism='SCRAM-SHA-1'>"
            "<initial-response>Z2FyYmFnZQ==</initial-response></authenticate>",
            "malformed-request",
        ),
        (f"<abort xmlns='{NS_SASL2}'/>", "aborted"),
    ],
)
async def test_failures(server: TestServer, element: str, expected: str) -> None:
    client, _ = await connect(server)
    await client.send(element)
    failure = await client.next()
    assert condition(failure) == expected
    assert len(failure) == (2 if failure.find(f"{{{NS_SASL2}}}text") is not None else 1)
    assert (await scram(client, "alice", "alice-secret")).reply.tag == SUCCESS


async def test_abort_in_the_middle(server: TestServer) -> None:
    client, _ = await connect(server)
    await authenticate(client, "SCRAM-SHA-256", b"n,,n=alice,r=abcdefghijklmnop")
    await client.send(f"<abort xmlns='{NS_SASL2}'><text>changed my mind</text></abort>")
    same_xml(
        await client.next(),
        f"<failure xmlns='{NS_SASL2}'><aborted xmlns='{NS_SASL}'/></failure>",
    )
    # the aborted exchange is gone: a response now is out of order
    await client.send(f"<response xmlns='{NS_SASL2}'>AAAA</response>")
    same_xml(
        await client.next(),
        f"<failure xmlns='{NS_SASL2}'><not-authorized xmlns='{NS_SASL}'/>"
        "<text>Out of order SASL element</text></failure>",
    )


async def test_no_initial_response_gets_an_empty_challenge(server: TestServer) -> None:
    client, _ = await connect(server)
    reply = await authenticate(client, "PLAIN", None, agent())
    same_xml(reply, f"<challenge xmlns='{NS_SASL2}'/>")
    payload = b64(b"\0alice\0alice-secret")
    await client.send(f"<response xmlns='{NS_SASL2}'>{payload}</response>")
    assert (await client.next()).tag == SUCCESS


async def test_authzid_must_be_the_user(server: TestServer) -> None:
    client, _ = await connect(server)
    reply = await authenticate(client, "PLAIN", b"bob@localhost\0alice\0alice-secret")
    assert condition(reply) == "invalid-authzid"


async def test_authenticate_after_success_is_a_stream_error(server: TestServer) -> None:
    client, _ = await connect(server)
    assert (await scram(client, "alice", "alice-secret")).reply.tag == SUCCESS
    await client.expect(FEATURES)
    await client.send(f"<authenticate xmlns='{NS_SASL2}' mechanism='PLAIN'/>")
    assert (await client.stream_error())[0] == "unsupported-stanza-type"


async def test_sasl_keeps_working_beside_sasl2(server: TestServer) -> None:
    _, jid = await login(server.c2s_port, server.ca_file, "bob", "bob-secret", "legacy")
    assert jid == "bob@localhost/legacy"


async def test_too_many_failures_close_the_stream(tmp_path: Path) -> None:
    options = {"c2s_max_auth_failures": 3}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        await srv.create_user("alice", "pw")
        client, _ = await connect(srv)
        for _ in range(3):
            assert condition(await authenticate(client, "PLAIN", b"\0alice\0no")) == (
                "not-authorized"
            )
        condition_, text = await client.stream_error()
        assert (condition_, text) == ("policy-violation", "Too many failed authentication attempts")


async def test_limit_auth_throttles_sasl2_and_sasl_together(tmp_path: Path) -> None:
    options = {"limit_auth_max": 2, "limit_auth_period": 3600, "unlimited_ips": []}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        await srv.create_user("alice", "alice-secret")
        srv.clock.freeze()
        client, _ = await connect(srv)
        assert condition(await authenticate(client, "PLAIN", b"\0alice\0no")) == "not-authorized"
        legacy, _ = await connect(srv)
        assert (await legacy.plain("alice", "no"))[0].tag == f"{{{NS_SASL}}}not-authorized"
        # out of attempts: the right password is not looked at, in either profile
        same_xml(
            await authenticate(client, "PLAIN", b"\0alice\0alice-secret"),
            f"<failure xmlns='{NS_SASL2}'><temporary-auth-failure xmlns='{NS_SASL}'/></failure>",
        )
        assert (await legacy.plain("alice", "alice-secret"))[0].tag == (
            f"{{{NS_SASL}}}temporary-auth-failure"
        )
        srv.clock.advance(1801)  # one attempt back; the idle streams timed out meanwhile
        client, _ = await connect(srv)
        assert (await scram(client, "alice", "alice-secret")).reply.tag == SUCCESS


async def test_payloads_never_reach_the_log(
    server: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="minixmpp")
    client, _ = await connect(server)
    await authenticate(client, "PLAIN", b"\0alice\0alice-wrong-pw")
    result = await scram(client, "alice", "alice-secret")
    assert result.reply.tag == SUCCESS
    await client.expect(FEATURES)
    logged = caplog.text
    assert "RECV" in logged and "SEND" in logged  # wire logging was on
    for element in ("initial-response", "challenge", "response", "additional-data"):
        assert f'{element} xmlns="{NS_SASL2}">[redacted]' in logged or (
            f"<{element}>[redacted]</{element}>" in logged
        )
    signature = result.reply.findtext(f"{{{NS_SASL2}}}additional-data") or ""
    for secret in (
        "alice-wrong-pw",
        b64(b"\0alice\0alice-wrong-pw"),
        signature,
        b64(result.server_first.encode()),
    ):
        assert secret not in logged
    assert "authenticated as alice@localhost (SASL2 SCRAM-SHA-256)" in logged
    assert "authentication failed from 127.0.0.1 as alice@localhost (SASL2 PLAIN)" in logged


# -- XEP-0474 downgrade protection ----------------------------------------------------------


async def server_first(client: RawClient, mechanism: str, profile: str) -> dict[str, str]:
    """The SCRAM attributes of the server-first message, over SASL or SASL2."""
    first = b64(b"n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL")
    if profile == "sasl2":
        await client.send(
            f"<authenticate xmlns='{NS_SASL2}' mechanism='{mechanism}'>"
            f"<initial-response>{first}</initial-response></authenticate>"
        )
    else:
        await client.send(f"<auth xmlns='{NS_SASL}' mechanism='{mechanism}'>{first}</auth>")
    challenge = await client.next()
    assert etree.QName(challenge).localname == "challenge", etree.tostring(challenge)
    return scram_attributes(base64.b64decode(challenge.text or "").decode())


@pytest.mark.parametrize("profile", ["sasl", "sasl2"])
@pytest.mark.parametrize("tls", [None, ssl.TLSVersion.TLSv1_2])
@pytest.mark.parametrize(
    ("mechanism", "hash_name"), [("SCRAM-SHA-1", "sha1"), ("SCRAM-SHA-256", "sha256")]
)
async def test_downgrade_protection_shows_a_stripped_mechanism_list(
    server: TestServer,
    profile: str,
    tls: ssl.TLSVersion | None,
    mechanism: str,
    hash_name: str,
) -> None:
    client, features = await connect(server, maximum=tls)
    ns = NS_SASL2 if profile == "sasl2" else NS_SASL
    offered, types = mechanisms(features, ns), binding_types(features)
    attributes = await server_first(client, mechanism, profile)
    # what the client saw is what the server hashed
    assert attributes["h"] == ssdp(offered, types, hash_name)
    # a man in the middle who took out the -PLUS mechanisms, or a channel-binding type, or
    # PLAIN, to steer the client: the client's hash over what it saw no longer matches
    stripped = [name for name in offered if not name.endswith("-PLUS")]
    assert attributes["h"] != ssdp(stripped, types, hash_name)
    assert attributes["h"] != ssdp(offered, types[:-1], hash_name)
    assert attributes["h"] != ssdp([n for n in offered if n != "PLAIN"], types, hash_name)
    assert attributes["h"] != ssdp(stripped, [], hash_name)
    # XEP-0474 0.3's d= (Monal 6, prosody-modules' mod_sasl_ssdp): "," and "|"
    old = ",".join(sorted(offered)) + "|" + ",".join(sorted(types))
    assert attributes["d"] == b64(hashlib.new(hash_name, old.encode()).digest())


async def test_downgrade_protection_without_channel_binding(tmp_path: Path) -> None:
    """No TLS, no XEP-0440 list: the mechanisms alone are hashed, with no separator."""
    options = {"c2s_require_encryption": False}
    async with running_server(tmp_path, options=options) as srv:
        await srv.create_user("alice", "alice-secret")
        client = await RawClient.connect(srv.c2s_port)
        features = await client.open()
        offered = mechanisms(features, NS_SASL)
        assert binding_types(features) == []
        attributes = await server_first(client, "SCRAM-SHA-1", "sasl")
        assert attributes["h"] == ssdp(offered, [], "sha1")
        assert attributes["h"] != ssdp(offered[1:], [], "sha1")


async def test_bind2_is_inline_only(server: TestServer) -> None:
    """Bind 2 lives in SASL2's <inline/>, never as a stream feature of its own."""
    _, features = await connect(server)
    assert features.find(f"{{{NS_BIND2}}}bind") is None
    assert features.find(f".//{{{NS_SASL2}}}inline/{{{NS_BIND2}}}bind") is not None


BROKEN = """
from minixmpp.events import SASL2_SUCCESS


def load(module):
    @module.hook(SASL2_SUCCESS)
    async def broken(event) -> None:
        raise RuntimeError("a bug")
"""


async def test_a_failing_success_handler_ends_the_stream(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Authenticated, but <success/> cannot be built: not a silent hang."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "mod_broken.py").write_text(BROKEN)
    options = {"plugin_paths": [str(plugins)]}
    async with running_server(tmp_path, modules=[*MODULES, "broken"], options=options) as srv:
        await srv.create_user("alice", "alice-secret")
        client, _ = await connect(srv)
        reply = await authenticate(client, "PLAIN", b"\0alice\0alice-secret", agent())
        same_xml(
            reply,
            "<stream:error><internal-server-error"
            " xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
        )
        await client.closed()
    assert "a SASL2 success handler failed" in caplog.text
