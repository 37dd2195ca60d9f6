"""Failed SASL attempts throttled per address, across connections (mod_limit_auth, from
prosody-modules). The buckets run on the server's clock, stopped and moved by hand."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from minixmpp.clock import Clock
from minixmpp.testing import TestServer, running_server
from tests.xmpp import NS_SASL, RawClient, client_context, require_loopback_aliases

TEMPORARY = f"{{{NS_SASL}}}temporary-auth-failure"
NOT_AUTHORIZED = f"{{{NS_SASL}}}not-authorized"


def stopped_clock(server: TestServer) -> Clock:
    server.clock.freeze()
    return server.clock


@pytest.fixture
async def throttled(tmp_path: Path) -> AsyncIterator[TestServer]:
    # 3 failures per hour and address: one attempt back every 20 minutes
    options: dict[str, Any] = {
        "limit_auth_max": 3,
        "limit_auth_period": 3600,
        "unlimited_ips": [],  # the clients connect from loopback
    }
    async with running_server(tmp_path, options=options) as srv:
        await srv.create_user("alice", "alice-secret")
        yield srv


async def connect(server: TestServer, source: str | None = None) -> RawClient:
    client = await RawClient.connect(
        server.direct_tls_port, tls=client_context(server.ca_file), source=source
    )
    await client.open()
    return client


def condition(failure: Any) -> str:
    assert failure.tag == f"{{{NS_SASL}}}failure", failure.tag
    return str(failure[0].tag)


async def test_failures_from_one_address_are_throttled_across_connections(
    throttled: TestServer,
) -> None:
    clock = stopped_clock(throttled)
    first = await connect(throttled)
    for _ in range(3):
        assert condition(await first.plain("alice", "wrong")) == NOT_AUTHORIZED
    # The right password is not even looked at now, on this connection or a new one.
    assert condition(await first.plain("alice", "alice-secret")) == TEMPORARY
    second = await connect(throttled)
    assert condition(await second.plain("alice", "alice-secret")) == TEMPORARY

    clock.advance(1201)  # one attempt back (1200 s, and float rounding)
    second = await connect(throttled)  # the idle unauthenticated streams timed out meanwhile
    assert (await second.plain("alice", "alice-secret")).tag == f"{{{NS_SASL}}}success"
    # A success costs nothing; the next failure uses the attempt up.
    third = await connect(throttled)
    assert condition(await third.plain("alice", "wrong")) == NOT_AUTHORIZED
    assert condition(await third.plain("alice", "alice-secret")) == TEMPORARY


async def test_attempts_started_at_once_share_one_token(throttled: TestServer) -> None:
    # Prosody's module looks at the bucket as an attempt starts and takes from it when it
    # fails: attempts started together on several connections all pass on one token.
    clock = stopped_clock(throttled)
    client = await connect(throttled)
    for _ in range(3):
        assert condition(await client.plain("alice", "wrong")) == NOT_AUTHORIZED
    clock.advance(1201)  # one attempt back (1200 s, and float rounding)
    clients = [await connect(throttled) for _ in range(4)]
    payload = base64.b64encode(b"\0alice\0wrong").decode()
    for c in clients:
        await c.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{payload}</auth>")
    answers = sorted([condition(await c.next()) for c in clients])
    assert answers == [NOT_AUTHORIZED] + [TEMPORARY] * 3


async def test_other_addresses_are_not_throttled(throttled: TestServer) -> None:
    require_loopback_aliases()
    stopped_clock(throttled)
    attacker = await connect(throttled, "127.0.0.2")
    for _ in range(3):
        assert condition(await attacker.plain("alice", "wrong")) == NOT_AUTHORIZED
    assert condition(await attacker.plain("alice", "alice-secret")) == TEMPORARY
    user = await connect(throttled, "127.0.0.3")
    assert (await user.plain("alice", "alice-secret")).tag == f"{{{NS_SASL}}}success"


async def test_a_connection_refused_again_and_again_is_closed(throttled: TestServer) -> None:
    stopped_clock(throttled)
    client = await connect(throttled)
    for _ in range(3):
        assert condition(await client.plain("alice", "wrong")) == NOT_AUTHORIZED
    client = await connect(throttled)
    for _ in range(5):  # c2s_max_auth_failures
        assert condition(await client.plain("alice", "wrong")) == TEMPORARY
    assert await client.stream_error() == (
        "policy-violation",
        "Too many failed authentication attempts",
    )


async def test_loopback_is_not_throttled_by_default(tmp_path: Path) -> None:
    options = {"limit_auth_max": 1, "limit_auth_period": 3600}
    async with running_server(tmp_path, options=options) as srv:
        await srv.create_user("alice", "alice-secret")
        for _ in range(3):
            client = await connect(srv)
            for _ in range(4):
                assert condition(await client.plain("alice", "wrong")) == NOT_AUTHORIZED
        client = await connect(srv)
        assert (await client.plain("alice", "alice-secret")).tag == f"{{{NS_SASL}}}success"


async def test_it_can_be_disabled(tmp_path: Path) -> None:
    options = {"modules_disabled": ["limit_auth"], "unlimited_ips": [], "limit_auth_max": 1}
    async with running_server(tmp_path, options=options) as srv:
        await srv.create_user("alice", "alice-secret")
        assert "limit_auth" not in srv.server.hosts["localhost"].modules
        client = await connect(srv)
        for _ in range(3):
            assert condition(await client.plain("alice", "wrong")) == NOT_AUTHORIZED
        client = await connect(srv)
        assert (await client.plain("alice", "alice-secret")).tag == f"{{{NS_SASL}}}success"
