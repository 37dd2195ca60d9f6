"""Fault injection (server.faults, server.restart) over real sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from lxml import etree

from minixmpp.testing import XmppServer
from tests.xmpp import NS_STREAM, NS_STREAMS, login, stanza_error

PING = "<iq type='get' id='{id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
ROSTER_SET = "<query xmlns='jabber:iq:roster'><item jid='bob@localhost'/></query>"


@pytest.fixture
async def server() -> AsyncIterator[XmppServer]:
    async with XmppServer(modules=["ping"], users={"alice": "pw", "bob": "pw"}) as srv:
        yield srv


async def test_close_streams_with_a_chosen_error(server: XmppServer) -> None:
    desk, _ = await login(server.c2s_port, server.ca_file, "alice", "pw", "desk")
    phone, _ = await login(server.c2s_port, server.ca_file, "alice", "pw", "phone")
    bob, _ = await login(server.c2s_port, server.ca_file, "bob", "pw")
    assert server.faults.close_streams("alice@localhost/desk", "conflict", "Replaced") == 1
    assert await desk.stream_error() == ("conflict", "Replaced")
    assert server.faults.close_streams("alice@localhost") == 1  # the phone is left
    assert (await phone.stream_error())[0] == "reset"
    assert (await bob.iq("<ping xmlns='urn:xmpp:ping'/>", type="get", id="b", to="localhost")).get(
        "type"
    ) == "result"


async def test_see_other_host(server: XmppServer) -> None:
    client, _ = await login(server.c2s_port, server.ca_file, "alice", "pw")
    server.faults.see_other_host("alice@localhost", "[::1]:5999")
    error = await client.expect(f"{{{NS_STREAM}}}error")
    assert error.findtext(f"{{{NS_STREAMS}}}see-other-host") == "[::1]:5999"
    await client.closed()


async def test_drop_and_delay_replies(server: XmppServer) -> None:
    client, jid = await login(server.c2s_port, server.ca_file, "alice", "pw")
    server.faults.drop_reply("p1")
    await client.send(PING.format(id="p1"))
    await client.send(PING.format(id="p2"))
    assert (await client.expect("iq")).get("id") == "p2"  # p1's answer, due first, is gone

    server.clock.freeze()
    server.faults.delay_reply("d1", 30, jid=jid)
    await client.send(PING.format(id="d1"))
    await client.send(PING.format(id="d2"))
    assert (await client.expect("iq")).get("id") == "d2"
    server.clock.advance(30)
    assert (await client.expect("iq")).get("id") == "d1"  # held until the clock got there


async def test_the_next_storage_write_fails(server: XmppServer) -> None:
    client, _ = await login(server.c2s_port, server.ca_file, "alice", "pw")
    server.faults.fail_next_write()
    reply = await client.iq(ROSTER_SET, type="set", id="r1")
    assert stanza_error(reply)[:2] == ("wait", "internal-server-error")
    reply = await client.iq(ROSTER_SET, type="set", id="r2")
    assert reply.get("type") == "result", etree.tostring(reply)


async def test_restart_keeps_data_and_ports(server: XmppServer) -> None:
    await server.create_user("carol", "pw")
    port = server.c2s_port
    client, _ = await login(port, server.ca_file, "carol", "pw")
    await server.restart()
    assert (await client.stream_error())[0] == "system-shutdown"
    assert server.c2s_port == port
    client, _ = await login(port, server.ca_file, "carol", "pw")
    await server.restart(kill=True)
    with pytest.raises(AssertionError, match="Closed"):
        await client.expect(f"{{{NS_STREAM}}}error")  # no goodbye: the socket just closes
    client, _ = await login(port, server.ca_file, "carol", "pw")
