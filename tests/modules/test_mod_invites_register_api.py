"""mod_invites_register_api over real HTTP: the invite's JSON, registering with a token (every
status code), password resets, the gates of in-band registration, CORS, and a race of requests
with one token that makes exactly one account."""

from __future__ import annotations

import asyncio
import json
import logging
import textwrap
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from minixmpp.testing import TestServer, running_server
from tests.xmpp import NS_SASL, TIMEOUT, RawClient, login

MODULES = ["invites", "invites_register_api"]
HTTP = {"http_ports": [0], "https_ports": [0]}
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Max-Age": "7200",
}
INVALID = {"error": "The invite token is invalid or expired"}


async def fetch(
    method: str, url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    """One request: (status, headers, the body as JSON, or as bytes when it is not JSON)."""
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.request(method, url, data=data, headers=headers, allow_redirects=False) as response,
    ):
        body = await response.read()
        if response.content_type == "application/json":
            return response.status, dict(response.headers), json.loads(body)
        return response.status, dict(response.headers), body


async def post(srv: TestServer, payload: Any, content_type: str = "application/json") -> Any:
    """POST /register_api/register: (status, JSON answer)."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    status, headers, body = await fetch(
        "POST", srv.http_url + "/register_api/register", data=data,
        headers={"Content-Type": content_type},
    )  # fmt: skip
    assert {k: headers.get(k) for k in CORS} == CORS
    return status, body


async def info(srv: TestServer, token: str) -> tuple[int, Any]:
    status, headers, body = await fetch("GET", f"{srv.http_url}/register_api/invite/{token}")
    assert {k: headers.get(k) for k in CORS} == CORS
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    return status, body


async def can_log_in(srv: TestServer, username: str, password: str) -> bool:
    client = await RawClient.connect(srv.c2s_port)
    await client.open()
    await client.starttls(srv.ca_file)
    result = await client.scram(username, password)
    await client.close()
    return bool(result.tag == f"{{{NS_SASL}}}success")


async def test_the_invite_as_json(tmp_path: Path) -> None:
    options = {**HTTP, "site_name": "Example Chat"}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        await srv.create_user("alice", "alice-pw")
        invites = srv.invites()
        account = await invites.create_account()
        assert await info(srv, account.token) == (200, {
            "site_name": "Example Chat", "token": account.token, "domain": "localhost",
            "uri": f"xmpp:localhost?register;preauth={account.token}", "type": "register",
        })  # fmt: skip
        contact = await invites.create_contact("alice", allow_registration=True)
        assert await info(srv, contact.token) == (200, {
            "site_name": "Example Chat", "token": contact.token, "domain": "localhost",
            "uri": contact.uri, "type": "roster", "inviter": "alice",
        })  # fmt: skip
        reset = await invites.create_reset("alice")
        status, body = await info(srv, reset.token)
        assert (status, body["reset"], body["type"]) == (200, "alice", "register")
        assert "jid" not in body  # as Prosody: its lookup does not return it

        contact_only = await invites.create_contact("alice")
        expired = await invites.create_account(ttl=60)
        srv.clock.freeze()
        srv.clock.set_time(expired.expires + 1.0)
        for token in (contact_only.token, expired.token, "x" * 24, "%00", "a" * 5000):
            assert await info(srv, token) == (404, INVALID)
        for path in ("/register_api/invite/", "/register_api/invite", "/register_api/register"):
            assert (await fetch("GET", srv.http_url + path))[0] == 404
        assert (await fetch("GET", f"{srv.http_url}/register_api/invite/{account.token}/x"))[
            0
        ] == 404


async def test_site_name_defaults_to_the_host_and_http_paths_move_it(tmp_path: Path) -> None:
    options = {**HTTP, "http_paths": {"invites_register_api": "/api/signup"}}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        invite = await srv.invites().create_account()
        status, _, body = await fetch("GET", f"{srv.http_url}/api/signup/invite/{invite.token}")
        assert (status, body["site_name"]) == (200, "localhost")
        assert (await fetch("GET", f"{srv.http_url}/register_api/invite/{invite.token}"))[0] == 404
        data = json.dumps({"username": "kim", "password": "kim-pw", "token": invite.token})
        status, _, body = await fetch(
            "POST", srv.http_url + "/api/signup/register", data=data.encode(),
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        assert (status, body) == (200, {"jid": "kim@localhost"})


async def test_registering_with_an_invite(tmp_path: Path) -> None:
    async with running_server(tmp_path, modules=MODULES, options=HTTP) as srv:
        await srv.create_user("alice", "alice-pw")
        invite = await srv.invites().create_contact("alice", allow_registration=True)
        answer = await post(
            srv, {"username": "NewBie", "password": "newbie-pw", "token": invite.token},
            "application/json; charset=utf-8",
        )  # fmt: skip
        assert answer == (200, {"jid": "newbie@localhost"})  # nodeprepped
        client, _ = await login(srv.c2s_port, srv.ca_file, "newbie", "newbie-pw")
        roster = await client.iq("<query xmlns='jabber:iq:roster'/>", type="get")
        item = roster.find("{jabber:iq:roster}query/{jabber:iq:roster}item")
        assert item is not None and (item.get("jid"), item.get("subscription")) == (
            "alice@localhost", "both",
        )  # fmt: skip
        # the token is used up
        assert await info(srv, invite.token) == (404, INVALID)
        again = {"username": "other", "password": "other-pw", "token": invite.token}
        assert await post(srv, again) == (404, INVALID)


async def test_bad_requests(tmp_path: Path) -> None:
    async with running_server(tmp_path, modules=MODULES, options=HTTP) as srv:
        await srv.create_user("alice", "alice-pw")
        token = (await srv.invites().create_account()).token
        good = {"username": "zoe", "password": "zoe-pw", "token": token}
        body_problem = {"error": "Expected a JSON body (Content-Type: application/json)"}
        assert await post(srv, good, "text/plain") == (400, body_problem)
        assert await post(srv, good, "application/x-www-form-urlencoded") == (400, body_problem)
        assert await post(srv, b"") == (400, body_problem)
        not_object = {"error": "The body is not a JSON object"}
        for raw in (b"{", b"[1]", b'"x"', b"null", b"\xff\xfe{", b"[" * 100_000, b"1" * 5000):
            assert await post(srv, raw) == (400, not_object), raw[:10]
        no_token = {"username": "zoe", "password": "zoe-pw"}
        for bad_token in (None, 1, "", ["x"], "x" * 24):
            assert await post(srv, {**no_token, "token": bad_token}) == (404, INVALID)
        assert await post(srv, no_token) == (404, INVALID)  # the token first, as Prosody
        fields = {"error": "username and password are required, as strings"}
        for change in ({"username": ""}, {"password": ""}, {"username": 5}, {"password": None}):
            assert await post(srv, {**good, **change}) == (400, fields)
        assert await post(srv, {"password": "pw", "token": token}) == (400, fields)
        invalid = {"error": "The requested username is invalid."}
        for name in ("a b", "a@b", "x/y", "\ud800", "a" * 1024):
            assert await post(srv, {**good, "username": name}) == (400, invalid)
        saslprep = {"error": "password fails SASLprep"}
        assert await post(srv, {**good, "password": "bad\u0007pw"}) == (400, saslprep)
        # an existing account: 409, and the token is still good
        exists = {"error": "The requested username already exists."}
        assert await post(srv, {**good, "username": "Alice"}) == (409, exists)
        assert await post(srv, good) == (200, {"jid": "zoe@localhost"})
        assert await srv.server.hosts["localhost"].users.list() == ["alice", "zoe"]
        # other paths and methods
        status, _, _ = await fetch("POST", srv.http_url + "/register_api/invite/x", data=b"{}")
        assert status == 404
        assert (await fetch("PUT", srv.http_url + "/register_api/register"))[0] == 405


async def test_a_reset_invite_sets_its_users_password_only(tmp_path: Path) -> None:
    async with running_server(tmp_path, modules=MODULES, options=HTTP) as srv:
        await srv.create_user("alice", "alice-pw")
        await srv.create_user("bob", "bob-pw")
        token = (await srv.invites().create_reset("alice")).token
        wrong = {"error": "Incorrect username for password reset"}
        assert await post(srv, {"username": "bob", "password": "x-pw", "token": token}) == (
            403, wrong,
        )  # fmt: skip
        assert await post(srv, {"username": "carol", "password": "x-pw", "token": token}) == (
            403, wrong,
        )  # fmt: skip
        assert await can_log_in(srv, "bob", "bob-pw")
        answer = await post(srv, {"username": "alice", "password": "new-pw", "token": token})
        assert answer == (200, {"jid": "alice@localhost"})
        assert await can_log_in(srv, "alice", "new-pw")
        assert not await can_log_in(srv, "alice", "alice-pw")
        assert await info(srv, token) == (404, INVALID)  # used
        assert await srv.server.hosts["localhost"].users.list() == ["alice", "bob"]


async def test_refusals_of_user_registering_are_403(tmp_path: Path) -> None:
    options = {**HTTP, "registration_blocklist": ["127.0.0.1", "::1"]}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        invite = await srv.invites().create_account()
        good = {"username": "zoe", "password": "zoe-password", "token": invite.token}
        assert await post(srv, good) == (403, {"error": "Your IP address is blocklisted"})
        assert await srv.invites().find(invite.token) is not None  # not used
    modules = [*MODULES, "password_policy"]
    async with running_server(tmp_path / "2", modules=modules, options=HTTP) as srv:
        invites = srv.invites()
        bound = await invites.create_account("zoe")
        short = {"username": "zoe", "password": "short", "token": bound.token}
        policy = {"error": "Password is too short (minimum 8 characters)"}
        assert await post(srv, short) == (403, policy)
        other = {"username": "max", "password": "max-password", "token": bound.token}
        invalid = {"error": "The chosen username is not valid with this invitation"}
        assert await post(srv, other) == (403, invalid)
        # the name a bound invite reserves is refused to any other invite: 409
        free = (await invites.create_account()).token
        reserved = {"error": "The requested username is reserved"}
        assert await post(srv, {**short, "password": "zoe-password", "token": free}) == (
            409, reserved,
        )  # fmt: skip
        good = {"username": "zoe", "password": "zoe-password", "token": bound.token}
        assert await post(srv, good) == (200, {"jid": "zoe@localhost"})


FAILING = '''
    """A storage that fails while the account is written."""
    from minixmpp.events import USER_REGISTERING, Registration


    def load(module):
        @module.hook(USER_REGISTERING)
        async def break_it(event: Registration) -> None:
            async def fail(tx) -> None:
                raise OSError("disk on fire")

            event.in_transaction.append(fail)
'''


async def test_a_failing_creation_is_500(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "mod_failing.py").write_text(textwrap.dedent(FAILING))
    options = {**HTTP, "plugin_paths": [str(plugins)]}
    async with running_server(tmp_path, modules=[*MODULES, "failing"], options=options) as srv:
        invite = await srv.invites().create_account()
        caplog.set_level(logging.ERROR, logger="minixmpp")
        status, _, body = await fetch(
            "POST", srv.http_url + "/register_api/register",
            data=json.dumps({"username": "zoe", "password": "zoe-pw", "token": invite.token})
            .encode(),
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        assert (status, body) == (500, b"Internal Server Error")  # nothing of the exception
        assert [r.exc_info[0] for r in caplog.records if r.exc_info] == [OSError]
        # nothing happened: no account, the invite still good
        assert await srv.server.hosts["localhost"].users.list() == []
        assert await srv.invites().find(invite.token) is not None


async def test_cors_preflight(tmp_path: Path) -> None:
    async with running_server(tmp_path, modules=MODULES, options=HTTP) as srv:
        origin = {"Origin": "https://portal.example", "Access-Control-Request-Method": "POST"}
        for path in ("/register_api/register", "/register_api/invite/abc"):
            status, headers, body = await fetch("OPTIONS", srv.http_url + path, headers=origin)
            assert (status, body) == (200, b"")
            cors = {**CORS, "Access-Control-Allow-Origin": "https://portal.example"}
            assert {k: headers.get(k) for k in cors} == cors and headers["Vary"] == "Origin"
        for path in ("/register_api/other", "/register_api/invite/", "/register_api"):
            assert (await fetch("OPTIONS", srv.http_url + path, headers=origin))[0] == 404


@pytest.mark.parametrize("invite_only", [True, False])
async def test_one_token_makes_one_account_however_many_race(
    tmp_path: Path, invite_only: bool
) -> None:
    """Twelve requests at once with one token: one account; the others learn the token is gone.
    With open registration too, where a request that lost the token must not register without."""
    options = {**HTTP, "registration_invite_only": invite_only, "allow_registration": True}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        token = (await srv.invites().create_account()).token
        payloads = [
            {"username": f"racer{i}", "password": "pw-racer", "token": token} for i in range(12)
        ]
        answers = await asyncio.gather(*(post(srv, p) for p in payloads))
        winners = [a for a in answers if a[0] == 200]
        assert len(winners) == 1, answers
        assert sorted(a for a in answers if a[0] != 200) == [(404, INVALID)] * 11
        users = await srv.server.hosts["localhost"].users.list()
        assert [f"{u}@localhost" for u in users] == [winners[0][1]["jid"]]


async def test_a_client_that_leaves_mid_body_is_no_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_server(tmp_path, modules=MODULES, options=HTTP) as srv:
        caplog.set_level(logging.WARNING, logger="minixmpp")
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.http_port)
        writer.write(
            b"POST /register_api/register HTTP/1.1\r\nHost: localhost\r\n"
            b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"us'
        )
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""  # closed, unanswered
        writer.close()
        token = (await srv.invites().create_account()).token
        assert (await info(srv, token))[0] == 200  # still serving; the handler has run by now
        assert [r.getMessage() for r in caplog.records] == []


THIEF = '''
    """Another request uses the token just before the invite gate looks at it."""
    from minixmpp.events import USER_REGISTERING, Registration


    def load(module):
        invites = module.depends("invites")

        @module.hook(USER_REGISTERING, priority=15)  # after the IP limits, before the gate
        async def steal(event: Registration) -> None:
            await invites.use(event.extra["invite_token"])
'''


@pytest.mark.parametrize("invite_only", [True, False])
async def test_a_token_used_before_the_gate_makes_no_account(
    tmp_path: Path, invite_only: bool
) -> None:
    """The deterministic form of the race's other outcome: the gate finds no invite. With open
    registration the request must still not register without one."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "mod_thief.py").write_text(textwrap.dedent(THIEF))
    options = {
        **HTTP, "plugin_paths": [str(plugins)], "registration_invite_only": invite_only,
        "allow_registration": True,
    }  # fmt: skip
    async with running_server(tmp_path, modules=[*MODULES, "thief"], options=options) as srv:
        token = (await srv.invites().create_account()).token
        assert await post(srv, {"username": "zoe", "password": "zoe-pw", "token": token}) == (
            404, INVALID,
        )  # fmt: skip
        assert await srv.server.hosts["localhost"].users.list() == []


async def test_tokens_and_passwords_are_never_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="minixmpp")  # what the server logs
    async with running_server(tmp_path, modules=MODULES, options=HTTP) as srv:
        invite = await srv.invites().create_account()
        await info(srv, invite.token)
        await srv.create_user("alice", "alice-pw")
        await post(srv, {"username": "a b", "password": "first-Secret", "token": invite.token})
        await post(srv, {"username": "alice", "password": "second-Secret", "token": invite.token})
        await post(srv, {"username": "zoe", "password": "third-Secret", "token": invite.token})
        await post(srv, {"username": "max", "password": "fourth-Secret", "token": invite.token})
    text = caplog.text
    assert "registered" in text and "refused" in text  # it did log
    for secret in (invite.token, "first-Secret", "second-Secret", "third-Secret", "fourth-Secret"):
        assert secret not in text
