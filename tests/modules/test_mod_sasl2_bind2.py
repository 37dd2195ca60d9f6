"""Bind 2 (XEP-0386) inside SASL2 on the wire: the inline feature, the server-chosen resource
(Prosody's tag~hash of the user agent), <bound/>, carbons and CSI enabled inline, a refused
bind, and nothing reaching the client before <success/> and the features."""

from __future__ import annotations

import base64
import hashlib
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from lxml import etree

from minixmpp.testing import TestServer, running_server
from tests.sasl2 import (
    MODULES,
    NS_BIND2,
    NS_SASL2,
    UA_ID,
    agent,
    bind2,
    condition,
    connect,
    identifier,
    scram,
)
from tests.xmpp import NS_BIND, NS_STREAM, RawClient, login, same_xml

SUCCESS = f"{{{NS_SASL2}}}success"
FEATURES = f"{{{NS_STREAM}}}features"
OTHER_UA = "0b7a6a58-9e2c-4a8c-a5a4-2a7b3b2c0f11"


def stable(tag: str, ua_id: str = UA_ID) -> str:
    """Prosody's mod_sasl2_bind2 resource for a tag and a user-agent id."""
    digest = hashlib.sha1(ua_id.encode()).digest()[:9]
    return f"{tag}~{base64.b64encode(digest).decode()}"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[TestServer]:
    async with running_server(tmp_path, modules=MODULES) as srv:
        await srv.create_user("alice", "alice-secret")
        await srv.create_user("bob", "bob-secret")
        yield srv


async def bind2_login(
    server: TestServer, inner: str = "", *, ua: str | None = UA_ID, tag: str | None = "Awesome"
) -> tuple[RawClient, etree._Element]:
    """A SASL2 + Bind 2 login of alice; the client (features read) and the <success/>."""
    client, _ = await connect(server)
    result = await scram(client, "alice", "alice-secret", extra=agent(ua) + bind2(tag, inner))
    assert result.reply.tag == SUCCESS, etree.tostring(result.reply)
    features = await client.next()
    assert features.tag == FEATURES
    return client, result.reply


async def test_the_inline_feature_lists_what_can_be_enabled(server: TestServer) -> None:
    _, features = await connect(server)
    bind = features.find(f"{{{NS_SASL2}}}authentication/{{{NS_SASL2}}}inline/{{{NS_BIND2}}}bind")
    assert bind is not None
    same_xml(
        bind,
        f"<bind xmlns='{NS_BIND2}'><inline><feature var='urn:xmpp:carbons:2'/>"
        "<feature var='urn:xmpp:csi:0'/></inline></bind>",
    )


async def test_bind_gives_a_stable_resource_from_the_user_agent(server: TestServer) -> None:
    client, success = await bind2_login(server)
    jid = f"alice@localhost/{stable('Awesome')}"
    assert identifier(success) == jid
    assert success.find(f"{{{NS_BIND2}}}bound") is not None
    # bound already: no RFC 6120 binding offered, stanzas are routed at once
    pong = await client.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")
    assert (pong.get("type"), pong.get("to")) == ("result", jid)

    # The same installation again: the same resource, and its old session is replaced.
    again, success = await bind2_login(server)
    assert identifier(success) == jid
    assert await client.stream_error() == ("conflict", "Replaced by new connection")
    # Another installation of the same client gets its own resource.
    _, success = await bind2_login(server, ua=OTHER_UA)
    assert identifier(success) == f"alice@localhost/{stable('Awesome', OTHER_UA)}"
    await again.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")  # still online


async def test_features_after_bind2_offer_no_legacy_binding(server: TestServer) -> None:
    client, _ = await connect(server)
    await scram(client, "alice", "alice-secret", extra=agent() + bind2())
    features = await client.next()
    assert features.tag == FEATURES
    assert features.find(f"{{{NS_BIND}}}bind") is None
    assert features.find("{urn:xmpp:csi:0}csi") is not None


@pytest.mark.parametrize(
    ("ua", "tag"),
    [(None, "Awesome"), (UA_ID, None), (UA_ID, "x" * 1100)],
    ids=["tag-without-agent-id", "no-tag", "tag-too-long"],
)
async def test_random_resources_otherwise(
    server: TestServer, ua: str | None, tag: str | None
) -> None:
    _, first = await bind2_login(server, ua=ua, tag=tag)
    _, second = await bind2_login(server, ua=ua, tag=tag)
    resources = [identifier(s).partition("/")[2] for s in (first, second)]
    assert resources[0] != resources[1]
    assert all(r.startswith("Awesome~") if tag == "Awesome" else "~" not in r for r in resources)


async def test_a_refused_bind_says_why_and_leaves_rfc6120_binding(tmp_path: Path) -> None:
    async with running_server(tmp_path, modules=MODULES, options={"max_resources": 1}) as srv:
        await srv.create_user("alice", "alice-secret")
        await login(srv.c2s_port, srv.ca_file, "alice", "alice-secret", "desk")
        client, _ = await connect(srv)
        result = await scram(client, "alice", "alice-secret", extra=agent() + bind2())
        assert identifier(result.reply) == "alice@localhost"
        failed = result.reply.find(f"{{{NS_BIND2}}}failed")
        assert failed is not None
        same_xml(
            failed,
            f"<failed xmlns='{NS_BIND2}'><error type='wait'>"
            "<resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
            "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>"
            "Resource limit reached; only 1 resources allowed</text></error></failed>",
        )
        assert result.reply.find(f"{{{NS_BIND2}}}bound") is None
        features = await client.next()
        assert features.find(f"{{{NS_BIND}}}bind") is not None


async def test_a_failed_authentication_binds_nothing(server: TestServer) -> None:
    client, _ = await connect(server)
    result = await scram(client, "alice", "wrong", extra=agent() + bind2())
    assert condition(result.reply) == "not-authorized"
    assert server.server.hosts["localhost"].sessions.of_user("alice") == []


async def test_carbons_enabled_inline(server: TestServer) -> None:
    phone, _ = await bind2_login(server, "<enable xmlns='urn:xmpp:carbons:2'/>")
    plain, _ = await bind2_login(server, ua=OTHER_UA)  # no carbons for this one
    desk, _ = await login(server.c2s_port, server.ca_file, "alice", "alice-secret", "desk")
    bob, bob_jid = await login(server.c2s_port, server.ca_file, "bob", "bob-secret", "r")
    await desk.send(f"<message to='{bob_jid}' type='chat' id='m1'><body>hi bob</body></message>")
    await bob.expect("message")
    carbon = await phone.expect("message")
    sent = carbon.find("{urn:xmpp:carbons:2}sent")
    assert sent is not None
    assert carbon.findtext(".//{jabber:client}body") == "hi bob"
    # the session that did not ask gets nothing: a ping proves all before it was sent
    await plain.send("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert (await plain.next()).tag == "iq"


async def test_csi_inactive_inline(server: TestServer) -> None:
    phone, success = await bind2_login(server, "<inactive xmlns='urn:xmpp:csi:0'/>")
    bob, _ = await login(server.c2s_port, server.ca_file, "bob", "bob-secret", "r")
    composing = "<composing xmlns='http://jabber.org/protocol/chatstates'/>"
    await bob.send(f"<message to='{identifier(success)}' type='chat'>{composing}</message>")
    await bob.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")  # the server routed it
    await phone.send("<active xmlns='urn:xmpp:csi:0'/>")
    held = await phone.expect("message")
    assert held.find("{http://jabber.org/protocol/chatstates}composing") is not None
    # stamped when the server held it: a chat state sent at once never has a <delay/>
    assert held.find("{urn:xmpp:delay}delay") is not None


GREETER = """
from minixmpp.events import RESOURCE_BIND, SessionEvent
from minixmpp.xml import stanza as st


def load(module):
    @module.hook(RESOURCE_BIND)
    async def greet(event: SessionEvent) -> None:
        message = st.message(to=event.session.jid.full, from_=module.host, type="headline")
        st.sub(message, "body", text="welcome")
        event.session.send(message)
"""


async def test_nothing_reaches_the_client_before_success_and_features(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "mod_greeter.py").write_text(textwrap.dedent(GREETER))
    options = {"plugin_paths": [str(plugins)]}
    async with running_server(tmp_path, modules=[*MODULES, "greeter"], options=options) as srv:
        await srv.create_user("alice", "alice-secret")
        client, _ = await connect(srv)
        result = await scram(client, "alice", "alice-secret", extra=agent() + bind2())
        assert result.reply.tag == SUCCESS  # sent during the bind, it did not come first
        assert (await client.next()).tag == FEATURES
        welcome = await client.next()
        assert (welcome.tag, welcome.findtext("body")) == ("message", "welcome")


async def test_the_archives_metadata_in_bound(tmp_path: Path) -> None:
    """XEP-0386 §3.2: with a message archive (mod_mam), <bound/> says where it stands."""
    async with running_server(tmp_path, modules=[*MODULES, "mam"]) as srv:
        await srv.create_user("alice", "alice-secret")
        await srv.create_user("bob", "bob-secret")
        _, success = await bind2_login(srv)
        same_xml(
            success.find(f"{{{NS_BIND2}}}bound"),
            f"<bound xmlns='{NS_BIND2}'><metadata xmlns='urn:xmpp:mam:2'/></bound>",
        )
        bob, _ = await login(srv.c2s_port, srv.ca_file, "bob", "bob-secret", "r")
        for n in (1, 2):
            await bob.send(f"<message to='alice@localhost' type='chat'><body>{n}</body></message>")
        await bob.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")  # both archived
        client, success = await bind2_login(srv, ua=OTHER_UA)
        meta = success.find(f"{{{NS_BIND2}}}bound/{{urn:xmpp:mam:2}}metadata")
        assert meta is not None
        start, end = meta.find("{urn:xmpp:mam:2}start"), meta.find("{urn:xmpp:mam:2}end")
        assert start is not None and end is not None
        assert start.get("id") != end.get("id")
        reply = await client.iq("<metadata xmlns='urn:xmpp:mam:2'/>")
        same_xml(reply[0], meta)  # what the IQ says
