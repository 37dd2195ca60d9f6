"""Client connections over TCP (RFC 6120): STARTTLS ports (``c2s_ports``) and direct TLS
ports (XEP-0368, ``c2s_direct_tls_ports``), on every one of ``interfaces``.

The listeners are this module's ``net`` services; the server opens them once, whichever hosts
load the module (it is loaded on every host), and a connection picks its host by the ``to`` of
its stream header (or, with direct TLS, first by SNI).

A connection is admitted (counted among the unauthenticated, admission.py) as it is accepted:
one beyond a cap gets its stream error at once on a STARTTLS port, and is closed unanswered on a
direct TLS port, before the handshake.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import TYPE_CHECKING

from minixmpp.framing import TcpFraming
from minixmpp.module import Module
from minixmpp.ports import Listener, NetService, Stop

if TYPE_CHECKING:
    from minixmpp.connection import Connection


def load(module: Module) -> None:
    opts = module.server_options

    def service(name: str, ports: list[int], *, direct: bool) -> NetService:
        async def serve(socks: list[socket.socket]) -> Stop:
            loop = asyncio.get_running_loop()
            tls: ssl.SSLContext | None = module.tls_context("direct") if direct else None
            limit = opts.c2s_unauthed_stanza_size_limit

            def factory(ip: str) -> Connection | None:
                conn = module.connection(TcpFraming(limit), secure=direct)
                if not conn.admit(ip) and direct:
                    # No stream error can go out before the TLS handshake, and a refused
                    # client must not hold a descriptor (and our CPU) through one.
                    return None
                return conn

            listeners = [
                Listener(
                    loop, sock, factory, tls=tls, handshake_timeout=module.tls_handshake_timeout
                )
                for sock in socks
            ]

            async def stop() -> None:
                for listener in listeners:
                    listener.close()

            return stop

        return NetService(name, ports, opts.interfaces, serve)

    module.provides("net", service("c2s", opts.c2s_ports, direct=False))
    module.provides("net", service("c2s_direct_tls", opts.c2s_direct_tls_ports, direct=True))
