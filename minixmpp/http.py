"""HTTP routes that modules serve through mod_http (aiohttp, in the server's event loop).

A module offers a path with ``module.provides("http", Route(...))``; mod_http serves it on its
HTTP and HTTPS ports, for the host that the request's ``Host`` header names (``http_host``
maps other names to a host). ``http_paths = { <route name> = "/elsewhere" }`` moves a route,
as Prosody's option does. A GET handler answers HEAD too (aiohttp sends no body); a method
without a handler gets 405 with ``Allow``; an unknown path 404. A handler that raises is logged
once and answered with a plain 500: its text never reaches the client.
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
