"""Stream management inline in a SASL2 login (XEP-0198 §7) on the wire: the inline features,
<enable/> in Bind 2's <bind/> (the answer in <bound/>), and <resume/> in <authenticate/>:
<resumed/> in <success/>, no features, no new binding, the missed stanzas; or <failed/> and a
new session bound by Bind 2."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from lxml import etree

from minixmpp.testing import TestServer, running_server
from tests.modules.test_mod_smacks import SM, tags
from tests.modules.test_mod_smacks_resume import chat, drop, send_all, summary, until_r
from tests.sasl2 import MODULES, NS_BIND2, NS_SASL2, agent, bind2, connect, identifier, scram
from tests.xmpp import NS_STANZAS, NS_STREAM, RawClient, login, same_xml, until_pong

SUCCESS = f"{{{NS_SASL2}}}success"
ENABLE = f"<enable xmlns='{SM}' resume='true'/>"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[TestServer]:
    async with running_server(tmp_path, modules=[*MODULES, "smacks"]) as srv:
        await srv.create_user("alice", "alice-secret")
        await srv.create_user("bob", "bob-secret")
        yield srv


async def sasl2_login(server: TestServer, extra: str) -> tuple[RawClient, etree._Element]:
    """alice logs in with SASL2 (``extra`` in <authenticate/>): the client and <success/>."""
    client, _ = await connect(server)
    result = await scram(client, "alice", "alice-secret", extra=agent() + extra)
    assert result.reply.tag == SUCCESS, etree.tostring(result.reply)
    return client, result.reply


async def test_both_inline_features_are_offered(server: TestServer) -> None:
    _, features = await connect(server)
    inline = features.find(f"{{{NS_SASL2}}}authentication/{{{NS_SASL2}}}inline")
    assert inline is not None
    same_xml(inline.find(f"{{{SM}}}sm"), f"<sm xmlns='{SM}'/>")
    offered = [f.get("var") for f in inline.iterfind(f"{{{NS_BIND2}}}bind/*/{{{NS_BIND2}}}feature")]
    assert SM in offered


async def test_bind2_enables_stream_management_inline(server: TestServer) -> None:
    client, success = await sasl2_login(server, bind2(inner=ENABLE))
    enabled = success.find(f"{{{NS_BIND2}}}bound/{{{SM}}}enabled")
    assert enabled is not None, etree.tostring(success)
    same_xml(enabled, f"<enabled xmlns='{SM}' resume='true' max='600'/>", ignore=("id",))
    assert (await client.next()).tag == f"{{{NS_STREAM}}}features"
    assert tags(await until_pong(client)) == []
    await client.send(f"<r xmlns='{SM}'/>")
    assert [el.get("h") for el in await client.drain() if el.tag == f"{{{SM}}}a"] == ["1"]


async def test_a_session_is_resumed_inline(server: TestServer) -> None:
    first, success = await sasl2_login(server, bind2(inner=ENABLE))
    jid = identifier(success)
    previd = success.find(f"{{{NS_BIND2}}}bound/{{{SM}}}enabled").get("id")  # type: ignore[union-attr]
    assert (await first.next()).tag == f"{{{NS_STREAM}}}features"
    bob, _ = await login(server.c2s_port, server.ca_file, "bob", "bob-secret")
    await send_all(bob, chat(jid, "m1"))
    assert (await first.expect("message")).get("id") == "m1"
    session = await drop(server, first, jid)
    await send_all(bob, chat(jid, "m2"))

    # <resume/> with a Bind 2 request beside it, as XEP-0198's example: Bind 2 is skipped
    client, success = await sasl2_login(
        server, f"<resume xmlns='{SM}' previd='{previd}' h='1'/>" + bind2(inner=ENABLE)
    )
    assert identifier(success) == jid  # the old session's full JID
    same_xml(success.find(f"{{{SM}}}resumed"), f"<resumed xmlns='{SM}' h='0' previd='{previd}'/>")
    assert success.find(f"{{{NS_BIND2}}}bound") is None
    # the stream goes on at once: no features, the missed stanza, then the server's <r/>
    assert summary(await until_r(client)) == [("message", "m2", "alice@localhost")]
    assert server.server.hosts["localhost"].sessions.get(jid) is session
    await send_all(bob, chat(jid, "m3"))
    assert (await client.expect("message")).get("id") == "m3"


async def test_a_failed_inline_resumption_binds_a_new_session(server: TestServer) -> None:
    client, success = await sasl2_login(
        server, f"<resume xmlns='{SM}' previd='gone' h='0'/>" + bind2(inner=ENABLE)
    )
    children = [etree.QName(c).localname for c in success]
    assert children.index("failed") < children.index("bound")  # XEP-0198's order
    same_xml(
        success.find(f"{{{SM}}}failed"),
        f"<failed xmlns='{SM}'><item-not-found xmlns='{NS_STANZAS}'/></failed>",
    )
    assert success.find(f"{{{NS_BIND2}}}bound/{{{SM}}}enabled") is not None
    assert identifier(success).startswith("alice@localhost/AwesomeXMPP~")
    assert (await client.next()).tag == f"{{{NS_STREAM}}}features"
