"""mod_http: routes from modules over real HTTP and HTTPS, and a third-party package module
(helper file, route, store, hook) loaded from plugin_paths with no core edit."""

from __future__ import annotations

import logging
import ssl
import textwrap
from pathlib import Path

import aiohttp
import pytest

from minixmpp.config import from_dict
from minixmpp.server import Server
from minixmpp.testing import make_config, running_server
from tests.xmpp import login

# A module as a third party writes it: a package with a helper file it imports relatively,
# an HTTP route, a store, a hook and typed options.
NOTES_INIT = '''
    """Notes: a user's last message to the host is kept; GET /notes/<user> shows it."""
    from dataclasses import dataclass

    from aiohttp import web

    from minixmpp.http import Route
    from minixmpp.module import Module, StanzaEvent

    from ._render import page


    @dataclass
    class Options:
        notes_title: str = "Notes"


    def load(module: Module) -> None:
        opts = module.options(Options)
        store = module.open_store("notes", "keyval")
        http = module.depends("http")

        @module.hook("message/host")
        async def keep(event: StanzaEvent) -> bool:
            assert event.session.username is not None
            await store.set(event.session.username, {"text": event.stanza.findtext("body")})
            return True

        async def show(request: web.Request) -> web.Response:
            note = await store.get(request.match_info.get("tail", "").rpartition("/")[2])
            if note is None:
                raise web.HTTPNotFound()
            return web.Response(text=page(opts.notes_title, note["text"]), content_type="text/html")

        async def boom(request: web.Request) -> web.Response:
            raise RuntimeError("secret internal detail")

        module.provides("http", Route("notes", "/notes", {"GET": show}, prefix=True))
        module.provides("http", Route("notes_boom", "/notes-boom", {"GET": boom, "POST": boom}))
        return http
'''
NOTES_RENDER = """
    import html


    def page(title: str, text: str) -> str:
        return f"<!DOCTYPE html><title>{html.escape(title)}</title><p>{html.escape(text)}</p>"
"""


@pytest.fixture
def plugins(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins" / "mod_notes"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text(textwrap.dedent(NOTES_INIT))
    (folder / "_render.py").write_text(textwrap.dedent(NOTES_RENDER))
    return folder.parent


async def fetch(
    method: str, url: str, *, ssl_context: ssl.SSLContext | None = None, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method, url, headers=headers, ssl=ssl_context if ssl_context else True
        ) as response,
    ):
        return response.status, dict(response.headers), await response.read()


async def test_a_package_module_with_a_route_a_store_and_a_hook(
    tmp_path: Path, plugins: Path
) -> None:
    options = {"plugin_paths": [str(plugins)], "notes_title": "My <notes>"}
    async with running_server(tmp_path, modules=["notes"], options=options) as srv:
        await srv.create_user("alice", "pw")
        client, _ = await login(srv.c2s_port, srv.ca_file, "alice", "pw")
        await client.send("<message to='localhost'><body>buy &lt;milk&gt;</body></message>")
        await client.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")  # all handled
        status, headers, body = await fetch("GET", srv.http_url + "/notes/alice")
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert body == b"<!DOCTYPE html><title>My &lt;notes&gt;</title><p>buy &lt;milk&gt;</p>"
        assert (await fetch("GET", srv.http_url + "/notes/nobody"))[0] == 404
        status, headers, head = await fetch("HEAD", srv.http_url + "/notes/alice")
        assert (status, head) == (200, b"")  # HEAD: as GET, without the body
        assert headers["Content-Length"] == str(len(body))
        assert (
            srv.server.hosts["localhost"].modules["notes"].api.url("notes", "/notes")
            == f"https://localhost:{srv.https_port}/notes"
        )


async def test_unknown_paths_methods_and_a_failing_route(
    tmp_path: Path, plugins: Path, caplog: pytest.LogCaptureFixture
) -> None:
    options = {"plugin_paths": [str(plugins)]}
    async with running_server(tmp_path, modules=["notes"], options=options) as srv:
        assert (await fetch("GET", srv.http_url + "/nothing-here"))[0] == 404
        status, headers, _ = await fetch("DELETE", srv.http_url + "/notes/alice")
        assert status == 405 and headers["Allow"] == "GET,HEAD"
        caplog.set_level(logging.ERROR, logger="minixmpp")
        status, _, body = await fetch("GET", srv.http_url + "/notes-boom")
        assert (status, body) == (500, b"Internal Server Error")  # no exception text
        failures = [r for r in caplog.records if r.exc_info]
        assert len(failures) == 1 and "notes_boom" in failures[0].getMessage()
        assert (await fetch("GET", srv.http_url + "/notes/x"))[0] == 404  # still serving


async def test_http_paths_move_a_route_and_https_serves_it(tmp_path: Path, plugins: Path) -> None:
    options = {"plugin_paths": [str(plugins)], "http_paths": {"notes": "/moved/notes"}}
    async with running_server(tmp_path, modules=["notes"], options=options) as srv:
        context = ssl.create_default_context(cafile=str(srv.ca_file))
        assert (await fetch("GET", srv.https_url + "/moved/notes/x", ssl_context=context))[0] == 404
        assert (await fetch("GET", srv.http_url + "/notes/x"))[0] == 404
        api = srv.server.hosts["localhost"].modules["notes"].api
        assert api.path("notes", "/notes") == "/moved/notes"


async def test_routes_follow_the_host_header(tmp_path: Path, plugins: Path) -> None:
    """The notes module runs on localhost only; other.test serves HTTP too, but not that."""
    async with running_server(
        tmp_path,
        hosts=("localhost", "other.test"),
        options={"plugin_paths": [str(plugins)], "http_ports": [0], "https_ports": [0]},
        host_options={
            "localhost": {"modules_enabled": ["notes"]},
            "other.test": {"modules_enabled": ["http"]},
        },
    ) as srv:
        url = f"http://127.0.0.1:{srv.server.ports.ports['http'][0]}/notes-boom"
        assert (await fetch("POST", url, Host="localhost"))[0] == 500
        assert (await fetch("POST", url, Host="LOCALHOST.:5280"))[0] == 500
        assert (await fetch("POST", url, Host="other.test"))[0] == 404
        assert (await fetch("POST", url, Host="unknown.example"))[0] == 500  # the first host


async def test_external_url_and_default_ports(tmp_path: Path, plugins: Path) -> None:
    options = {
        "plugin_paths": [str(plugins)],
        "http_external_url": "https://xmpp.example.org/",
    }
    async with running_server(tmp_path, modules=["notes"], options=options) as srv:
        api = srv.server.hosts["localhost"].modules["notes"].api
        assert api.url("notes", "/notes") == "https://xmpp.example.org/notes"
        assert api.url("websocket", "/xmpp-websocket", scheme="ws") == (
            "wss://xmpp.example.org/xmpp-websocket"
        )
        assert srv.http_port and srv.https_port and srv.http_port != srv.https_port


async def test_urls_before_listening_are_the_configured_ports(tmp_path: Path) -> None:
    """A CLI command run in-process starts the server without listening: the URLs it prints
    (an invite's landing page) are those the running server would print."""
    raw = make_config(
        tmp_path, modules=["http"], options={"http_ports": [5380], "https_ports": [5381]}
    )
    server = Server(from_dict(raw, tmp_path / "server.toml"))
    await server.start(listen=False, admin_socket=False)
    try:
        api = server.hosts["localhost"].modules["http"].api
        assert api.url("notes", "/notes") == "https://localhost:5381/notes"
        assert api.urls("notes", "/notes") == [
            "https://localhost:5381/notes",
            "http://localhost:5380/notes",
        ]
    finally:
        await server.stop()
    raw["https_ports"] = []
    server = Server(from_dict(raw, tmp_path / "server.toml"))
    await server.start(listen=False, admin_socket=False)
    try:
        api = server.hosts["localhost"].modules["http"].api
        assert api.url("notes", "/notes") == "http://localhost:5380/notes"
    finally:
        await server.stop()
