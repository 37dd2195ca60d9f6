"""XMPP over WebSocket (RFC 7395, Prosody's mod_websocket) at ``/xmpp-websocket``, and its
discovery (XEP-0156): ``/.well-known/host-meta`` (XRD) and ``/.well-known/host-meta.json``.

The handshake must offer the ``xmpp`` subprotocol (otherwise 501); a plain GET gets Prosody's
"It works!" page. A browser's ``Origin`` must be this server's own (its HTTP base URL) or one
listed in ``cross_domain_websocket`` (``true``: any); a request without ``Origin`` (not from a
browser) is served. Text frames only: a binary frame closes the socket with 1003. A frame that
is not XML ends the stream with ``not-well-formed`` and closes with 1007; a frame over the stanza
size limit ends it with ``policy-violation`` and closes with 1009 (frames over
``websocket_frame_buffer_limit``, twice the stanza limit by default, are refused by the
WebSocket layer before they are read: 1009 without a stream error).

Every module works over WebSocket as over TCP: the stream is the same (minixmpp.framing). The
connection counts as secure over ``wss://``, from a loopback address, or with
``consider_websocket_secure`` (a TLS-terminating proxy in front): only then is SASL offered
while ``c2s_require_encryption`` is on.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

from aiohttp import web

from minixmpp.framing import WebSocketFraming
from minixmpp.http import HttpApi, Route
from minixmpp.module import Module

from ._transport import CLOSE_TIMEOUT, WebSocketTransport, response

PATH = "/xmpp-websocket"
IT_WORKS = (
    "<!DOCTYPE html><html><head><title>Websocket</title></head><body>\n"
    "<p>It works! Now point your WebSocket client to this URL to connect to minixmpp.</p>\n"
    "</body></html>"
)
ALT_WEBSOCKET = "urn:xmpp:alt-connections:websocket"
ANY_ORIGIN = {"Access-Control-Allow-Origin": "*"}


@dataclass
class Options:
    consider_websocket_secure: bool = False
    cross_domain_websocket: bool | list[str] = False  # true: any Origin; or a list of origins
    websocket_frame_buffer_limit: int | None = None  # bytes; default twice the stanza limit


def load(module: Module) -> None:
    opts = module.options(Options)
    http: HttpApi = module.depends("http")
    stanza_limit = module.server_options.c2s_stanza_size_limit
    unauthed_limit = module.server_options.c2s_unauthed_stanza_size_limit
    frame_limit = opts.websocket_frame_buffer_limit or 2 * stanza_limit

    def origin_allowed(origin: str | None) -> bool:
        if origin is None or opts.cross_domain_websocket is True:
            return True
        # this server's own pages: scheme://host:port of its HTTP(S) URLs
        allowed = {"/".join(url.split("/")[:3]) for url in http.urls("websocket", PATH)}
        if isinstance(opts.cross_domain_websocket, list):
            allowed.update(o.rstrip("/") for o in opts.cross_domain_websocket)
        return origin.rstrip("/") in allowed

    async def websocket(request: web.Request) -> web.StreamResponse:
        if "Sec-WebSocket-Key" not in request.headers:
            return web.Response(text=IT_WORKS, content_type="text/html")
        offered = request.headers.get("Sec-WebSocket-Protocol", "")
        if "xmpp" not in {p.strip() for p in offered.split(",")}:
            module.log.debug("WebSocket without the xmpp subprotocol (%r)", offered)
            return web.Response(status=501, text="The xmpp subprotocol is required")
        if not origin_allowed(request.headers.get("Origin")):
            module.log.info("WebSocket from Origin %s refused", request.headers.get("Origin"))
            return web.Response(status=403, text="This Origin may not connect")
        ws = response(
            protocols=("xmpp",),
            max_msg_size=frame_limit,
            compress=False,
            decode_text=False,
            timeout=CLOSE_TIMEOUT,
        )
        writer = await ws.prepare(request)
        assert writer is not None  # a prepared response has one
        secure = request.secure or opts.consider_websocket_secure or loopback(request.remote)
        conn = module.connection(WebSocketFraming(unauthed_limit), secure=secure)
        await WebSocketTransport(ws, request, writer).run(conn)
        return ws

    def links() -> list[str]:
        return http.urls("websocket", PATH, scheme="ws")

    async def host_meta(request: web.Request) -> web.StreamResponse:
        body = "".join(f"<Link rel='{ALT_WEBSOCKET}' href='{url}'/>" for url in links())
        xrd = (
            "<?xml version='1.0' encoding='utf-8'?>"
            f"<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>{body}</XRD>"
        )
        return web.Response(
            text=xrd,
            content_type="application/xrd+xml",
            headers={"Access-Control-Allow-Origin": "*"},
        )

    async def host_meta_json(request: web.Request) -> web.StreamResponse:
        data = {"links": [{"rel": ALT_WEBSOCKET, "href": url} for url in links()]}
        return web.Response(
            text=json.dumps(data),
            content_type="application/json",
            headers=ANY_ORIGIN,
        )

    module.provides("http", Route("websocket", PATH, {"GET": websocket}))
    module.provides("http", Route("host_meta", "/.well-known/host-meta", {"GET": host_meta}))
    module.provides(
        "http", Route("host_meta_json", "/.well-known/host-meta.json", {"GET": host_meta_json})
    )


def loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
