"""Shared fixtures: a real minixmpp in the test's event loop, on free loopback ports."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from minixmpp.testing import XmppServer
from tests.websocket import close_all as close_websockets
from tests.xmpp import OPEN_CLIENTS, SLIX_CLIENTS

PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret"}


@pytest.fixture(scope="session")
async def _shared_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[XmppServer]:
    async with XmppServer(tmp_path_factory.mktemp("server"), users=PASSWORDS) as srv:
        yield srv


@pytest.fixture
async def server(_shared_server: XmppServer) -> AsyncIterator[XmppServer]:
    """alice, bob and carol on a server of the default modules: one per worker, reset to
    that state before each test (minixmpp.testing's own reset, as the pytest plugin does)."""
    await _shared_server.reset()
    yield _shared_server


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    while OPEN_CLIENTS:
        await OPEN_CLIENTS.pop().close()
    while SLIX_CLIENTS:
        await SLIX_CLIENTS.pop().disconnect()
    await close_websockets()
