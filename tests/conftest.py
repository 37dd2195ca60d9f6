"""Shared fixtures: a real minixmpp in the test's event loop, on free loopback ports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from minixmpp.testing import TestServer, running_server
from tests.websocket import close_all as close_websockets
from tests.xmpp import OPEN_CLIENTS, SLIX_CLIENTS

PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret"}


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[TestServer]:
    async with running_server(tmp_path) as srv:
        for name, password in PASSWORDS.items():
            await srv.create_user(name, password)
        yield srv


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    while OPEN_CLIENTS:
        await OPEN_CLIENTS.pop().close()
    while SLIX_CLIENTS:
        await SLIX_CLIENTS.pop().disconnect()
    await close_websockets()
