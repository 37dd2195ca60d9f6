"""HTTP and HTTPS (Prosody's mod_http): one aiohttp server, in the server's event loop, for the
routes that modules provide (``module.provides("http", Route(...))``, see minixmpp.http).

Listens on ``http_ports`` and ``https_ports`` (the hosts' certificates, picked by SNI) on
``http_interfaces``/``https_interfaces`` (loopback by default). A request is served for the
host its ``Host`` header names (or whose ``http_host`` it is; otherwise ``http_default_host``,
or the first host). ``http_paths`` moves a route; ``http_external_url`` is the public base URL
that ``url()`` builds on (behind a reverse proxy); without it, URLs point at this server's
HTTPS port, or its HTTP port if it has no HTTPS one, as Prosody's ``module:http_url()`` does.

``load()`` returns the API other modules use: ``url(name, default_path)``.
"""

from __future__ import annotations

import logging
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from minixmpp.http import Route, matches
from minixmpp.module import Module
from minixmpp.ports import NetService, Stop

log = logging.getLogger("minixmpp.mod.http")
LOOPBACK = ["127.0.0.1", "::1"]


@dataclass
class Options:
    http_ports: list[int] = field(default_factory=lambda: [5280])
    https_ports: list[int] = field(default_factory=lambda: [5281])
    http_interfaces: list[str] = field(default_factory=lambda: list(LOOPBACK))
    https_interfaces: list[str] = field(default_factory=lambda: list(LOOPBACK))
    http_external_url: str | None = None
    http_paths: dict[str, str] = field(default_factory=dict)
    http_host: str | None = None  # the Host header this VirtualHost is served under
    http_default_host: str | None = None  # for Host headers no VirtualHost claims
    http_max_content_size: int = 10 * 1024 * 1024  # request bodies (Prosody's default)


class Api:
    def __init__(self, module: Module, opts: Options, ports: dict[str, list[int]]) -> None:
        self._module, self._opts, self._ports = module, opts, ports

    def path(self, name: str, default_path: str) -> str:
        """Where the route ``name`` is served on this host (``http_paths`` applied)."""
        return self._opts.http_paths.get(name, default_path)

    def url(self, name: str, default_path: str, *, scheme: str | None = None) -> str:
        """The absolute URL of a route: ``scheme`` "ws" gives its WebSocket URL."""
        path = self.path(name, default_path)
        if self._opts.http_external_url:
            base = self._opts.http_external_url.rstrip("/")
            if scheme == "ws":
                base = "ws" + base[4:] if base.startswith("http") else base
            return base + path
        host = self._opts.http_host or self._module.host
        https, http = self._bound("https"), self._bound("http")
        if https:
            proto, port = "wss" if scheme == "ws" else "https", https[0]
        else:
            proto, port = "ws" if scheme == "ws" else "http", http[0] if http else 5280
        return f"{proto}://{host}:{port}{path}"

    def urls(self, name: str, default_path: str, *, scheme: str | None = None) -> list[str]:
        """Every URL of a route: HTTPS first, then HTTP (or the external URL alone)."""
        if self._opts.http_external_url:
            return [self.url(name, default_path, scheme=scheme)]
        host = self._opts.http_host or self._module.host
        path = self.path(name, default_path)
        secure, plain = ("wss", "ws") if scheme == "ws" else ("https", "http")
        found = [f"{secure}://{host}:{p}{path}" for p in self._bound("https")[:1]]
        found += [f"{plain}://{host}:{p}{path}" for p in self._bound("http")[:1]]
        return found

    def _bound(self, service: str) -> list[int]:
        """The ports ``service`` listens on; before it listens (or in a CLI command run
        in-process, which never listens) the configured ones, so that a URL made then is the
        one the running server would make."""
        bound = self._ports.get(service)
        if bound:
            return bound
        configured = self._opts.https_ports if service == "https" else self._opts.http_ports
        return [p for p in configured if p != 0]


def load(module: Module) -> Api:
    opts = module.options(Options)
    hosts: dict[str, Module] = module.shared("hosts", dict)  # VirtualHost -> its mod_http
    names: dict[str, str] = module.shared("names", dict)  # Host header -> VirtualHost
    runner_state: dict[str, Any] = module.shared("runner", dict)
    hosts[module.host] = module
    names[module.host] = module.host
    if opts.http_host:
        names[opts.http_host.lower()] = module.host

    def host_for(request: web.Request) -> Module | None:
        vhost = names.get(header_host(request.host or ""))
        if vhost is None:
            vhost = opts.http_default_host or next(iter(hosts), None)
        return hosts.get(vhost) if vhost is not None else None

    async def dispatch(request: web.Request) -> web.StreamResponse:
        served = host_for(request)
        if served is None:
            raise web.HTTPNotFound()
        paths = served.options(Options).http_paths
        best: tuple[str, Route] | None = None
        for route in served.items("http"):
            assert isinstance(route, Route)
            base = paths.get(route.name, route.path)
            if matches(base, request.path, prefix=route.prefix) and (
                best is None or len(base) > len(best[0])
            ):
                best = (base, route)
        if best is None:
            raise web.HTTPNotFound()
        route = best[1]
        method = "GET" if request.method == "HEAD" else request.method
        handler = route.handlers.get(method)
        if handler is None:
            allowed = sorted({*route.handlers, *(["HEAD"] if "GET" in route.handlers else [])})
            raise web.HTTPMethodNotAllowed(request.method, allowed)
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except ConnectionResetError:  # the client left while its body was being read
            raise web.HTTPBadRequest() from None  # nobody to tell: aiohttp drops it quietly
        except Exception:
            served.log.exception("HTTP route %s failed on %s %s", route.name, method, route.path)
            return web.Response(status=500, text="Internal Server Error")

    async def runner() -> web.AppRunner:
        existing = runner_state.get("runner")
        if existing is not None:
            return existing  # type: ignore[no-any-return]
        app = web.Application(client_max_size=opts.http_max_content_size)
        app.router.add_route("*", "/{tail:.*}", dispatch)
        new = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2.0)
        await new.setup()
        runner_state["runner"], runner_state["users"] = new, 0
        return new

    def service(name: str, ports: list[int], interfaces: list[str]) -> NetService:
        async def serve(socks: list[socket.socket]) -> Stop:
            tls: ssl.SSLContext | None = module.tls_context("https") if name == "https" else None
            app_runner = await runner()
            runner_state["users"] += 1
            sites = [web.SockSite(app_runner, sock, ssl_context=tls) for sock in socks]
            for site in sites:
                await site.start()

            async def stop() -> None:
                for site in sites:
                    await site.stop()
                runner_state["users"] -= 1
                if runner_state["users"] == 0:
                    runner_state.pop("runner", None)
                    await app_runner.cleanup()

            return stop

        return NetService(name, ports, interfaces, serve)

    module.provides("net", service("http", opts.http_ports, opts.http_interfaces))
    module.provides("net", service("https", opts.https_ports, opts.https_interfaces))
    return Api(module, opts, module.bound_ports)


def header_host(value: str) -> str:
    """The name in a Host header: no port, no brackets, lower case, no final dot."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")]
    if value.count(":") == 1:
        value = value.rsplit(":", 1)[0]
    return value.rstrip(".")


def unload(module: Module) -> None:
    hosts: dict[str, Module] = module.shared("hosts", dict)
    hosts.pop(module.host, None)
    names: dict[str, str] = module.shared("names", dict)
    for name in [n for n, host in names.items() if host == module.host]:
        del names[name]
