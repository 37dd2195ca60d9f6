"""The thin I/O edge (net.py) under real sockets: big writes, handshakes, hibernation."""

from __future__ import annotations

import asyncio
import gc
import socket
from pathlib import Path

import pytest

from minixmpp import net
from minixmpp.connection import Connection
from minixmpp.testing import TestServer, running_server
from minixmpp.xml.parser import StreamParser
from tests.xmpp import TIMEOUT, RawClient, client_context, login


def connection_of(server: TestServer, jid: str) -> Connection:
    """The connection under a bound session (white-box: the parser's memory is the point)."""
    for conn in server.server.connections:
        if conn.session.jid.full == jid:
            return conn
    raise AssertionError(f"no connection for {jid}")


async def test_large_stanzas_arrive_intact_through_buffered_tls_writes(server: TestServer) -> None:
    # 40 stanzas of ~200 KB to ourselves, sent before reading: the server's TLS writes block,
    # buffer and retry (OpenSSL's retry rule) while we are not reading.
    client, jid = await login(server.c2s_port, server.ca_file, "alice", "alice-secret", "big")
    bodies = [chr(ord("a") + i % 26) * 200_000 for i in range(40)]
    for i, body in enumerate(bodies):
        await client.send(f"<message to='{jid}' id='m{i}'><body>{body}</body></message>")
    for i, body in enumerate(bodies):
        message = await client.expect("message")
        assert message.get("id") == f"m{i}"
        assert message.findtext("body") == body


async def test_a_silent_direct_tls_connection_times_out(tmp_path: Path) -> None:
    options = {"network_settings": {"ssl_handshake_timeout": 0.3}}
    async with running_server(tmp_path, options=options) as srv:
        sock = socket.create_connection(("127.0.0.1", srv.direct_tls_port))
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 100), 5)  # closed by the server
            assert data == b""
        finally:
            sock.close()


async def test_garbage_on_the_direct_tls_port(server: TestServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.direct_tls_port)
    writer.write(b"<stream:stream xmlns='jabber:client' to='localhost'>")
    try:
        data = await asyncio.wait_for(reader.read(100), 5)
    except ConnectionResetError:
        data = b""
    assert b"<" not in data  # a TLS alert at most, never XML
    writer.close()
    await login(server.c2s_port, server.ca_file, "bob", "bob-secret")  # still serving


async def test_idle_streams_free_their_parser_and_wake_up(server: TestServer) -> None:
    client, jid = await login(server.c2s_port, server.ca_file, "alice", "alice-secret", "idle")
    conn = connection_of(server, jid)
    parser = conn.stream.framing.parser
    assert parser._parser is not None
    assert conn.hibernate()
    assert parser.hibernating and parser._parser is None
    reply = await client.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")
    assert reply.get("type") == "result"
    assert not parser.hibernating


async def test_the_sweeper_hibernates_idle_streams(tmp_path: Path) -> None:
    async with running_server(tmp_path) as srv:
        srv.server.hibernate_after = 0.2
        await srv.create_user("alice", "pw")
        client, jid = await login(srv.c2s_port, srv.ca_file, "alice", "pw", "r")
        parser = connection_of(srv, jid).stream.framing.parser
        for _ in range(100):  # the sweep period follows the shortest limit: 0.05 s here
            if parser.hibernating:
                break
            await asyncio.sleep(0.05)
        assert parser.hibernating
        assert (await client.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")).get(
            "type"
        ) == "result"


def test_a_released_parser_does_not_wait_for_the_cyclic_gc() -> None:
    header = (
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
        b" to='localhost' version='1.0'>"
    )

    def parsers() -> int:
        return sum(1 for o in gc.get_objects() if type(o).__name__ == "XMLPullParser")

    gc.collect()
    before = parsers()
    gc.disable()
    try:
        parser = StreamParser()
        parser.feed(header + b"<presence/>")
        parser.reset()  # a stream restart
        parser.feed(header)
        parser.hibernate()
        parser.feed(b"<presence/>")  # wakes it
        parser.release()
        assert parsers() == before
    finally:
        gc.enable()


async def test_tls_1_2_clients_are_served(server: TestServer) -> None:
    import ssl

    client = await RawClient.connect(
        server.direct_tls_port, tls=client_context(server.ca_file, maximum=ssl.TLSVersion.TLSv1_2)
    )
    await client.open()
    assert client.ssl_object.version() == "TLSv1.2"
    assert (await client.scram("alice", "alice-secret")).tag.endswith("success")


async def test_a_closed_connection_is_freed_without_the_cyclic_gc(server: TestServer) -> None:
    """The server tunes the collector to run rarely; a connection that waited for it would
    pile up under login churn (the soak benchmark's finding)."""
    import weakref

    refs = []
    gc.collect()
    gc.disable()
    try:
        for i in range(5):
            client, jid = await login(
                server.c2s_port, server.ca_file, "alice", "alice-secret", f"r{i}"
            )
            conn = connection_of(server, jid)
            refs.append((weakref.ref(conn), weakref.ref(conn.session)))
            del conn
            await client.send("</stream:stream>")
            await client.closed()
            await client.close()
        for _ in range(1000):  # bounded (10 s: a loaded CI machine): until every close is done
            if not server.server.connections:
                break
            await asyncio.sleep(0.01)
        assert [(c() is None, s() is None) for c, s in refs] == [(True, True)] * 5
    finally:
        gc.enable()


# -- closing lingers: the client reads our last words, even with its input unread ----------------


async def ping_round_trips(client: RawClient, count: int = 3) -> None:
    """IQ round trips on another connection: the server has handled (and closed) whatever the
    other clients sent before."""
    for i in range(count):
        reply = await client.iq("<ping xmlns='urn:xmpp:ping'/>", id=f"rt{i}", to="localhost")
        assert reply.get("type") == "result"


@pytest.mark.parametrize("tls", [False, True], ids=["plaintext", "starttls"])
async def test_an_oversized_stanza_before_login_always_gets_its_stream_error(
    server: TestServer, tls: bool
) -> None:
    # The server stops reading at the size limit; the rest of the stanza is still on its way.
    # Closing a socket with unread input makes the kernel send a reset, and the client's stack
    # (asyncio here) reports the reset instead of the stream error it had already received.
    # Other clients' round trips between the send and the read give the server the time to
    # close: on the code before the lingering close, every try lost its error.
    other, _ = await login(server.c2s_port, server.ca_file, "bob", "bob-secret")
    for _ in range(10):
        client = await RawClient.connect(server.c2s_port)
        await client.open()
        if tls:
            await client.starttls(server.ca_file)
        await client.send("<message><body>" + "x" * 100_000 + "</body></message>")
        await ping_round_trips(other)
        assert await client.stream_error() == ("policy-violation", "XML stanza is too big")
        await client.close()
    await ping_round_trips(other, 1)


async def test_a_lingering_close_ends_when_the_client_does_not_close(server: TestServer) -> None:
    forgotten = asyncio.Event()
    forget = server.server.forget

    def forget_and_tell(conn: Connection) -> None:
        forget(conn)
        forgotten.set()

    server.server.forget = forget_and_tell  # type: ignore[method-assign]
    client = await RawClient.connect(server.c2s_port)
    await client.open()
    await client.send("<message><body>" + "x" * 100_000 + "</body></message>")
    assert (await client.stream_error())[0] == "policy-violation"  # FIN after the error
    # The client keeps its side open: the server closes the socket after LINGER_TIME.
    await asyncio.wait_for(forgotten.wait(), net.LINGER_TIME + TIMEOUT)


async def test_a_lingering_close_ends_when_the_client_sends_on_and_on(server: TestServer) -> None:
    client = await RawClient.connect(server.c2s_port)
    await client.open()
    await client.send("<message><body>")
    sent = 0
    with pytest.raises(ConnectionError):  # reset once LINGER_BYTES have been discarded
        while sent < 64 * net.LINGER_BYTES:
            await client.send("x" * 65536)
            sent += 65536
    assert sent < 64 * net.LINGER_BYTES
    await assert_still_serving(server)


async def assert_still_serving(server: TestServer) -> None:
    client, _jid = await login(server.c2s_port, server.ca_file, "carol", "carol-secret")
    await ping_round_trips(client, 1)
