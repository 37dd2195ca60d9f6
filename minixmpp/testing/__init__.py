"""minixmpp as the XMPP server of a test suite.

In an async test, the server runs in the test's own event loop::

    from minixmpp.testing import XmppServer

    async with XmppServer(modules=["register", "invites", "invites_register"]) as server:
        alice = await server.create_user("alice", "secret")      # Account(jid, password)
        bob = await server.new_user()                             # a name no test used yet
        await server.add_contact(alice, bob, "both")
        invite = await server.create_invite(token="my-token", ttl=60)
        # connect to server.c2s_address trusting server.ca_file ...
        await server.wait_for("user-registered")                  # a domain event
        await server.assert_nothing_sent_to(bob, "message")       # ends once the server idles
        server.clock.freeze(); server.clock.advance(61)           # the invite expires now
        await server.reset()                                      # the start state, in ms

For synchronous suites and clients with their own loop, ``XmppServer(...).start_in_thread()``
runs it in a thread and returns a ``ThreadedXmppServer`` with the same methods, blocking.
For pytest, the plugin (``minixmpp.testing.plugin``, registered as an entry point) gives the
fixtures ``xmpp_server``, ``xmpp_server_factory``, ``xmpp_user`` and ``xmpp_invite``; for
other languages, ``minixmpp testserver`` prints the addresses as JSON and serves a control API
over HTTP (``minixmpp.testing.control``).

``running_server(folder, …)`` is the older spelling, kept: the same server in a given folder.

The server listens on loopback port 0 for every listener, keeps its database and generated
certificates (a CA: ``ca_file``) in a temporary folder, and is stopped, the folder removed,
when the block ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from minixmpp.testing.accounts import Account
from minixmpp.testing.config import DEFAULT_MODULES, PROFILES, make_config
from minixmpp.testing.server import Snapshot, XmppServer
from minixmpp.testing.traffic import Mark, Record, TrafficLog, match

TestServer = XmppServer  # the older name

__all__ = [
    "DEFAULT_MODULES",
    "PROFILES",
    "Account",
    "Mark",
    "Record",
    "Snapshot",
    "TestServer",
    "TrafficLog",
    "XmppServer",
    "make_config",
    "match",
    "running_server",
]


@asynccontextmanager
async def running_server(
    folder: Path,
    *,
    hosts: Sequence[str] = ("localhost",),
    modules: Sequence[str] = DEFAULT_MODULES,
    options: Mapping[str, Any] | None = None,
    host_options: Mapping[str, Mapping[str, Any]] | None = None,
    admin_socket: bool = False,
    components: Mapping[str, Mapping[str, Any]] | None = None,
) -> AsyncIterator[XmppServer]:
    """Run a server with its data in ``folder`` for the duration of the block; ``components``
    as ``[Component."…"]`` tables (``{"pubsub.localhost": {"component_module": "pubsub"}}``)."""
    server = XmppServer(
        folder, hosts=hosts, modules=modules, options=options, host_options=host_options,
        admin_socket=admin_socket, components=components,
    )  # fmt: skip
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
