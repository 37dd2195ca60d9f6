"""mod_websocket's fast path (modules/mod_websocket/_aiohttp.py): text frames handed over inside
aiohttp's data_received, not through a task woken per frame; output frames built here and
written at once. The first test fails when an aiohttp upgrade changes the internals it uses."""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from minixmpp.connection import Connection
from minixmpp.loader import Loader
from minixmpp.testing import running_server
from tests.websocket import WsClient
from tests.xmpp import TIMEOUT

MESSAGE = "<message xmlns='jabber:client' to='{to}' id='{id}'><body>{body}</body></message>"


def internals() -> Any:
    Loader([]).code("websocket")  # imports its helper files too (shared by all its copies)
    return sys.modules["minixmpp.mod.websocket._aiohttp"]


def test_aiohttps_internals_are_as_mod_websocket_expects() -> None:
    """If this fails after an aiohttp upgrade, read modules/mod_websocket/_aiohttp.py's
    docstring: the server still works (through receive()), only slower."""
    code = internals()
    assert code.inline_supported(), "aiohttp changed: review modules/mod_websocket/_aiohttp.py"
    assert code.INLINE


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_text_frames_are_rfc6455_server_frames(size: int) -> None:
    code = internals()
    payload = bytes(i % 251 for i in range(size))
    data = code.text_frames([payload, b"<a/>"])
    header = {0: 2, 1: 2, 125: 2}.get(size, 4 if size < 65536 else 10)
    assert data[0] == 0x81  # FIN, text; no RSV bits
    assert data[1] & 0x80 == 0  # a server does not mask
    length = data[1] if header == 2 else int.from_bytes(data[2:header], "big")
    assert length == size and data[1] == {2: size, 4: 126, 10: 127}[header]
    assert data[header : header + size] == payload
    assert data[header + size :] == b"\x81\x04<a/>"


def count_receives(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How often a request handler's task came back from WebSocketResponse.receive() (the
    base class's: whichever copy of the module the server imported)."""
    response_class = aiohttp.web.WebSocketResponse
    calls = [0]
    receive: Callable[..., Any] = response_class.receive

    async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        msg = await receive(self, *args, **kwargs)
        calls[0] += 1
        return msg

    monkeypatch.setattr(response_class, "receive", counted)
    return calls


async def test_text_frames_need_no_task_wake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    received = count_receives(monkeypatch)
    async with running_server(tmp_path, modules=["ping", "websocket"]) as srv:
        await srv.create_user("alice", "alice-secret")
        client = await WsClient.connect(srv.websocket_url)
        jid = await client.login("alice", "alice-secret")
        for i in range(30):
            await client.send(MESSAGE.format(to=jid, id=f"m{i}", body=i))
        ids = [(await client.expect("{jabber:client}message")).get("id") for _ in range(30)]
        assert ids == [f"m{i}" for i in range(30)]
        assert received == [0]  # every frame was handed over by aiohttp's data_received


async def test_frames_held_while_reading_pauses_keep_their_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A throttled client (mod_limits): reading pauses, and the frames that come meanwhile wait
    in aiohttp's queue (bounded by its limit), for the request handler's loop; all arrive, in
    order, when the throttle lets them."""
    received = count_receives(monkeypatch)
    options = {
        "limits": {"c2s": {"rate": "1kb/s", "burst": "4s"}},
        "limits_resolution": 0.02,
        "unlimited_ips": [],
    }
    modules = ["ping", "limits", "websocket"]
    async with running_server(tmp_path, modules=modules, options=options) as srv:
        await srv.create_user("alice", "alice-secret")
        client = await WsClient.connect(srv.websocket_url)
        jid = await client.login("alice", "alice-secret")
        conn = next(c for c in srv.server.connections if c.session.jid.full == jid)
        clock = srv.clock
        clock.freeze()  # the bucket (4000 bytes, ~500 used by the login) refills no more
        clock.advance(math.ceil(clock.monotonic()) - clock.monotonic())
        await client.send(MESSAGE.format(to=jid, id="first", body="a" * 3000))  # taken
        await client.send(MESSAGE.format(to=jid, id="held", body="b" * 2000))  # over: held
        for i in range(10):
            await client.send(MESSAGE.format(to=jid, id=f"m{i}", body=i))
        await queued(conn, 9)  # one taken by the handler's loop (held by the throttle), 9 wait
        assert conn.input.throttled
        clock.advance(100.0)  # a full bucket again: room for all that waits
        ids = [(await client.expect("{jabber:client}message")).get("id") for _ in range(12)]
        assert ids == ["first", "held"] + [f"m{i}" for i in range(10)]
        assert received == [10]  # these came through receive(); the rest inline
        await client.send(MESSAGE.format(to=jid, id="after", body="fast again"))
        assert (await client.expect("{jabber:client}message")).get("id") == "after"


async def queued(conn: Connection, count: int) -> None:
    """Until ``count`` frames wait in the connection's aiohttp queue (bounded: TIMEOUT)."""
    frames = conn.transport._ws.frames()  # type: ignore[union-attr]
    for _ in range(int(TIMEOUT / 0.01)):
        if len(frames._buffer) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{len(frames._buffer)} frames queued, not {count}")
