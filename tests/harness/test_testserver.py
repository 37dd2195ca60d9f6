"""``minixmpp testserver`` as a process, and its control API over HTTP, as a suite in another
language uses them."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.xmpp import TIMEOUT, login


class TestServerProcess:
    __test__ = False

    def __init__(self, proc: asyncio.subprocess.Process, info: dict[str, Any], env: dict[str, str]):
        self.proc, self.info, self.env = proc, info, env
        self.http = aiohttp.ClientSession(
            base_url=info["control_url"],
            headers={"Authorization": f"Bearer {info['control_token']}"},
            timeout=aiohttp.ClientTimeout(total=TIMEOUT),
        )

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.http.request(method, path, json=body) as response:
            text = await response.text()
            if response.content_type == "application/json":
                return response.status, json.loads(text)
            return response.status, text


@pytest.fixture
async def testserver() -> AsyncIterator[TestServerProcess]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "minixmpp", "testserver", "--user", "alice:alice-pw",
        "--user", "bob", "--invite", "chosen-1", "--invite", "-", "--env",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    first = await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)
    info = json.loads(first)
    env = {}
    while len(env) < 10:
        key, _, value = (
            (await asyncio.wait_for(proc.stdout.readline(), TIMEOUT))
            .decode()
            .strip()
            .partition("=")
        )
        env[key] = value
    server = TestServerProcess(proc, info, env)
    try:
        yield server
    finally:
        await server.http.close()
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), TIMEOUT)


async def test_what_it_prints(testserver: TestServerProcess) -> None:
    info, env = testserver.info, testserver.env
    assert info["host"] == "localhost" and info["c2s"] == f"127.0.0.1:{info['c2s_port']}"
    assert info["accounts"] == [
        {"jid": "alice@localhost", "password": "alice-pw"},
        {"jid": "bob@localhost", "password": "password"},
    ]
    assert info["invites"][0]["uri"] == "xmpp:localhost?register;preauth=chosen-1"
    assert info["invites"][1]["token"] != "-"
    assert env["CI_ACCOUNT1"] == "alice@localhost" and env["CI_ACCOUNT2_PASSWORD"] == "password"
    assert env["MINIXMPP_C2S_PORT"] == str(info["c2s_port"])
    assert env["MINIXMPP_CONTROL_URL"] == info["control_url"]
    _client, jid = await login(info["c2s_port"], info["ca_file"], "alice", "alice-pw", "r")
    assert jid == "alice@localhost/r"


async def test_the_control_api(testserver: TestServerProcess) -> None:
    call, info = testserver.call, testserver.info
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(info["control_url"] + "/health") as response:
            assert (response.status, await response.json()) == (200, {"status": "ok"})
        async with anonymous.post(info["control_url"] + "/reset") as response:
            assert response.status == 401
    assert (await call("GET", "/server"))[1]["c2s_port"] == info["c2s_port"]
    status, carol = await call("POST", "/users", {"username": "carol", "password": "c-pw"})
    assert (status, carol) == (201, {"jid": "carol@localhost", "password": "c-pw"})
    assert (await call("POST", "/users", {"username": "carol"}))[0] == 409
    status, fresh = await call("POST", "/users", {})
    assert status == 201 and fresh["jid"].startswith("user")
    assert (
        await call("POST", "/rosters", {"owner": "alice@localhost", "contact": "carol@localhost"})
    )[0] == 204
    roster = (await call("GET", "/rosters/carol@localhost"))[1]
    assert roster["alice@localhost"]["subscription"] == "both"
    status, invite = await call("POST", "/invites", {"token": "x-2", "ttl": 60})
    assert (status, invite["token"], invite["expires"] - invite["created_at"]) == (201, "x-2", 60)
    assert (await call("POST", "/invites", {"bogus": 1}))[0] == 400

    mark = (await call("GET", "/mark"))[1]
    client, jid = await login(info["c2s_port"], info["ca_file"], "carol", "c-pw", "desk")
    status, event = await call("POST", "/wait", {"event": "resource-bind", "since": mark})
    assert (status, event["session"]) == (200, jid)
    await client.send("<message to='bob@localhost' type='chat' id='m1'><body>hi</body></message>")
    status, record = await call(
        "POST", "/wait", {"tag": "message", "jid": "carol@localhost", "attrs": {"id": "m1"}}
    )
    assert status == 200 and record["direction"] == "in" and "<body>hi</body>" in record["data"]
    status, traffic = await call("GET", f"/traffic?jid={jid}&direction=in&tag=message")
    assert [r["seq"] for r in traffic] == [record["seq"]]
    assert (await call("POST", "/wait", {"event": "user-deleted", "timeout": 0.2}))[0] == 408
    status, text = await call("GET", "/traffic/transcript")
    assert status == 200 and "C: <message" in text and "c-pw" not in text
    assert (
        await call("POST", "/assert-nothing-sent", {"jid": "alice@localhost", "tag": "message"})
    )[0] == 204

    status, clock = await call("POST", "/clock", {"freeze": True, "advance": 61})
    assert status == 200 and clock["frozen"]
    assert (
        await call(
            "POST", "/faults/close-streams", {"jid": "carol@localhost", "condition": "conflict"}
        )
    )[1] == {"closed": 1}
    assert (await client.stream_error())[0] == "conflict"

    status, snap = await call("POST", "/snapshots")
    assert (await call("POST", "/reset"))[0] == 204
    assert sorted((await call("GET", "/users"))[1]) == ["alice@localhost", "bob@localhost"]
    assert not (await call("GET", "/clock"))[1]["frozen"]
    assert (await call("POST", f"/snapshots/{snap['id']}/restore"))[0] == 204
    assert "carol@localhost" in (await call("GET", "/users"))[1]
    assert (await call("POST", "/faults/fail-next-write", {}))[0] == 204
    status, error = await call("POST", "/users", {"username": "dave"})
    assert status == 500 and "injected" in error["error"]
    assert (await call("POST", "/users", {"username": "dave"}))[0] == 201

    assert (await call("POST", "/stop"))[0] == 204
    assert await asyncio.wait_for(testserver.proc.wait(), TIMEOUT) == 0
