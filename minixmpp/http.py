"""HTTP routes that modules serve through mod_http (aiohttp, in the server's event loop).

A module offers a path with ``module.provides("http", Route(...))``; mod_http serves it on its
HTTP and HTTPS ports, for the host that the request's ``Host`` header names (``http_host``
maps other names to a host). ``http_paths = { <route name> = "/elsewhere" }`` moves a route,
as Prosody's option does. A GET handler answers HEAD too (aiohttp sends no body); a method
without a handler gets 405 with ``Allow``; an unknown path 404. A handler that raises is logged
once and answered with a plain 500: its text never reaches the client (a client that leaves
while its body is read is no error: nothing is logged). ``Cors(...).wrap(handlers)``
adds Prosody's CORS headers to a route's answers and answers its OPTIONS preflight.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    name: str  # the key that http_paths moves it by (usually the module's name)
    path: str  # the default path, "/" first: "/xmpp-websocket", "/.well-known/host-meta"
    handlers: Mapping[str, Handler]  # method -> handler
    prefix: bool = False  # also serve the paths below it ("/path/…")

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise ValueError(f"route {self.name!r}: path {self.path!r} must start with '/'")


def matches(base: str, path: str, *, prefix: bool) -> bool:
    """``path`` is ``base``, or below it for a prefix route."""
    if path == base:
        return True
    return prefix and path.startswith(base.rstrip("/") + "/")


class HttpApi(Protocol):
    """What ``module.depends("http")`` gives: the URLs of routes on this host."""

    def path(self, name: str, default_path: str) -> str: ...
    def url(self, name: str, default_path: str, *, scheme: str | None = None) -> str: ...
    def urls(self, name: str, default_path: str, *, scheme: str | None = None) -> list[str]: ...


@dataclass(frozen=True)
class Cors:
    """CORS as Prosody's mod_http sends it by default (``http_default_cors_enabled``): the
    route's methods and OPTIONS, ``Content-Type``, a max age of 2 hours, and the request's
    ``Origin`` echoed (``*`` without one; no credentials, so either lets any page read it).
    ``Vary: Origin`` goes with an echoed origin, so a cache does not hand it to another page."""

    methods: tuple[str, ...] = ("GET", "OPTIONS")
    headers: tuple[str, ...] = ("Content-Type",)
    expose: tuple[str, ...] = ()  # response headers a page may read besides the simple ones
    max_age: int = 7200

    def apply(self, request: web.BaseRequest, response: web.StreamResponse) -> None:
        given = response.headers
        given["Access-Control-Allow-Methods"] = ", ".join(self.methods)
        given["Access-Control-Allow-Headers"] = ", ".join(self.headers)
        given["Access-Control-Max-Age"] = str(self.max_age)
        origin = request.headers.get("Origin")
        given["Access-Control-Allow-Origin"] = origin or "*"
        if origin and "Origin" not in given.getall("Vary", []):
            given.add("Vary", "Origin")
        if self.expose:
            given["Access-Control-Expose-Headers"] = ", ".join(self.expose)

    async def preflight(self, request: web.Request) -> web.StreamResponse:
        """An OPTIONS request: 200, empty, with the headers (Prosody's answer)."""
        response = web.Response(status=200)
        self.apply(request, response)
        return response

    def wrap(self, handlers: Mapping[str, Handler]) -> dict[str, Handler]:
        """``handlers`` with these headers on every answer (errors raised as
        ``web.HTTPException`` too), and OPTIONS answered unless a handler is given for it."""

        def one(handler: Handler) -> Handler:
            async def with_headers(request: web.Request) -> web.StreamResponse:
                try:
                    response = await handler(request)
                except web.HTTPException as error:
                    self.apply(request, error)
                    raise
                self.apply(request, response)
                return response

            return with_headers

        wrapped = {method: one(handler) for method, handler in handlers.items()}
        wrapped.setdefault("OPTIONS", self.preflight)
        return wrapped
