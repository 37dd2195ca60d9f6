"""A connection's input gate (connection.py) through its transport API, on an in-memory
transport with WebSocket framing: what any transport other than net.py's TCP one gets. A rate
limit (mod_limits) holds whole frames back and pauses reading; reasons to pause add up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from minixmpp.clock import Clock
from minixmpp.connection import Connection
from minixmpp.framing import NS_FRAMING, WebSocketFraming
from minixmpp.testing import TestServer, running_server
from tests.xmpp import TIMEOUT

OPEN = f"<open xmlns='{NS_FRAMING}' to='localhost' version='1.0'/>"
PING = (
    "<iq xmlns='jabber:client' type='get' id='p{i}' to='localhost'>"
    "<ping xmlns='urn:xmpp:ping'/></iq>"
)


class MemoryTransport:
    """A transport that keeps what is written and records pauses."""

    def __init__(self, protocol: Connection) -> None:
        self.protocol = protocol
        self.out: list[bytes] = []
        self.paused = False
        self.closed = False
        self.written = asyncio.Event()

    def writelines(self, chunks: list[bytes]) -> None:
        self.out.extend(chunks)
        self.written.set()

    def close(self, *, linger: bool = True) -> None:
        self.abort()

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("192.0.2.1", 40000) if name == "peername" else default

    async def wait_drained(self) -> None:
        pass

    def replies(self) -> int:
        return sum(unit.startswith(b"<iq") for unit in self.out)

    async def until_replies(self, count: int) -> None:
        while self.replies() < count:
            self.written.clear()
            await asyncio.wait_for(self.written.wait(), TIMEOUT)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[TestServer]:
    options = {
        "limits": {"c2s": {"rate": "1kb/s", "burst": "1s"}},  # a bucket of 1000 bytes
        "limits_resolution": 0.02,
        "c2s_require_encryption": False,
    }
    async with running_server(tmp_path, modules=["limits"], options=options) as srv:
        yield srv


def connect(server: TestServer) -> tuple[Connection, MemoryTransport, Clock]:
    """A connection on a memory transport; the server's clock, stopped until moved."""
    server.clock.freeze()
    conn = server.server.connection(WebSocketFraming(10_000))
    transport = MemoryTransport(conn)
    conn.connection_made(transport)
    return conn, transport, server.clock


async def test_a_rate_limit_holds_whole_frames_and_pauses_reading(server: TestServer) -> None:
    conn, transport, clock = connect(server)
    frames = [OPEN] + [PING.format(i=i) for i in range(20)]  # about 1.9 KB in all
    for frame in frames:
        conn.data_received(frame.encode())
    assert transport.paused and conn.input.throttled
    held = [chunk.decode() for chunk in conn.input._held]
    assert held == frames[-len(held) :]  # whole frames, in order: none was split
    handled = len(frames) - 1 - len(held)  # pings that went through
    assert 5 <= handled < 20
    await transport.until_replies(handled)
    assert transport.replies() == handled

    clock.advance(100)  # a full bucket again: 1000 bytes more
    await transport.until_replies(handled + 1)
    clock.advance(100)
    await transport.until_replies(20)
    assert not conn.input.throttled and not transport.paused
    assert not transport.closed  # no frame was cut into a not-well-formed one


async def test_reasons_to_pause_add_up(server: TestServer) -> None:
    conn, transport, clock = connect(server)
    conn.data_received(OPEN.encode())
    conn.pause_writing()  # the client does not read what we send
    for i in range(15):  # about 1.4 KB: more than the bucket, less than two
        conn.data_received(PING.format(i=i).encode())
    assert transport.paused
    conn.resume_writing()
    assert transport.paused  # the limit still holds input back
    clock.advance(1000)
    await transport.until_replies(15)
    assert not transport.paused


async def test_without_a_throttle_input_goes_straight_through(server: TestServer) -> None:
    conn, transport, _clock = connect(server)
    conn.set_input_throttle(None)
    for frame in [OPEN] + [PING.format(i=i) for i in range(50)]:
        conn.data_received(frame.encode())
    assert not transport.paused
    await transport.until_replies(50)
