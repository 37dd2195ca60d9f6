"""A test-only page for Converse.js, in the image of Prosody's mod_conversejs: ``/conversejs``
serves a page that loads Converse from this server's own origin, and ``/conversejs/dist/…``
the files of Converse's npm package (``conversejs_dist``, its ``dist`` folder).

Served from the server's own origin, the page's WebSocket passes mod_websocket's ``Origin``
check without ``cross_domain_websocket``. The page only loads Converse: the browser test calls
``converse.initialize`` itself, with the account it logs in as.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from minixmpp.http import Route
from minixmpp.module import Module

PATH = "/conversejs"


@dataclass
class Options:
    conversejs_dist: str = ""  # the dist folder of the converse.js npm package


def load(module: Module) -> None:
    dist = Path(module.options(Options).conversejs_dist).resolve()
    if not (dist / "converse.min.js").is_file():
        raise ValueError(f"conversejs_dist: no converse.min.js in {dist}")
    http = module.depends("http")
    base = http.path("conversejs", PATH)
    page = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<title>Converse.js on minixmpp</title>"
        f"<link rel='stylesheet' href='{base}/dist/converse.min.css'>"
        f"<script type='module' src='{base}/dist/converse.min.js'></script>"
        "</head><body class='converse-fullscreen'></body></html>"
    )

    async def serve(request: web.Request) -> web.StreamResponse:
        if request.path == base:
            return web.Response(text=page, content_type="text/html")
        tail = request.path.removeprefix(base + "/dist/")
        if tail == request.path:
            raise web.HTTPNotFound()
        file = (dist / tail).resolve()
        if not file.is_relative_to(dist) or not file.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(file)

    module.provides("http", Route("conversejs", PATH, {"GET": serve}, prefix=True))
