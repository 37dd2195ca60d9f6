"""Listening ports: the services modules provide, opened on every interface (Prosody's
portmanager), and ``Listener``, which accepts TCP connections as net.py ``Transport``s.

A module offers a listening service with ``module.provides("net", NetService(...))``: a name
(``c2s``, ``c2s_direct_tls``, ``http``, ``https``), its ports and interfaces, and ``serve``, which
is handed the bound listening sockets and returns a coroutine function that stops serving. The
server opens every service once, whichever hosts provide it, after all modules have loaded.
Port 0 picks a free port; the other interfaces of that service then take the same one. An
interface the machine lacks (``::1`` without IPv6) is skipped with a warning; any other failure
to bind stops start-up with a message naming the interface and port.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from minixmpp.net import Transport
from minixmpp.tls import tls_failure
from minixmpp.transport import StreamProtocol

log = logging.getLogger("minixmpp.ports")
ACCEPT_BATCH = 64  # connections accepted per readiness event

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
                sock = bind(interface, port)
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


class Listener:
    """A listening socket that makes a Transport for each connection. ``factory`` is given
    the client's address and returns the protocol, or None to refuse the connection (its
    socket is closed at once)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        factory: Callable[[str], StreamProtocol | None],
        *,
        tls: ssl.SSLContext | None,
        handshake_timeout: float,
    ) -> None:
        self._loop = loop
        self._sock = sock
        self._factory = factory
        self._tls = tls
        self._handshake_timeout = handshake_timeout
        self.port: int = sock.getsockname()[1]
        loop.add_reader(sock.fileno(), self._accept)
        self._closed = False

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, addr = self._sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # Out of file descriptors: stop accepting for a moment instead of spinning.
                    log.error("cannot accept connections: %s; pausing for 1 s", exc.strerror)
                    self._loop.remove_reader(self._sock.fileno())
                    self._loop.call_later(1.0, self._resume)
                    return
                raise
            conn.setblocking(False)
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                protocol = self._factory(addr[0] if isinstance(addr, tuple) else "")
                if protocol is None:
                    conn.close()
                    continue
                if self._tls is not None:
                    conn.getpeername()  # gone (reset)? wrap_socket() would lose the socket
                Transport(
                    self._loop,
                    conn,
                    protocol,
                    tls=self._tls,
                    handshake_timeout=self._handshake_timeout,
                )
            except OSError as exc:  # the client left before TLS could start
                gone = exc.errno == errno.ENOTCONN
                reason = "connection closed before the handshake" if gone else tls_failure(exc)
                log.info("TLS handshake failed from %s (direct TLS): %s", addr[0], reason)
                conn.close()
            except Exception:
                log.exception("cannot set up an accepted connection")
                conn.close()

    def _resume(self) -> None:
        if not self._closed:
            self._loop.add_reader(self._sock.fileno(), self._accept)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()


def bind(host: str, port: int, *, backlog: int = 1024) -> socket.socket:
    """A non-blocking listening TCP socket on ``host``:``port`` (0: any free port).
    Raises OSError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def listen(
    loop: asyncio.AbstractEventLoop,
    host: str,
    port: int,
    factory: Callable[[str], StreamProtocol | None],
    *,
    tls: ssl.SSLContext | None = None,
    handshake_timeout: float = 10.0,
) -> Listener:
    """Listen on ``host``:``port`` (0: any free port). Raises OSError."""
    sock = bind(host, port)
    return Listener(loop, sock, factory, tls=tls, handshake_timeout=handshake_timeout)
