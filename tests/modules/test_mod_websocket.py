"""XMPP over WebSocket (RFC 7395) and XEP-0156 discovery, over real sockets: handshakes, every
close code and stream error, logins, and the same stream as over TCP."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from lxml import etree
from scramp import ScramClient

from minixmpp.loader import Loader
from minixmpp.testing import TestServer, running_server
from tests.conftest import PASSWORDS
from tests.websocket import CLOSE, NS_FRAMING, NS_STREAM, OPEN, WsClient, text_of
from tests.xmpp import NS_SASL, TIMEOUT, login

MODULES = ["disco", "ping", "websocket"]
ERROR = f"{{{NS_STREAM}}}error"


@pytest.fixture
async def ws_server(tmp_path: Path) -> AsyncIterator[TestServer]:
    async with running_server(tmp_path, modules=MODULES) as srv:
        for name, password in PASSWORDS.items():
            await srv.create_user(name, password)
        yield srv


async def http_get(url: str, **headers: str) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
        return response.status, dict(response.headers), await response.text()


async def test_a_plain_get_says_it_works(ws_server: TestServer) -> None:
    status, headers, body = await http_get(ws_server.http_url + "/xmpp-websocket")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "It works! Now point your WebSocket client to this URL" in body


async def test_the_xmpp_subprotocol_is_required(ws_server: TestServer) -> None:
    for protocols in [(), ("chat",)]:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await WsClient.connect(ws_server.websocket_url, protocols=protocols)
        assert info.value.status == 501


async def test_the_handshake_answers_with_the_xmpp_subprotocol(ws_server: TestServer) -> None:
    client = await WsClient.connect(ws_server.websocket_url, protocols=("chat", "xmpp"))
    assert client.ws.protocol == "xmpp"


async def test_login_over_websocket_and_chat_with_a_tcp_client(ws_server: TestServer) -> None:
    bob, bob_jid = await login(ws_server.c2s_port, ws_server.ca_file, "bob", "bob-secret", "tcp")
    alice = await WsClient.connect(ws_server.websocket_url)
    features = await alice.open()
    mechanisms = [m.text for m in features.iter(f"{{{NS_SASL}}}mechanism")]
    assert "PLAIN" in mechanisms  # loopback counts as secure: SASL is offered
    assert features.find("{urn:ietf:params:xml:ns:xmpp-tls}starttls") is None  # no STARTTLS
    await alice.close()
    alice = await WsClient.connect(ws_server.websocket_url)
    alice_jid = await alice.login("alice", "alice-secret")
    assert alice_jid == "alice@localhost/ws"
    await alice.send(
        f"<message xmlns='jabber:client' to='{bob_jid}' type='chat' id='m1'>"
        "<body>hello over a websocket</body></message>"
    )
    got = await bob.expect("message")
    assert (got.get("from"), got.findtext("body")) == (alice_jid, "hello over a websocket")
    await bob.send(f"<message to='{alice_jid}' type='chat' id='m2'><body>and back</body></message>")
    frame = await alice.frame()
    parsed = etree.fromstring(frame.encode())  # one standalone element per frame
    assert parsed.tag == "{jabber:client}message"
    assert parsed.findtext("{jabber:client}body") == "and back"
    await alice.send(CLOSE)
    assert etree.fromstring((await alice.frame()).encode()).tag == f"{{{NS_FRAMING}}}close"
    closed = await alice.closed()
    assert (closed.code, closed.reason) == (1000, "Stream closed")


async def test_scram_and_a_restart_with_a_new_open(ws_server: TestServer) -> None:
    client = await WsClient.connect(ws_server.websocket_url)
    await client.open()
    scram = ScramClient(["SCRAM-SHA-256"], "carol", "carol-secret")
    first = base64.b64encode(scram.get_client_first().encode()).decode()
    await client.send(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>{first}</auth>")
    challenge = await client.next()
    scram.set_server_first(base64.b64decode(challenge.text or "").decode())
    final = base64.b64encode(scram.get_client_final().encode()).decode()
    await client.send(f"<response xmlns='{NS_SASL}'>{final}</response>")
    success = await client.next()
    assert success.tag == f"{{{NS_SASL}}}success"
    scram.set_server_final(base64.b64decode(success.text or "").decode())
    features = await client.open()  # the restart is a new <open/>
    assert features.find("{urn:ietf:params:xml:ns:xmpp-bind}bind") is not None


async def test_a_binary_frame_closes_with_1003(ws_server: TestServer) -> None:
    client = await WsClient.connect(ws_server.websocket_url)
    await client.ws.send_bytes(OPEN.encode())
    closed = await client.closed()
    assert (closed.code, closed.reason) == (1003, "Only text frames are supported, RFC 7395 3.2")
    assert client.frames == []  # no stream error: the socket just closes


@pytest.mark.parametrize(
    "frame",
    [
        "hello",
        "<message xmlns='jabber:client'><body>cut",
        "<message xmlns='jabber:client'><x:body>undeclared</x:body></message>",
        "<!-- a comment -->",
    ],
)
async def test_a_frame_that_is_not_xml_closes_with_1007(ws_server: TestServer, frame: str) -> None:
    client = await WsClient.connect(ws_server.websocket_url)
    await client.open()
    await client.send(frame)
    error = await client.expect(ERROR)
    assert text_of(error)["condition"] in ("not-well-formed", "restricted-xml")
    assert etree.fromstring((await client.frame()).encode()).tag == f"{{{NS_FRAMING}}}close"
    closed = await client.closed()
    expected = 1007 if text_of(error)["condition"] == "not-well-formed" else 1000
    assert closed.code == expected


async def test_an_oversize_frame_gets_policy_violation_then_1009(tmp_path: Path) -> None:
    async with running_server(tmp_path, modules=MODULES) as srv:
        client = await WsClient.connect(srv.websocket_url)
        await client.open()
        body = "x" * 20_000  # over the 10 000 bytes allowed before authentication
        await client.send(f"<message xmlns='jabber:client'><body>{body}</body></message>")
        error = await client.expect(ERROR)
        assert text_of(error) == {"condition": "policy-violation", "text": "XML stanza is too big"}
        assert error.find("{urn:xmpp:errors}stanza-too-big") is not None
        assert etree.fromstring((await client.frame()).encode()).tag == f"{{{NS_FRAMING}}}close"
        assert (await client.closed()).code == 1009


async def test_a_frame_over_the_buffer_limit_is_refused_unread(tmp_path: Path) -> None:
    options = {"websocket_frame_buffer_limit": 100_000}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        client = await WsClient.connect(srv.websocket_url)
        await client.open()
        await client.send("<message xmlns='jabber:client'><body>" + "y" * 200_000)
        assert (await client.closed()).code == 1009


async def test_starttls_is_refused_over_websocket(ws_server: TestServer) -> None:
    client = await WsClient.connect(ws_server.websocket_url)
    await client.open()
    await client.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    failure = await client.next()
    assert failure.tag == "{urn:ietf:params:xml:ns:xmpp-tls}failure"
    assert etree.fromstring((await client.frame()).encode()).tag == f"{{{NS_FRAMING}}}close"


async def test_an_element_before_open_is_not_well_formed(ws_server: TestServer) -> None:
    client = await WsClient.connect(ws_server.websocket_url)
    await client.send("<presence xmlns='jabber:client'/>")
    frames = [etree.fromstring((await client.frame()).encode()) for _ in range(3)]
    assert [f.tag for f in frames] == [f"{{{NS_FRAMING}}}open", ERROR, f"{{{NS_FRAMING}}}close"]
    assert text_of(frames[1])["condition"] == "not-well-formed"
    assert (await client.closed()).code == 1007


async def test_an_unknown_host_in_open(ws_server: TestServer) -> None:
    client = await WsClient.connect(ws_server.websocket_url)
    await client.send(OPEN.replace("to='localhost'", "to='elsewhere.example'"))
    opened = await client.next()
    assert opened.tag == f"{{{NS_FRAMING}}}open" and opened.get("from") == "elsewhere.example"
    assert text_of(await client.expect(ERROR))["condition"] == "host-unknown"


@pytest.mark.parametrize(
    ("origin", "option", "allowed"),
    [
        ("https://evil.example", None, False),
        ("https://evil.example", ["https://evil.example"], True),
        ("https://evil.example", True, True),
        ("https://friend.example", ["https://evil.example"], False),
    ],
)
async def test_browser_origins(
    tmp_path: Path, origin: str, option: bool | list[str] | None, allowed: bool
) -> None:
    options = {} if option is None else {"cross_domain_websocket": option}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        if allowed:
            client = await WsClient.connect(srv.websocket_url, origin=origin)
            await client.open()
        else:
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await WsClient.connect(srv.websocket_url, origin=origin)
            assert info.value.status == 403
        own = await WsClient.connect(srv.websocket_url, origin=srv.http_url)  # its own pages
        await own.open()


async def test_wss_with_the_servers_certificate(ws_server: TestServer) -> None:
    context = ssl.create_default_context(cafile=str(ws_server.ca_file))
    url = f"wss://localhost:{ws_server.https_port}/xmpp-websocket"
    client = await WsClient.connect(url, ssl_context=context)
    assert await client.login("alice", "alice-secret", "secure") == "alice@localhost/secure"


async def test_discovery_by_host_meta(ws_server: TestServer) -> None:
    wss = f"wss://localhost:{ws_server.https_port}/xmpp-websocket"
    status, headers, body = await http_get(ws_server.http_url + "/.well-known/host-meta")
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Content-Type"].startswith("application/xrd+xml")
    xrd = etree.fromstring(body.encode())
    links = [
        (link.get("rel"), link.get("href"))
        for link in xrd.iter("{http://docs.oasis-open.org/ns/xri/xrd-1.0}Link")
    ]
    rel = "urn:xmpp:alt-connections:websocket"
    assert links == [(rel, wss), (rel, ws_server.websocket_url)]
    status, headers, body = await http_get(ws_server.http_url + "/.well-known/host-meta.json")
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"
    assert json.loads(body) == {
        "links": [{"rel": rel, "href": wss}, {"rel": rel, "href": ws_server.websocket_url}]
    }


async def test_shutdown_closes_websocket_streams_with_system_shutdown(tmp_path: Path) -> None:
    async with running_server(tmp_path, modules=MODULES) as srv:
        await srv.create_user("alice", "pw")
        client = await WsClient.connect(srv.websocket_url)
        await client.login("alice", "pw")
        stopping = asyncio.ensure_future(srv.server.stop(reason="Received SIGTERM"))
        error = await client.expect(ERROR)
        assert text_of(error) == {"condition": "system-shutdown", "text": "Received SIGTERM"}
        assert etree.fromstring((await client.frame()).encode()).tag == f"{{{NS_FRAMING}}}close"
        await client.send(CLOSE)
        assert (await client.closed()).code == 1000
        await asyncio.wait_for(stopping, TIMEOUT)


async def test_a_peer_that_vanishes_ends_its_session(ws_server: TestServer) -> None:
    client = await WsClient.connect(ws_server.websocket_url)
    jid = await client.login("alice", "alice-secret", "gone")
    host = ws_server.server.hosts["localhost"]
    assert host.sessions.get(jid) is not None
    await client.ws.close()  # a close frame without <close/>
    for _ in range(200):  # bounded: 2 s
        if host.sessions.get(jid) is None:
            break
        await asyncio.sleep(0.01)
    assert host.sessions.get(jid) is None
    again = await WsClient.connect(ws_server.websocket_url)
    assert await again.login("alice", "alice-secret", "gone") == jid


async def test_many_frames_keep_their_order(ws_server: TestServer) -> None:
    client = await WsClient.connect(ws_server.websocket_url)
    jid = await client.login("alice", "alice-secret", "self")
    for i in range(200):
        await client.send(
            f"<message xmlns='jabber:client' to='{jid}' id='m{i}'><body>{i}</body></message>"
        )
    ids = [(await client.expect("{jabber:client}message")).get("id") for _ in range(200)]
    assert ids == [f"m{i}" for i in range(200)]


def test_loopback_addresses() -> None:
    websocket = Loader([]).code("websocket")
    assert websocket.loopback("127.0.0.1") and websocket.loopback("::1")
    assert websocket.loopback("127.0.0.2")
    assert not websocket.loopback("192.0.2.1") and not websocket.loopback(None)
    assert not websocket.loopback("unix-socket")


async def test_a_stanza_without_its_namespace_is_refused(ws_server: TestServer) -> None:
    """RFC 7395 §3.3.3: every stanza declares jabber:client; Prosody answers the same."""
    client = await WsClient.connect(ws_server.websocket_url)
    await client.login("alice", "alice-secret")
    await client.send("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    error = await client.expect(ERROR)
    assert text_of(error)["condition"] == "unsupported-stanza-type"
