"""Caps on unauthenticated connections (admission.py), per address and in all, over real
sockets. Clients connect from several loopback addresses (127.0.0.2, 127.0.0.3, …: Linux routes
all of 127/8 to the loopback interface) to stand for different hosts."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from minixmpp.admission import AddressSet, Admission, address_key, automatic_total
from minixmpp.testing import TestServer, running_server
from tests.xmpp import (
    NS_SASL,
    TIMEOUT,
    RawClient,
    client_context,
    login,
    require_loopback_aliases,
)

PER_ADDRESS = ("policy-violation", "Too many unauthenticated connections from your address")
TOTAL = ("resource-constraint", "Too many connections are waiting to authenticate")


@pytest.fixture(autouse=True)
def _aliases() -> None:
    require_loopback_aliases()


async def idle(server: TestServer, source: str) -> RawClient:
    """An unauthenticated connection that has had its stream features (so it is counted)."""
    client = await RawClient.connect(server.c2s_port, source=source)
    await client.open()
    return client


async def log_in(server: TestServer, source: str, user: str = "alice") -> RawClient:
    client = await RawClient.connect(server.c2s_port, source=source)
    await client.open()
    await client.starttls(server.ca_file)
    assert (await client.scram(user, f"{user}-secret")).tag == f"{{{NS_SASL}}}success"
    await client.open()
    await client.bind()
    return client


async def served(client: RawClient) -> None:
    reply = await client.iq("<ping xmlns='urn:xmpp:ping'/>", id="served", to="localhost")
    assert reply.get("type") == "result"


async def refused(server: TestServer, source: str) -> tuple[str, str | None]:
    """The stream error a new connection from ``source`` gets before sending anything."""
    client = await RawClient.connect(server.c2s_port, source=source)
    condition, text = await client.stream_error()
    assert client.header is not None and client.header.from_ == "localhost"
    await client.close()
    return condition, text


async def users(srv: TestServer) -> None:
    for name in ("alice", "bob"):
        await srv.create_user(name, f"{name}-secret")


async def test_unauthenticated_connections_are_capped_per_address(tmp_path: Path) -> None:
    options = {"c2s_max_unauthed_per_ip": 2, "unlimited_ips": []}
    async with running_server(tmp_path, options=options) as srv:
        await users(srv)
        alice = await log_in(srv, "127.0.0.2")  # authenticated: not counted
        first, second = await idle(srv, "127.0.0.2"), await idle(srv, "127.0.0.2")

        assert await refused(srv, "127.0.0.2") == PER_ADDRESS
        await served(alice)  # users from that address keep being served
        bob = await log_in(srv, "127.0.0.3", "bob")  # and other addresses are accepted
        await served(bob)

        # A counted connection that authenticates frees its place at once.
        await first.starttls(srv.ca_file)
        assert (await first.scram("bob", "bob-secret")).tag == f"{{{NS_SASL}}}success"
        third = await idle(srv, "127.0.0.2")
        assert await refused(srv, "127.0.0.2") == PER_ADDRESS
        await second.close()
        await third.close()


async def test_the_total_of_unauthenticated_connections_is_capped(tmp_path: Path) -> None:
    options = {"c2s_max_unauthed": 2, "unlimited_ips": []}
    async with running_server(tmp_path, options=options) as srv:
        await users(srv)
        alice = await log_in(srv, "127.0.0.2")
        first = await idle(srv, "127.0.0.3")
        await idle(srv, "127.0.0.4")

        assert await refused(srv, "127.0.0.5") == TOTAL
        assert await refused(srv, "127.0.0.1") == TOTAL  # unlimited_ips or not
        await served(alice)

        await first.starttls(srv.ca_file)
        assert (await first.scram("bob", "bob-secret")).tag == f"{{{NS_SASL}}}success"
        await served(await log_in(srv, "127.0.0.5"))


async def test_loopback_is_not_capped_per_address_by_default(tmp_path: Path) -> None:
    # Test suites open many connections at once from 127.0.0.1 (and ::1).
    async with running_server(tmp_path, options={"c2s_max_unauthed_per_ip": 2}) as srv:
        for _ in range(4):
            await idle(srv, "127.0.0.1")
        await idle(srv, "127.0.0.2")
        await idle(srv, "127.0.0.2")
        assert await refused(srv, "127.0.0.2") == PER_ADDRESS


async def read_until_closed(sock: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    got = b""
    while True:
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 4096), TIMEOUT)
        except ConnectionError:
            return got
        if not data:
            return got
        got += data


async def test_direct_tls_counts_from_the_accept_and_refuses_before_the_handshake(
    tmp_path: Path,
) -> None:
    # A TLS handshake that never ends holds a descriptor for ssl_handshake_timeout: it counts.
    options = {"c2s_max_unauthed_per_ip": 1, "unlimited_ips": []}
    async with running_server(tmp_path, options=options) as srv:
        await users(srv)
        alice, _jid = await login(srv.c2s_port, srv.ca_file, "alice", "alice-secret")
        loop = asyncio.get_running_loop()
        silent = socket.socket()
        silent.setblocking(False)
        silent.bind(("127.0.0.2", 0))
        await loop.sock_connect(silent, ("127.0.0.1", srv.direct_tls_port))
        # The next one from that address is closed at once, unanswered (no TLS alert, no
        # XML): nothing can be said before a handshake, and it is not worth one. (Admitted, it
        # would wait up to ssl_handshake_timeout, 60 s, for the rest of its ClientHello.)
        with socket.socket() as second:
            second.setblocking(False)
            second.bind(("127.0.0.2", 0))
            await loop.sock_connect(second, ("127.0.0.1", srv.direct_tls_port))
            await loop.sock_sendall(second, b"\x16\x03\x01")  # the start of a ClientHello
            assert await read_until_closed(second) == b""
        # The silent one gives up: its failed handshake frees its place.
        silent.close()
        for i in range(3):
            await alice.iq("<ping xmlns='urn:xmpp:ping'/>", id=f"rt{i}", to="localhost")
        tls = await RawClient.connect(
            srv.direct_tls_port, tls=client_context(srv.ca_file), source="127.0.0.2"
        )
        features = await tls.open()
        assert features.find(f"{{{NS_SASL}}}mechanisms") is not None


async def test_a_refused_connection_is_not_a_login_lockout(tmp_path: Path) -> None:
    # The attack from the issue, scaled down: one address holds every place it may; logins
    # from elsewhere go on as usual, and the server answers the flood without a traceback.
    options = {"c2s_max_unauthed_per_ip": 20, "unlimited_ips": []}
    async with running_server(tmp_path, options=options) as srv:
        await users(srv)
        held = [await idle(srv, "127.0.0.2") for _ in range(20)]
        results = await asyncio.gather(*(refused(srv, "127.0.0.2") for _ in range(30)))
        assert set(results) == {PER_ADDRESS}
        client, _jid = await login(srv.c2s_port, srv.ca_file, "alice", "alice-secret")
        await served(client)
        for c in held:
            await c.close()


# -- the table itself ------------------------------------------------------------------------


def test_ipv6_addresses_count_per_64_and_mapped_ipv4_as_ipv4() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("::ffff:192.0.2.7") == address_key("192.0.2.7") == "192.0.2.7"
    assert address_key("fe80::1%eth0") == address_key("fe80::2")
    assert address_key("") == ""


def test_the_counts_and_the_caps() -> None:
    admission = Admission(per_address=2, total=3, unlimited=AddressSet(["10.0.0.0/8"]))
    assert admission.enter("192.0.2.1") is None
    assert admission.enter("192.0.2.1") is None
    refusal = admission.enter("192.0.2.1")
    assert refusal is not None and refusal.condition == "policy-violation"
    assert admission.enter("10.1.2.3") is None  # unlimited: no cap of its own
    refusal = admission.enter("10.1.2.3")
    assert refusal is not None and refusal.condition == "resource-constraint"
    admission.leave("192.0.2.1")
    assert admission.of("192.0.2.1") == 1
    assert admission.enter("10.1.2.3") is None
    assert admission.count == 3


def test_without_caps_nothing_is_refused() -> None:
    admission = Admission(per_address=0, total=0, unlimited=AddressSet([]))
    assert all(admission.enter("192.0.2.1") is None for _ in range(1000))


def test_the_automatic_total_leaves_descriptors_for_users() -> None:
    assert automatic_total(1024) == 512
    assert automatic_total(1_048_576) == 10_000
    assert automatic_total(-1) == 10_000


def test_unlimited_ips_takes_addresses_and_ranges() -> None:
    unlimited = AddressSet(["127.0.0.1", "::1", "192.0.2.0/24"])
    assert "127.0.0.1" in unlimited and "::1" in unlimited and "192.0.2.77" in unlimited
    assert "::ffff:127.0.0.1" in unlimited
    assert "127.0.0.2" not in unlimited and "" not in unlimited
    with pytest.raises(ValueError, match="'nope' is not an IP address or range"):
        AddressSet(["nope"])
