"""Stream Management (XEP-0198) over real sockets, on the wire: the feature, enabling, counting
both ways with the 32-bit wrap, when the server asks for acknowledgements, and every error.

(Resumption, hibernation and what becomes of unacknowledged stanzas: test_mod_smacks_resume.py.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from minixmpp.testing import TestServer, running_server
from tests.conftest import PASSWORDS
from tests.xmpp import (
    NS_SASL,
    NS_STANZAS,
    NS_STREAM,
    NS_STREAMS,
    RawClient,
    login,
    same_xml,
    until_pong,
)

SM = "urn:xmpp:sm:3"
MODULES = ["disco", "ping", "presence", "roster", "carbons", "csi", "smacks"]


@asynccontextmanager
async def start(tmp_path: Path, **options: Any) -> AsyncIterator[TestServer]:
    """The server with the modules stream management meets, and the three users. (A context
    manager, not a generator: a failing test must still stop its server.)"""
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        for name, password in PASSWORDS.items():
            await srv.create_user(name, password)
        yield srv


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[TestServer]:
    async with start(tmp_path) as srv:
        yield srv


async def authenticated(srv: TestServer, user: str) -> tuple[RawClient, etree._Element]:
    """A new connection, STARTTLS and SCRAM done: (client, the features after SASL)."""
    client = await RawClient.connect(srv.c2s_port)
    await client.open()
    await client.starttls(srv.ca_file)
    assert (await client.scram(user, PASSWORDS[user])).tag == f"{{{NS_SASL}}}success"
    return client, await client.open()


async def enabled(
    srv: TestServer, user: str, resource: str, resume: bool = True
) -> tuple[RawClient, str, etree._Element]:
    """Logged in, bound and stream management enabled: (client, full JID, <enabled/>)."""
    client, jid = await login(srv.c2s_port, srv.ca_file, user, PASSWORDS[user], resource)
    attribute = " resume='true'" if resume else ""
    await client.send(f"<enable xmlns='{SM}'{attribute}/>")
    reply = await client.next()
    assert reply.tag == f"{{{SM}}}enabled", etree.tostring(reply)
    return client, jid, reply


async def answer(client: RawClient) -> int:
    """Ask for the server's count: the h of its <a/>."""
    await client.send(f"<r xmlns='{SM}'/>")
    a = await client.expect(f"{{{SM}}}a")
    return int(a.get("h", "-1"))


def tags(elements: list[etree._Element]) -> list[str]:
    return [etree.QName(el).localname for el in elements]


def sm_state(srv: TestServer, jid: str) -> Any:
    session = srv.server.hosts["localhost"].sessions.get(jid)
    assert session is not None
    return session.data["smacks"]


# -- the feature and enabling ------------------------------------------------------------------


async def test_the_feature_is_offered_once_authenticated(server: TestServer) -> None:
    client = await RawClient.connect(server.c2s_port)
    features = await client.open()
    assert features.find(f"{{{SM}}}sm") is None
    features = await client.starttls(server.ca_file)
    assert features.find(f"{{{SM}}}sm") is None
    assert (await client.scram("alice", PASSWORDS["alice"])).tag == f"{{{NS_SASL}}}success"
    features = await client.open()
    same_xml(features.find(f"{{{SM}}}sm"), f"<sm xmlns='{SM}'/>")  # XEP-0198 1.6.3: no children


async def test_enable_answers_enabled_with_a_resumption_id_when_asked(server: TestServer) -> None:
    _, _, plain = await enabled(server, "alice", "a", resume=False)
    same_xml(plain, f"<enabled xmlns='{SM}'/>")
    _, _, resumable = await enabled(server, "alice", "b", resume=True)
    same_xml(resumable, f"<enabled xmlns='{SM}' resume='true' max='600'/>", ignore=("id",))
    assert len(resumable.get("id", "")) >= 16
    client, _ = await login(server.c2s_port, server.ca_file, "bob", PASSWORDS["bob"], "c")
    await client.send(f"<enable xmlns='{SM}' resume='1'/>")  # XEP's other boolean form
    reply = await client.next()
    assert reply.get("resume") == "true" and reply.get("id")


async def test_enable_before_binding_fails_and_the_stream_goes_on(server: TestServer) -> None:
    client, _ = await authenticated(server, "alice")
    await client.send(f"<enable xmlns='{SM}' resume='true'/>")
    same_xml(
        await client.next(),
        f"<failed xmlns='{SM}'><unexpected-request xmlns='{NS_STANZAS}'/></failed>",
    )
    assert await client.bind("r") == "alice@localhost/r"
    await client.send(f"<enable xmlns='{SM}'/>")
    assert (await client.next()).tag == f"{{{SM}}}enabled"


async def test_enable_before_authentication_is_not_available(server: TestServer) -> None:
    client = await RawClient.connect(server.c2s_port)
    await client.open()
    await client.starttls(server.ca_file)
    await client.send(f"<enable xmlns='{SM}'/>")
    same_xml(
        await client.next(),
        f"<failed xmlns='{SM}'><service-unavailable xmlns='{NS_STANZAS}'/></failed>",
    )


async def test_enabling_twice_fails(server: TestServer) -> None:
    client, _, _ = await enabled(server, "alice", "r")
    await client.send(f"<enable xmlns='{SM}'/>")
    same_xml(
        await client.next(),
        f"<failed xmlns='{SM}'><unexpected-request xmlns='{NS_STANZAS}'/></failed>",
    )
    assert await answer(client) == 0  # still enabled, the count untouched


@pytest.mark.parametrize("element", ["r", "a h='0'"])
async def test_acks_without_stream_management_are_unsupported(
    server: TestServer, element: str
) -> None:
    client, _ = await login(server.c2s_port, server.ca_file, "alice", PASSWORDS["alice"])
    await client.send(f"<{element} xmlns='{SM}'/>")
    assert await client.stream_error() == ("unsupported-stanza-type", None)


# -- counting ---------------------------------------------------------------------------------


async def test_the_server_counts_what_it_handled(server: TestServer) -> None:
    client, jid, _ = await enabled(server, "alice", "r")
    assert await answer(client) == 0
    await client.send(f"<message to='{jid}' type='chat' id='m1'><body>me</body></message>")
    await client.send("<presence/>")
    await until_pong(client)
    assert await answer(client) == 3  # message, presence, iq; not <r/> nor <a/>


async def test_the_server_asks_after_each_unacknowledged_stanza_by_default(
    server: TestServer,
) -> None:
    """Prosody's default (smacks_max_unacked_stanzas = 0): an <r/> right behind the first
    unacknowledged stanza, then none until the client answers."""
    client, _, _ = await enabled(server, "alice", "r")
    assert tags(await until_pong(client, "p1")) == []
    # right behind p1's answer, none behind p2's
    assert tags(await until_pong(client, "p2")) == ["r"]
    await client.send(f"<a xmlns='{SM}' h='2'/>")
    assert tags(await until_pong(client, "p3")) == []
    assert tags(await until_pong(client, "p4")) == ["r"]  # behind p3's answer


async def test_the_server_asks_beyond_smacks_max_unacked_stanzas(tmp_path: Path) -> None:
    async with start(tmp_path, smacks_max_unacked_stanzas=2) as srv:
        client, _, _ = await enabled(srv, "alice", "r")
        seen = [tags(await until_pong(client, f"p{i}")) for i in range(4)]
        assert seen == [[], [], [], ["r"]]  # behind the third answer (3 > 2)
        await client.send(f"<a xmlns='{SM}' h='3'/>")
        await until_pong(client, "p5")  # 2 unacknowledged: not more than 2
        await client.send(f"<r xmlns='{SM}'/>")
        assert tags([await client.next()]) == ["a"]


async def test_an_inactive_client_is_asked_less_often(tmp_path: Path) -> None:
    """While the client says it is inactive (XEP-0352) the limit is
    smacks_max_inactive_unacked_stanzas; once active again, its <r/> is answered with an
    <a/> and the server's own <r/> (Prosody's piggyback)."""
    async with start(tmp_path, smacks_max_inactive_unacked_stanzas=3) as srv:
        client, _, _ = await enabled(srv, "alice", "r")
        await client.send("<inactive xmlns='urn:xmpp:csi:0'/>")
        seen = [tags(await until_pong(client, f"p{i}")) for i in range(5)]  # IQs are urgent
        assert seen == [[], [], [], [], ["r"]]  # behind the fourth answer (4 > 3)
        await client.send(f"<a xmlns='{SM}' h='4'/>")
        await until_pong(client, "p5")  # 2 unacknowledged: fine while inactive
        await client.send("<active xmlns='urn:xmpp:csi:0'/>")
        await client.send(f"<r xmlns='{SM}'/>")
        assert tags([await client.next(), await client.next()]) == ["a", "r"]


async def test_counters_wrap_at_2_to_the_32(server: TestServer) -> None:
    client, jid, _ = await enabled(server, "alice", "r")
    state = sm_state(server, jid)
    state.inbound = 2**32 - 2
    await client.send(f"<message to='{jid}' type='chat' id='m1'><body>me</body></message>")
    await until_pong(client, "p1")
    await until_pong(client, "p2")
    assert await answer(client) == 1  # 2^32 - 2 + 3, wrapped
    # the server's count: 2^32 - 1 acknowledged so far, then the answers and the message
    state.acked = 2**32 - 1
    state.queue.clear()
    state.awaiting_ack = False
    await until_pong(client, "p3")
    await client.send(f"<a xmlns='{SM}' h='0'/>")  # 2^32 - 1 + 1, wrapped: accepted
    await until_pong(client, "p4")
    await client.send(f"<a xmlns='{SM}' h='1'/>")
    await until_pong(client, "p5")
    assert state.acked == 1 and len(state.queue) == 1
    await client.send(f"<a xmlns='{SM}' h='4294967295'/>")  # behind: 2^32 - 1 was before 0
    assert await client.stream_error() == (
        "undefined-condition",
        "Client acknowledged less stanzas than already acknowledged",
    )


# -- errors -----------------------------------------------------------------------------------


async def test_acknowledging_more_than_was_sent_ends_the_stream(server: TestServer) -> None:
    client, _, _ = await enabled(server, "alice", "r")
    await until_pong(client, "p1")
    await until_pong(client, "p2")
    await client.send(f"<a xmlns='{SM}' h='5'/>")
    error = await client.expect(f"{{{NS_STREAM}}}error")
    same_xml(
        error,
        f"<stream:error><undefined-condition xmlns='{NS_STREAMS}'/>"
        f"<text xmlns='{NS_STREAMS}'>Client acknowledged more stanzas than sent by server</text>"
        f"<handled-count-too-high xmlns='{SM}' h='5' send-count='2'/></stream:error>",
    )
    await client.closed()


async def test_acknowledging_less_than_before_ends_the_stream(server: TestServer) -> None:
    client, _, _ = await enabled(server, "alice", "r")
    await until_pong(client, "p1")
    await until_pong(client, "p2")
    await client.send(f"<a xmlns='{SM}' h='2'/>")
    await client.send(f"<a xmlns='{SM}' h='1'/>")
    assert await client.stream_error() == (
        "undefined-condition",
        "Client acknowledged less stanzas than already acknowledged",
    )


@pytest.mark.parametrize("h", ["", "h=''", "h='x'", "h='-1'", "h='+1'", "h='4294967296'"])
async def test_an_ack_without_a_valid_count_is_invalid_xml(server: TestServer, h: str) -> None:
    client, _, _ = await enabled(server, "alice", "r")
    await client.send(f"<a xmlns='{SM}' {h}/>")
    assert await client.stream_error() == ("invalid-xml", "Missing or invalid 'h' attribute")


# -- acks on a timer: the idle timeout -------------------------------------------------------


async def test_a_silent_client_is_asked_then_dropped_and_hibernates(tmp_path: Path) -> None:
    async with start(tmp_path, c2s_idle_timeout=60) as srv:
        srv.clock.freeze()
        client, jid, _ = await enabled(srv, "alice", "r")
        srv.clock.advance(61)  # silent for a period (the sweeper looks every few seconds)
        assert tags([await client.next()]) == ["r"]  # asked; the stream stays
        srv.clock.advance(61)  # no answer for another period: dropped, no stream error
        await client.closed()
        assert not client.stream_closed
        session = srv.server.hosts["localhost"].sessions.get(jid)
        assert session is not None and session.state == "hibernating"


async def test_an_answering_client_keeps_its_stream(tmp_path: Path) -> None:
    # only the idle timeout asks here
    async with start(tmp_path, c2s_idle_timeout=60, smacks_max_unacked_stanzas=100) as srv:
        srv.clock.freeze()
        client, _, _ = await enabled(srv, "alice", "r")
        srv.clock.advance(61)
        assert tags([await client.next()]) == ["r"]
        await client.send(f"<a xmlns='{SM}' h='0'/>")
        assert tags(await until_pong(client)) == []  # the server has read the answer
        srv.clock.advance(61)
        assert tags([await client.next()]) == ["r"]  # asked again, not dropped
        await client.send(f"<a xmlns='{SM}' h='1'/>")
        assert tags(await until_pong(client, "p2")) == []


async def test_without_stream_management_the_idle_timeout_closes(tmp_path: Path) -> None:
    async with start(tmp_path, c2s_idle_timeout=60) as srv:
        srv.clock.freeze()
        client, _ = await login(srv.c2s_port, srv.ca_file, "alice", PASSWORDS["alice"])
        srv.clock.advance(61)
        assert await client.stream_error() == ("connection-timeout", "Idle for too long")
