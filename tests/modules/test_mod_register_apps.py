"""mod_register_apps over real HTTP: Prosody's default app list with its ids, the filters and
duplicates, the JSON view and the monogram logos the server draws itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from minixmpp.config import ConfigError
from minixmpp.testing import TestServer, running_server

PROSODY_IDS = [  # prosody-modules 2024-01, the second "Monal" (macOS) dropped as Prosody does
    "conversations", "yaxim", "siskin-im", "beagle-im", "dino", "gajim", "monal", "renga",
]  # fmt: skip


async def fetch(method: str, url: str, **headers: str) -> tuple[int, Any, bytes]:
    async with aiohttp.ClientSession() as http, http.request(method, url, headers=headers) as r:
        return r.status, r.headers, await r.read()


async def apps_json(srv: TestServer) -> list[dict[str, Any]]:
    status, headers, body = await fetch("GET", srv.http_url + "/register_apps/apps.json")
    assert status == 200 and headers["Content-Type"] == "application/json; charset=utf-8"
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["X-Content-Type-Options"] == "nosniff"
    listed: list[dict[str, Any]] = json.loads(body)
    return listed


async def test_prosodys_default_list_as_json(tmp_path: Path) -> None:
    async with running_server(tmp_path, modules=["register_apps"]) as srv:
        apps = await apps_json(srv)
        assert [a["id"] for a in apps] == PROSODY_IDS
        by_id = {a["id"]: a for a in apps}
        assert by_id["monal"]["platforms"] == ["iOS"]  # the first of the two Monals
        assert by_id["conversations"] == {
            "id": "conversations",
            "name": "Conversations",
            "text": "Conversations is a Jabber/XMPP client for Android 4.0+ smartphones that has"
            " been optimized to provide a unique mobile experience.",
            "image": f"https://localhost:{srv.https_port}/register_apps/assets/logos/"
            "conversations.svg",
            "imagetext": None,
            "link": "https://play.google.com/store/apps/details?id=eu.siacs.conversations",
            "platforms": ["Android"],
            "supports_preauth_uri": True,
            "magic_link_format": "{app.link!}&referrer={invite.uri}",
            "download": {
                "text": None,
                "buttons": [
                    {
                        "url": "https://play.google.com/store/apps/details?id=eu.siacs.conversations",
                        "text": "Get it on Google Play",
                        "image": None,
                        "target": None,
                        "alttext": None,
                    }
                ],
            },
            "setup": None,
            "login_link_format": None,
            "select_text": None,
        }
        assert by_id["beagle-im"]["setup"]["text"].startswith("Launch Beagle IM, and select")
        assert [a["id"] for a in apps if a.get("supports_preauth_uri")] == [
            "conversations", "yaxim", "siskin-im", "monal",
        ]  # fmt: skip
        # nothing a page shows is loaded from elsewhere: no remote badge images
        assert all(b["image"] is None for a in apps for b in a["download"]["buttons"])


async def test_show_hide_ids_and_duplicates(tmp_path: Path) -> None:
    custom = [
        {"name": "My Chat!", "text": "ours", "platforms": ["Web"]},
        {"name": "Gajim", "text": "first"},
        {"name": "gajim", "text": "same id: dropped"},
        {"name": "Other", "id": "explicit-id"},
    ]
    options: dict[str, Any] = {"site_apps": custom}
    async with running_server(tmp_path / "a", modules=["register_apps"], options=options) as srv:
        apps = await apps_json(srv)
        assert [(a["id"], a["text"]) for a in apps] == [
            ("my-chat-", "ours"), ("gajim", "first"), ("explicit-id", ""),
        ]  # fmt: skip
    options = {"site_apps_show": ["dino", "gajim", "nope"], "site_apps_hide": ["gajim"]}
    async with running_server(tmp_path / "b", modules=["register_apps"], options=options) as srv:
        assert [a["id"] for a in await apps_json(srv)] == ["dino"]
    options = {"site_apps_hide": ["conversations", "monal"]}
    async with running_server(tmp_path / "c", modules=["register_apps"], options=options) as srv:
        ids = [a["id"] for a in await apps_json(srv)]
        assert ids == [i for i in PROSODY_IDS if i not in ("conversations", "monal")]


async def test_bad_app_tables_stop_start_up(tmp_path: Path) -> None:
    for apps, message in (
        ([{"name": "X", "colour": "red"}], r"site_apps\[0\].*unknown field `colour`"),
        ([{"text": "no name"}], r"missing required field `name`"),
        ([{"name": "X", "download": {"buttons": [{"text": "no url"}]}}], "`url`"),
        ([{"name": "X", "image": "assets/../../etc/passwd"}], "image"),
    ):
        with pytest.raises((ConfigError, Exception), match=message):
            async with running_server(
                tmp_path, modules=["register_apps"], options={"site_apps": apps}
            ):
                pass


async def test_logos_are_monograms_drawn_here(tmp_path: Path) -> None:
    async with running_server(tmp_path, modules=["register_apps"]) as srv:
        base = srv.http_url + "/register_apps/assets/logos/"
        status, headers, body = await fetch("GET", base + "siskin-im.svg")
        assert status == 200 and headers["Content-Type"] == "image/svg+xml; charset=utf-8"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert body.startswith(b'<svg xmlns="http://www.w3.org/2000/svg"')
        assert b'aria-label="Siskin IM"' in body and b">SI</text>" in body
        assert (await fetch("GET", base + "generic.svg"))[0] == 200
        for missing in ("unknown.svg", "conversations.png", "", "dino.svg/x"):
            assert (await fetch("GET", base + missing))[0] == 404, missing
        assert (await fetch("GET", srv.http_url + "/register_apps"))[0] == 404
        status, headers, _ = await fetch("OPTIONS", srv.http_url + "/register_apps/apps.json")
        assert status == 200 and headers["Access-Control-Allow-Methods"] == "GET, OPTIONS"
        assert (await fetch("POST", srv.http_url + "/register_apps/apps.json"))[0] == 405


async def test_http_paths_move_it(tmp_path: Path) -> None:
    options = {"http_paths": {"register_apps": "/apps"}}
    async with running_server(tmp_path, modules=["register_apps"], options=options) as srv:
        status, _, body = await fetch("GET", srv.http_url + "/apps/apps.json")
        assert status == 200
        assert json.loads(body)[0]["image"].endswith("/apps/assets/logos/conversations.svg")
        assert (await fetch("GET", srv.http_url + "/apps/assets/logos/dino.svg"))[0] == 200
