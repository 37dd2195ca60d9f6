"""Byte rate limits (mod_limits, Prosody's): a client sending too fast is read more slowly, and
nothing it sends is lost. The buckets' clock is the module's to set, so most tests move time by
hand; one measures real time, with a lower bound only (a slow machine only makes it longer)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from minixmpp.clock import Clock
from minixmpp.config import ConfigError, load
from minixmpp.connection import Connection
from minixmpp.loader import Loader
from minixmpp.server import check
from minixmpp.testing import TestServer, running_server
from tests.xmpp import TIMEOUT, RawClient, login

MODULES = ["ping", "limits"]
PING = "<iq type='get' id='{id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"


def options(rate: str = "1kb/s", burst: str = "4s", **more: Any) -> dict[str, Any]:
    return {
        "limits": {"c2s": {"rate": rate, "burst": burst}},
        "limits_resolution": 0.02,
        "unlimited_ips": [],  # the clients connect from loopback
        **more,
    }


@pytest.fixture
async def limited(tmp_path: Path) -> AsyncIterator[TestServer]:
    async with running_server(tmp_path, modules=MODULES, options=options()) as srv:
        for name in ("alice", "bob"):
            await srv.create_user(name, f"{name}-secret")
        yield srv


def stopped_clock(server: TestServer) -> Clock:
    """The server's clock, stopped on a whole second (exact refills) until moved."""
    clock = server.clock
    clock.freeze()
    clock.advance(math.ceil(clock.monotonic()) - clock.monotonic())
    return clock


def connection_of(server: TestServer, jid: str) -> Connection:
    return next(c for c in server.server.connections if c.session.jid.full == jid)


def watch_shortfalls(conn: Connection) -> asyncio.Queue[int]:
    """Each time the connection's limiter lets fewer bytes through than arrived: the bytes it
    held back (white-box: how the test knows the server is holding input, without waiting)."""
    limiter = conn.session.data["limits"]
    take: Callable[..., int] = limiter.take
    shortfalls: asyncio.Queue[int] = asyncio.Queue()

    def watched(size: int, *, whole: bool = False) -> int:
        taken = take(size, whole=whole)
        if taken < size:
            shortfalls.put_nowait(size - taken)
        return taken

    limiter.take = watched
    return shortfalls


async def test_a_client_over_its_rate_is_read_as_time_allows(limited: TestServer) -> None:
    client, jid = await login(limited.c2s_port, limited.ca_file, "alice", "alice-secret")
    conn = connection_of(limited, jid)
    clock = stopped_clock(limited)  # time stands still: the bucket (4000 bytes) refills no more
    shortfalls = watch_shortfalls(conn)
    body = "".join(chr(ord("a") + i % 26) for i in range(6000))
    await client.send(f"<message to='{jid}' id='big'><body>{body}</body></message>")
    await client.send(PING.format(id="after"))

    held = await asyncio.wait_for(shortfalls.get(), TIMEOUT)
    assert conn.input.throttled and conn.input._held_size >= held > 0  # the ping waits too

    before = conn.last_activity
    clock.advance(1.0)  # 1000 bytes more, and no more: the rest waits again
    assert await asyncio.wait_for(shortfalls.get(), TIMEOUT) == held - 1000
    assert conn.last_activity > before  # held input is activity: no c2s_idle_timeout for it

    clock.advance(100.0)  # a full bucket: everything goes through, in order, whole
    message = await client.expect("message")
    assert message.get("id") == "big" and message.findtext("body") == body
    reply = await client.expect("iq")
    assert (reply.get("id"), reply.get("type")) == ("after", "result")
    assert not conn.input.throttled


async def test_other_clients_are_served_meanwhile(limited: TestServer) -> None:
    alice, alice_jid = await login(limited.c2s_port, limited.ca_file, "alice", "alice-secret")
    stopped_clock(limited)
    shortfalls = watch_shortfalls(connection_of(limited, alice_jid))
    await alice.send(f"<message to='{alice_jid}'><body>{'x' * 9000}</body></message>")
    await asyncio.wait_for(shortfalls.get(), TIMEOUT)
    bob, _bob_jid = await login(limited.c2s_port, limited.ca_file, "bob", "bob-secret")
    reply = await bob.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")
    assert reply.get("type") == "result"


async def test_the_rate_holds_in_real_time(tmp_path: Path) -> None:
    # 100 kB/s with a 1 s burst: a bucket of 100 000 bytes at most. 250 000 bytes more cannot
    # all be handled in less than 1.5 s, however fast (or slow) the machine.
    opts = options(rate="100kb/s", burst="1s", limits_resolution=0.05)
    async with running_server(tmp_path, modules=MODULES, options=opts) as srv:
        await srv.create_user("alice", "pw")
        client, jid = await login(srv.c2s_port, srv.ca_file, "alice", "pw")
        loop = asyncio.get_running_loop()
        start = loop.time()
        body = "y" * 50_000
        for i in range(5):
            await client.send(f"<message to='{jid}' id='m{i}'><body>{body}</body></message>")
        await client.send(PING.format(id="last"))
        for i in range(5):
            assert (await client.expect("message")).get("id") == f"m{i}"
        reply = await client.expect("iq")
        elapsed = loop.time() - start
        assert (reply.get("id"), reply.get("type")) == ("last", "result")
        assert elapsed >= 1.5


async def test_unlimited_jids_lose_their_limit_when_they_authenticate(tmp_path: Path) -> None:
    opts = options(unlimited_jids=["alice@localhost"])
    async with running_server(tmp_path, modules=MODULES, options=opts) as srv:
        for name in ("alice", "bob"):
            await srv.create_user(name, f"{name}-secret")
        alice, alice_jid = await login(srv.c2s_port, srv.ca_file, "alice", "alice-secret")
        bob, bob_jid = await login(srv.c2s_port, srv.ca_file, "bob", "bob-secret")
        stopped_clock(srv)  # no refill from here on
        assert "limits" not in connection_of(srv, alice_jid).session.data
        shortfalls = watch_shortfalls(connection_of(srv, bob_jid))
        await alice.send(f"<message to='{alice_jid}'><body>{'z' * 20_000}</body></message>")
        await bob.send(f"<message to='{bob_jid}'><body>{'z' * 20_000}</body></message>")
        assert len((await alice.expect("message")).findtext("body") or "") == 20_000
        assert await asyncio.wait_for(shortfalls.get(), TIMEOUT) > 0


async def test_unlimited_ips_have_no_limit(tmp_path: Path) -> None:
    opts = options()
    del opts["unlimited_ips"]  # the default: loopback, where this client is
    async with running_server(tmp_path, modules=MODULES, options=opts) as srv:
        await srv.create_user("alice", "pw")
        client, jid = await login(srv.c2s_port, srv.ca_file, "alice", "pw")
        stopped_clock(srv)
        assert connection_of(srv, jid).input._throttle is None
        await client.send(f"<message to='{jid}'><body>{'w' * 50_000}</body></message>")
        assert len((await client.expect("message")).findtext("body") or "") == 50_000


async def test_limits_apply_before_the_stream_header(limited: TestServer) -> None:
    # From the first byte, before the host (or anything) is known.
    stopped_clock(limited)
    client = await RawClient.connect(limited.c2s_port)
    conn = next(iter(limited.server.connections))
    shortfalls = watch_shortfalls(conn)
    await client.send("  " * 2500)  # 5000 bytes of whitespace (the bucket holds 4000)
    assert await asyncio.wait_for(shortfalls.get(), TIMEOUT) == 1000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('limits = { c2s = { rate = "3 kbps" } }', "option 'limits.c2s.rate': expected `str`"),
        ('limits = { c2s = { burst = "soon" } }', "option 'limits.c2s.burst'"),
        ("limits = { c2s = { burst = 0 } }", "option 'limits.c2s.burst'"),
        ('limits = { c2x = { rate = "3kb/s" } }', "unknown field `c2x`"),
        ("limits_resolution = 0", "option 'limits_resolution'"),
    ],
)
def test_bad_limits_stop_start_up(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "server.toml"
    path.write_text(f'modules_enabled = ["limits"]\n{text}\n[VirtualHost."a.test"]\n')
    with pytest.raises(ConfigError, match=message):
        check(load(path), Loader([]))


def test_rates_and_bursts_read_as_prosody_reads_them() -> None:
    limits = Loader([]).code("limits")
    assert limits.parse_rate("3kb/s") == 3000  # kilo is 1000, bytes not bits
    assert limits.parse_rate("10 KB/s") == 10_000
    assert limits.parse_rate("1mb/s") == 1_000_000
    assert limits.parse_rate("500b/s") == 500
    assert limits.parse_rate(None) == 10 * 1024  # Prosody's default for c2s
    assert limits.parse_burst("2s") == limits.parse_burst(2) == 2.0
    with pytest.raises(ValueError, match="more than 0"):
        limits.parse_rate("0kb/s")
