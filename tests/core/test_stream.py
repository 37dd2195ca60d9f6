"""Streams over real sockets: headers, features, bad input, STARTTLS, timeouts, closing."""

from __future__ import annotations

import asyncio
import ssl
import warnings
from pathlib import Path

import pytest

from minixmpp.testing import TestServer, running_server
from tests.xmpp import (
    HEADER,
    NS_SASL,
    NS_TLS,
    Closed,
    RawClient,
    client_context,
    login,
    same_xml,
)


async def assert_still_serving(server: TestServer) -> None:
    client, jid = await login(server.c2s_port, server.ca_file, "carol", "carol-secret")
    assert jid.startswith("carol@localhost/")
    await client.close()


async def test_features_before_tls(server: TestServer) -> None:
    client = await RawClient.connect(server.c2s_port)
    features = await client.open()
    same_xml(
        features,
        "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
        "</stream:features>",
    )
    assert client.header is not None
    assert (client.header.from_, client.header.version, client.header.lang) == (
        "localhost",
        "1.0",
        "en",
    )
    assert client.header.id
    await client.close()


async def test_features_after_tls_and_after_auth(server: TestServer) -> None:
    client = await RawClient.connect(server.c2s_port)
    await client.open()
    features = await client.starttls(server.ca_file)
    mechanisms = [m.text for m in features.iter(f"{{{NS_SASL}}}mechanism")]
    assert mechanisms == [
        "SCRAM-SHA-256-PLUS",
        "SCRAM-SHA-1-PLUS",
        "SCRAM-SHA-256",
        "SCRAM-SHA-1",
        "PLAIN",
    ]
    assert features.find(f"{{{NS_TLS}}}starttls") is None
    bindings = [e.get("type") for e in features.iter("{urn:xmpp:sasl-cb:0}channel-binding")]
    assert bindings == ["tls-server-end-point"]  # TLS 1.3: no tls-unique
    assert (await client.scram("alice", "alice-secret")).tag == f"{{{NS_SASL}}}success"
    features = await client.open()
    same_xml(
        features,
        "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><required/></bind>"
        "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session>"
        "<ver xmlns='urn:xmpp:features:rosterver'/><sub xmlns='urn:xmpp:features:pre-approval'/>"
        "</stream:features>",
    )
    await client.close()


async def test_xml_lang_is_the_default_for_the_clients_stanzas(server: TestServer) -> None:
    # Prosody: the server's header says 'en'; the client's xml:lang becomes the default
    # language stamped on its stanzas, and stays so after the restarts (whose headers omit it).
    client = await RawClient.connect(server.c2s_port)
    await client.open(
        header=HEADER.format(to="localhost").replace("version", "xml:lang='de' version")
    )
    assert client.header is not None and client.header.lang == "en"
    await client.starttls(server.ca_file)
    assert (await client.scram("alice", "alice-secret")).tag.endswith("success")
    await client.open()
    jid = await client.bind("r1")
    await client.send(f"<message to='{jid}' id='m1'><body>hallo</body></message>")
    same_xml(
        await client.expect("message"),
        f"<message to='{jid}' id='m1' from='{jid}' xml:lang='de'><body>hallo</body></message>",
    )
    await client.send(f"<message to='{jid}' id='m2' xml:lang='fr'><body>salut</body></message>")
    assert (await client.expect("message")).get(
        "{http://www.w3.org/XML/1998/namespace}lang"
    ) == "fr"


BAD_INPUT = [
    ("host-unknown", HEADER.format(to="unknown.example")),
    ("host-unknown", HEADER.format(to="bad host")),
    ("improper-addressing", HEADER.replace(" to='{to}'", "")),
    (
        "unsupported-version",
        HEADER.format(to="localhost").replace("version='1.0'", "version='0.9'"),
    ),
    ("unsupported-version", HEADER.format(to="localhost").replace(" version='1.0'", "")),
    ("invalid-namespace", HEADER.format(to="localhost").replace("jabber:client", "jabber:server")),
    (
        "invalid-namespace",
        HEADER.format(to="localhost").replace("etherx.jabber.org", "example.org"),
    ),
    ("invalid-namespace", "<foo/>"),
    ("restricted-xml", "<!DOCTYPE stream:stream>" + HEADER.format(to="localhost")),
    ("restricted-xml", HEADER.format(to="localhost") + "<!-- a comment -->"),
    ("restricted-xml", HEADER.format(to="localhost") + "<?pi instruction?>"),
    ("restricted-xml", HEADER.format(to="localhost") + "<message><body>&xxe;</body></message>"),
    ("not-well-formed", HEADER.format(to="localhost") + "<message><body></message>"),
    ("bad-format", HEADER.format(to="localhost") + "<presence/>text<presence/>"),
    ("unsupported-stanza-type", HEADER.format(to="localhost") + "<foo/>"),
    ("unsupported-stanza-type", HEADER.format(to="localhost") + "<x xmlns='urn:unknown'/>"),
    ("unsupported-encoding", "<?xml version='1.0' encoding='UTF-16'?>"),
]


@pytest.mark.parametrize(("condition", "data"), BAD_INPUT)
async def test_bad_input_closes_the_stream_and_others_carry_on(
    server: TestServer, condition: str, data: str
) -> None:
    client = await RawClient.connect(server.c2s_port)
    await client.send(data)
    got, _text = await client.stream_error()
    assert got == condition
    assert client.header is not None  # the server opened its stream before the error
    await client.close()
    await assert_still_serving(server)


async def test_oversized_stanza(server: TestServer) -> None:
    client = await RawClient.connect(server.c2s_port)
    await client.open()
    await client.send("<message><body>" + "x" * (300 * 1024) + "</body></message>")
    assert (await client.stream_error())[0] == "policy-violation"
    await assert_still_serving(server)


async def test_size_limits_before_and_after_authentication(tmp_path: Path) -> None:
    # Prosody: c2s_unauthed_stanza_size_limit (10000) until SASL succeeds, then
    # c2s_stanza_size_limit; the error carries <stanza-too-big xmlns='urn:xmpp:errors'/>.
    options = {"c2s_stanza_size_limit": 30_000}
    async with running_server(tmp_path, options=options) as srv:
        await srv.create_user("alice", "pw")
        client = await RawClient.connect(srv.c2s_port)
        await client.open()
        await client.send("<message id='small'><body>" + "x" * 8000 + "</body></message>")
        assert (await client.expect("message")).get("type") == "error"  # not authenticated
        await client.send("<message><body>" + "x" * 12_000)
        error = await client.expect("{http://etherx.jabber.org/streams}error")
        same_xml(
            error,
            "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
            "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>XML stanza is too big</text>"
            "<stanza-too-big xmlns='urn:xmpp:errors'/></stream:error>",
        )
        await client.closed()

        client, jid = await login(srv.c2s_port, srv.ca_file, "alice", "pw")
        await client.send(f"<message to='{jid}'><body>" + "x" * 20_000 + "</body></message>")
        assert len((await client.expect("message")).findtext("body") or "") == 20_000
        await client.send(f"<message to='{jid}'><body>" + "x" * 40_000)
        assert (await client.stream_error())[0] == "policy-violation"


async def test_starttls_with_pipelined_data_is_refused(server: TestServer) -> None:
    client = await RawClient.connect(server.c2s_port)
    await client.open()
    await client.send(
        f"<starttls xmlns='{NS_TLS}'/>"
        "<iq type='get' id='injected' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
    )
    failure = await client.next()
    assert failure.tag == f"{{{NS_TLS}}}failure"
    with pytest.raises(Closed):
        await client.next()
    assert b"proceed" not in client.raw and b"injected" not in client.raw
    await assert_still_serving(server)


@pytest.mark.parametrize(
    "tail",
    [
        "<iq type='get' id='x'",
        "hello",
        "<iq type='get' id='x'>",
        "<iq type='get' id='x>",  # a '>' inside an attribute value does not end the tag
    ],
)
async def test_starttls_with_partial_pipelined_data_is_refused(
    server: TestServer, tail: str
) -> None:
    client = await RawClient.connect(server.c2s_port)
    await client.open()
    await client.send(f"<starttls xmlns='{NS_TLS}'/>{tail}")
    assert (await client.next()).tag == f"{{{NS_TLS}}}failure"
    await client.closed()


async def test_plaintext_after_proceed_never_reaches_the_tls_stream(server: TestServer) -> None:
    client = await RawClient.connect(server.c2s_port)
    await client.open()
    await client.send(f"<starttls xmlns='{NS_TLS}'/>")
    await client.expect(f"{{{NS_TLS}}}proceed")
    raw_before = client.raw
    await client.send("<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
    await client.closed()  # not a TLS ClientHello: the handshake fails, the connection goes
    assert client.raw == raw_before
    await assert_still_serving(server)


async def test_starttls_twice_is_refused(server: TestServer) -> None:
    client = await RawClient.connect(server.c2s_port)
    await client.open()
    await client.starttls(server.ca_file)
    await client.send(f"<starttls xmlns='{NS_TLS}'/>")
    assert (await client.next()).tag == f"{{{NS_TLS}}}failure"
    await client.closed()


async def test_direct_tls(server: TestServer) -> None:
    ctx = client_context(server.ca_file)
    ctx.set_alpn_protocols(["xmpp-client"])
    client = await RawClient.connect(server.direct_tls_port, tls=ctx)
    features = await client.open()
    assert client.ssl_object.selected_alpn_protocol() == "xmpp-client"
    assert features.find(f"{{{NS_TLS}}}starttls") is None
    assert features.find(f"{{{NS_SASL}}}mechanisms") is not None
    assert (await client.scram("alice", "alice-secret", "SCRAM-SHA-256")).tag.endswith("success")
    await client.close()


async def test_tls_1_1_is_refused(server: TestServer) -> None:
    ctx = client_context(server.ca_file)
    with warnings.catch_warnings():  # the ssl module rightly deprecates asking for TLS 1.1
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((ssl.SSLError, ConnectionError)):
        client = await RawClient.connect(server.direct_tls_port, tls=ctx)
        await client.open()


async def test_auth_requires_tls(server: TestServer) -> None:
    client = await RawClient.connect(server.c2s_port)
    await client.open()
    await client.send(
        f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>AGFsaWNlAGFsaWNlLXNlY3JldA==</auth>"
    )
    failure = await client.next()
    same_xml(failure, f"<failure xmlns='{NS_SASL}'><encryption-required/></failure>")
    await client.close()


async def test_without_required_encryption_scram_works_in_plaintext(tmp_path: Path) -> None:
    async with running_server(tmp_path, options={"c2s_require_encryption": False}) as srv:
        await srv.create_user("alice", "pw")
        client = await RawClient.connect(srv.c2s_port)
        features = await client.open()
        starttls = features.find(f"{{{NS_TLS}}}starttls")
        assert starttls is not None and len(starttls) == 0  # offered, not required
        mechanisms = [m.text for m in features.iter(f"{{{NS_SASL}}}mechanism")]
        assert mechanisms == ["SCRAM-SHA-256", "SCRAM-SHA-1"]  # never PLAIN in plaintext
        assert (await client.scram("alice", "pw")).tag.endswith("success")
        await client.open()
        assert (await client.bind("r")) == "alice@localhost/r"
        await client.close()


async def test_whitespace_keepalives(server: TestServer) -> None:
    client, _ = await login(server.c2s_port, server.ca_file, "alice", "alice-secret")
    raw = client.raw
    for _ in range(50):
        await client.send(" \n\t ")
    await client.nothing()
    assert client.raw[len(raw) :].startswith(b"<iq ")  # nothing before the round trip's answer
    reply = await client.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")
    assert reply.get("type") == "result"
    await client.close()


async def test_clean_close(server: TestServer) -> None:
    client, _ = await login(server.c2s_port, server.ca_file, "alice", "alice-secret")
    await client.send("</stream:stream>")
    with pytest.raises(Closed):
        await client.next()
    assert client.stream_closed
    await client.closed()


async def test_unauthenticated_timeout(tmp_path: Path) -> None:
    async with running_server(tmp_path, options={"c2s_timeout": 1}) as srv:
        client = await RawClient.connect(srv.c2s_port)
        await client.open()
        condition, _ = await client.stream_error(timeout=5)
        assert condition == "connection-timeout"


async def test_idle_timeout(tmp_path: Path) -> None:
    async with running_server(tmp_path, options={"c2s_idle_timeout": 1}) as srv:
        await srv.create_user("alice", "pw")
        client, _ = await login(srv.c2s_port, srv.ca_file, "alice", "pw")
        for _ in range(3):  # activity keeps it open
            await asyncio.sleep(0.4)
            await client.send(" ")
        condition, _ = await client.stream_error(timeout=5)
        assert condition == "connection-timeout"


async def test_a_client_that_stops_reading_is_dropped(server: TestServer) -> None:
    slow, slow_jid = await login(
        server.c2s_port, server.ca_file, "bob", "bob-secret", presence=True
    )
    slow.writer.transport.pause_reading()  # never reads again
    fast, _ = await login(server.c2s_port, server.ca_file, "alice", "alice-secret")
    body = "y" * 60_000
    host = server.server.hosts["localhost"]
    for i in range(300):  # 18 MB: more than the server buffers for one client
        await fast.send(f"<message to='{slow_jid}' id='m{i}'><body>{body}</body></message>")
        if host.sessions.get(slow_jid) is None:
            break
        await asyncio.sleep(0)
    for _ in range(100):
        if host.sessions.get(slow_jid) is None:
            break
        await asyncio.sleep(0.05)
    assert host.sessions.get(slow_jid) is None
    reply = await fast.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost", id="still-here")
    assert reply.get("type") == "result"
    await fast.close()
    await slow.close()
