"""Listening ports: the services modules provide, opened on every interface (Prosody's
portmanager).

A module offers a listening service with ``module.provides("net", NetService(...))``: a name
(``c2s``, ``c2s_direct_tls``, ``http``, ``https``), its ports and interfaces, and ``serve``, which
is handed the bound listening sockets and returns a coroutine function that stops serving. The
server opens every service once, whichever hosts provide it, after all modules have loaded.
Port 0 picks a free port; the other interfaces of that service then take the same one. An
interface the machine lacks (``::1`` without IPv6) is skipped with a warning; any other failure
to bind stops start-up with a message naming the interface and port.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from minixmpp import net

log = logging.getLogger("minixmpp.ports")

Stop = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class NetService:
    name: str
    ports: Sequence[int]
    interfaces: Sequence[str]
    serve: Callable[[list[socket.socket]], Awaitable[Stop]]


class PortManager:
    """Opens services, remembers the ports they got, closes them."""

    def __init__(self) -> None:
        self.ports: dict[str, list[int]] = {}
        self._stops: list[Stop] = []

    async def open(self, service: NetService) -> None:
        if service.name in self.ports:
            return  # provided by another host too
        bound: list[int] = []
        sockets: list[socket.socket] = []
        try:
            for port in service.ports:
                socks = bind_everywhere(service.interfaces, port)
                sockets += socks
                bound.append(socks[0].getsockname()[1])
            stop = await service.serve(sockets)
        except BaseException:
            for sock in sockets:
                sock.close()
            raise
        self.ports[service.name] = bound
        self._stops.append(stop)
        if bound:
            log.info("%s listening on port %s", service.name, ", ".join(map(str, bound)))

    async def close(self) -> None:
        stops, self._stops = self._stops, []
        for stop in reversed(stops):
            try:
                await stop()
            except Exception:
                log.exception("closing a listening service failed")


def bind_everywhere(interfaces: Sequence[str], port: int) -> list[socket.socket]:
    """Listening sockets for ``port`` on each interface (see the module docstring)."""
    socks: list[socket.socket] = []
    try:
        for interface in interfaces:
            try:
                sock = net.bind(interface, port)
            except OSError as exc:
                if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                    log.warning("cannot listen on [%s]:%d: %s", interface, port, exc.strerror)
                    continue
                raise OSError(
                    exc.errno, f"cannot listen on [{interface}]:{port}: {exc.strerror}"
                ) from None
            socks.append(sock)
            port = sock.getsockname()[1]  # port 0: the other interfaces take the same port
    except BaseException:
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.close()
        raise
    if not socks:
        raise OSError(errno.EADDRNOTAVAIL, f"no interface to listen on for port {port}")
    return socks
