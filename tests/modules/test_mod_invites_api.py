"""mod_invites_api over real HTTP: API keys made by admin command (in the server, and by the CLI
in-process and through a running server), invites created with a Bearer or ``?key=`` key, the
403/405/201/303 answers and their headers, and keys stored as hashes only."""

from __future__ import annotations

import logging
import re
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from minixmpp import admin
from minixmpp.testing import TestServer, running_server
from tests.core.test_cli import run, write_config
from tests.core.test_cli_extra import acli, cli, serving
from tests.xmpp import TIMEOUT, login

MODULES = ["invites", "invites_api"]
HTTP = {"http_ports": [0], "https_ports": [0]}
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Authorization",
    "Access-Control-Max-Age": "7200",
    "Access-Control-Expose-Headers": "Location",
}


async def fetch(
    method: str, url: str, *, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request, redirects not followed: (status, headers, body)."""
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.request(method, url, headers=headers, allow_redirects=False) as response,
    ):
        return response.status, dict(response.headers), await response.read()


async def new_key(srv: TestServer, **args: Any) -> dict[str, Any]:
    result = await admin.dispatch(srv.server, "invites_api.create", {"host": "localhost", **args})
    assert isinstance(result, dict)
    return result


def cors_of(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.startswith("Access-Control-")}


async def test_a_key_creates_an_account_invite(tmp_path: Path) -> None:
    async with running_server(tmp_path, modules=MODULES, options=HTTP) as srv:
        key = await new_key(srv, name="signup bot")
        key_id, _, token = key["key"].partition("/")
        assert (key_id, key["id"], key["name"]) == (key["id"], key_id, "signup bot")
        assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{11}", key_id)
        assert re.fullmatch(r"[A-Za-z0-9_-]{36}", token)
        url = srv.http_url + "/invites_api"
        invites = srv.invites()

        # the key in the Authorization header: 201, no body, the link in Location
        auth = {"Authorization": f"Bearer {key['key']}"}
        status, headers, body = await fetch("GET", url, headers=auth)
        assert (status, body) == (201, b"")
        location = headers["Location"]
        assert location.startswith("xmpp:localhost?register;preauth=")
        invite = await invites.find(location.rpartition("=")[2])
        assert invite is not None and invite.kind == "account"
        assert invite.source == f"api/token/{key_id}"
        assert headers["Cache-Control"] == "no-store"
        assert cors_of(headers) == CORS

        # the key in the query; the scheme's case does not matter; POST as GET
        status, headers, _ = await fetch("GET", f"{url}?key={key['key']}")
        assert status == 201 and headers["Location"] != location
        lower = {"Authorization": f"bearer {key['key']}"}
        assert (await fetch("GET", url, headers=lower))[0] == 201
        assert (await fetch("POST", url, headers=auth))[0] == 201

        # with redirect (any value, or none): 303 to the same kind of link
        for query in ("&redirect=1", "&redirect", "&redirect="):
            status, headers, body = await fetch("GET", f"{url}?key={key['key']}{query}")
            assert (status, body) == (303, b"")
            assert headers["Location"].startswith("xmpp:localhost?register;preauth=")
        assert len(await invites.list()) == 7


async def test_the_location_is_the_landing_page_when_there_is_one(tmp_path: Path) -> None:
    options = {**HTTP, "invites_page": "https://example.org/invite/{invite.token}/"}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        key = await new_key(srv)
        auth = {"Authorization": f"Bearer {key['key']}"}
        status, headers, _ = await fetch("GET", srv.http_url + "/invites_api", headers=auth)
        assert status == 201
        assert re.fullmatch(r"https://example\.org/invite/[A-Za-z0-9_-]{24}/", headers["Location"])


async def test_a_missing_or_bad_key_is_403(tmp_path: Path) -> None:
    async with running_server(tmp_path, modules=MODULES, options=HTTP) as srv:
        key = await new_key(srv)
        key_id, _, token = key["key"].partition("/")
        other = await new_key(srv)
        url = srv.http_url + "/invites_api"
        refused: list[tuple[str, dict[str, str] | None]] = [
            ("", None),  # no query string at all: 403, not Prosody's 500
            ("?redirect=1", None),
            ("?key=", None),
            (f"?key={key_id}", None),
            (f"?key={key_id}/", None),
            (f"?key=/{token}", None),
            (f"?key={key_id}/{token}x", None),
            (f"?key={key_id}/{other['key'].partition('/')[2]}", None),  # another key's token
            (f"?key=AAAAAAAAAAAA/{token}", None),  # no such id
            (f"?key={key_id}/{token}", {"Authorization": "Basic YTpi"}),  # the header wins
            ("", {"Authorization": f"Token {key['key']}"}),
            ("", {"Authorization": "Bearer"}),
            ("", {"Authorization": f"Bearer {key_id}/{'x' * 5000}"}),
            ("", {"Authorization": f"Bearer {key_id}/{token}é"}),
        ]
        for query, headers in refused:
            status, answer, _ = await fetch("GET", url + query, headers=headers)
            assert status == 403, (query, headers)
            assert cors_of(answer) == CORS and "Location" not in answer
        assert await srv.invites().list() == []

        await admin.dispatch(srv.server, "invites_api.delete", {"host": "localhost", "id": key_id})
        assert (await fetch("GET", f"{url}?key={key['key']}"))[0] == 403
        assert (await fetch("GET", f"{url}?key={other['key']}"))[0] == 201


async def test_a_method_the_key_may_not_use_is_405(tmp_path: Path) -> None:
    async with running_server(tmp_path, modules=MODULES, options=HTTP) as srv:
        get_only = await new_key(srv, methods=["GET"])
        auth = {"Authorization": f"Bearer {get_only['key']}"}
        url = srv.http_url + "/invites_api"
        status, headers, _ = await fetch("POST", url, headers=auth)
        assert (status, headers["Allow"]) == (405, "GET")
        assert cors_of(headers) == CORS
        # HEAD is never a key's method: it must not create an invite
        status, headers, _ = await fetch("HEAD", url, headers=auth)
        assert (status, headers["Allow"]) == (405, "GET")
        assert (await fetch("HEAD", url))[0] == 403  # the key is checked first, as Prosody
        assert (await fetch("POST", url))[0] == 403
        assert (await fetch("PUT", url, headers=auth))[0] == 405  # no route for it at all
        assert await srv.invites().list() == []
        assert (await fetch("GET", url, headers=auth))[0] == 201


async def test_cors_preflight(tmp_path: Path) -> None:
    async with running_server(tmp_path, modules=MODULES, options=HTTP) as srv:
        origin = {"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}
        status, headers, body = await fetch(
            "OPTIONS", srv.http_url + "/invites_api", headers=origin
        )
        assert (status, body) == (200, b"")
        assert cors_of(headers) == {**CORS, "Access-Control-Allow-Origin": "https://app.example"}
        assert headers["Vary"] == "Origin"
        assert await srv.invites().list() == []


async def test_a_stored_key_is_not_the_key(tmp_path: Path) -> None:
    async with running_server(tmp_path, modules=MODULES, options=HTTP) as srv:
        key = await new_key(srv, name="bot")
        key_id, _, token = key["key"].partition("/")
        assert (await fetch("GET", f"{srv.http_url}/invites_api?key={key['key']}"))[0] == 201
    with sqlite3.connect(tmp_path / "data" / "minixmpp.sqlite") as db:
        dump = "\n".join(db.iterdump())
    db.close()
    assert key_id in dump and token not in dump
    assert token[:8] not in dump and token[-8:] not in dump


async def test_keys_are_never_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="minixmpp")
    async with running_server(tmp_path, modules=MODULES, options=HTTP) as srv:
        key = await new_key(srv, name="bot")
        token = key["key"].partition("/")[2]
        status, headers, _ = await fetch("GET", f"{srv.http_url}/invites_api?key={key['key']}")
        assert status == 201
        invite_token = headers["Location"].rpartition("=")[2]
        assert (await fetch("GET", f"{srv.http_url}/invites_api?key={key['key']}x"))[0] == 403
        # a key pasted into a chat message does not reach the wire log whole
        await srv.create_user("alice", "alice-pw")
        client, jid = await login(srv.c2s_port, srv.ca_file, "alice", "alice-pw")
        await client.send(f"<message to='{jid}'><body>the key: {key['key']}</body></message>")
        await client.expect("message")
        listed = await admin.dispatch(srv.server, "invites_api.list", {"host": "localhost"})
    assert listed == [
        {"id": key["id"], "name": "bot", "created_at": listed[0]["created_at"],
         "allowed_methods": ["GET", "POST"]},
    ]  # fmt: skip
    text = caplog.text
    assert "the key: " + key["id"] + "/" in text  # the message was logged, cut
    assert token not in text and invite_token not in text and "alice-pw" not in text


# -- the command line ------------------------------------------------------------------------------


def test_key_commands_in_process(tmp_path: Path) -> None:
    config = write_config(tmp_path, modules='["invites", "invites_api"]')
    code, out, err = cli(config, "mod_invites_api", "create", "localhost", "CI bot")
    assert code == 0, err
    key_id, _, token = out.strip().partition("/")
    assert re.fullmatch(r"[A-Za-z0-9_-]{12}", key_id) and len(token) == 36
    code, out, err = cli(config, "mod_invites_api", "create", "localhost", "--method", "GET")
    assert code == 0, err
    second = out.strip().partition("/")[0]
    code, out, err = cli(config, "mod_invites_api", "list", "localhost")
    assert code == 0, err  # by creation time, then id: these two came in the same second
    assert sorted(out.splitlines()) == sorted([f"{key_id}\tCI bot", f"{second}\t<unknown>"])
    assert cli(config, "mod_invites_api", "delete", "localhost", key_id) == (
        0, f"deleted API key {key_id}\n", "",
    )  # fmt: skip
    assert cli(config, "mod_invites_api", "list", "localhost")[1] == f"{second}\t<unknown>\n"
    code, _, err = cli(config, "mod_invites_api", "delete", "localhost", key_id)
    assert (code, err) == (1, f"minixmpp: no such key: {key_id}\n")
    code, _, err = cli(config, "mod_invites_api", "create", "localhost", "--method", "PUT")
    assert code == 2 and "invalid choice: 'PUT'" in err
    code, _, err = cli(config, "mod_invites_api", "list", "nowhere.example")
    assert (code, err) == (1, "minixmpp: nowhere.example is not a VirtualHost of this server\n")


def test_key_commands_in_the_help() -> None:
    assert "mod_invites_api" in run("--help").stdout
    result = run("mod_invites_api", "--help")
    assert result.returncode == 0
    for action in ("create", "list", "delete"):
        assert action in result.stdout
    result = run("mod_invites_api", "create", "--help")
    assert "HOST [NAME]" in result.stdout and "--method METHOD" in result.stdout


def test_key_commands_need_the_module(tmp_path: Path) -> None:
    config = write_config(tmp_path, modules='["invites"]')
    code, _, err = cli(config, "mod_invites_api", "create", "localhost")
    assert code == 1
    assert "needs module invites_api, which is not enabled on localhost" in err


async def test_key_commands_through_a_running_server(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, "http_ports = [0]\nhttps_ports = []", modules='["invites", "invites_api"]'
    )
    async with serving(config) as server:
        # the line serving() waited for names every port
        ports = next(m for line in server.log if (m := re.search(r"http ports \[(\d+)\]", line)))
        url = f"http://localhost:{ports.group(1)}/invites_api"
        code, out, err = await acli(config, "mod_invites_api", "create", "localhost", "web")
        assert code == 0, err
        key = out.strip()
        status, headers, _ = await fetch("GET", url, headers={"Authorization": f"Bearer {key}"})
        assert status == 201 and headers["Location"].startswith("xmpp:localhost?register;")
        code, out, _ = await acli(config, "mod_invites_api", "list", "localhost")
        key_id = key.partition("/")[0]
        assert (code, out) == (0, f"{key_id}\tweb\n")
        assert (await acli(config, "mod_invites_api", "delete", "localhost", key_id))[0] == 0
        # the running server knows at once
        assert (await fetch("GET", url, headers={"Authorization": f"Bearer {key}"}))[0] == 403
    commands = [m.group(1) for line in server.log if (m := re.search(r"admin command (\S+)", line))]
    assert commands == ["invites_api.create", "invites_api.list", "invites_api.delete"]
    assert key.partition("/")[2] not in "".join(server.log)
