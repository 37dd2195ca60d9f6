"""Start a whole minixmpp inside your own event loop, for tests.

    async with minixmpp.testing.running_server(tmp_path) as server:
        await server.create_user("alice", "secret")
        # connect to 127.0.0.1:server.c2s_port, trusting server.ca_file

    modules = ["register", "invites", "invites_register"]
    async with minixmpp.testing.running_server(tmp_path, modules=modules) as server:
        invite = await server.invites().create_account()
        # invite.uri == "xmpp:localhost?register;preauth=" + invite.token

The server listens on free loopback ports (port 0), keeps its database and certificates under
the folder you give it, and is fully stopped when the block ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minixmpp.clock import Clock
from minixmpp.config import from_dict
from minixmpp.jid import JID
from minixmpp.server import Server

DEFAULT_MODULES = ("disco", "ping", "version", "time")


@dataclass
class TestServer:
    server: Server
    host: str
    c2s_port: int
    direct_tls_port: int
    ca_file: Path
    data_path: Path
    http_port: int = 0  # with the http module (or one that needs it, e.g. websocket)
    https_port: int = 0

    __test__ = False  # not a pytest test class

    async def create_user(self, username: str, password: str, host: str | None = None) -> JID:
        h = self.server.hosts[host or self.host]
        if not await h.users.create(username, password):
            raise ValueError(f"user {username}@{h.name} exists")
        return JID(username, h.name)

    @property
    def clock(self) -> Clock:
        """The server's clock: ``freeze()``, ``advance(seconds)``, ``set_time(unix_time)``."""
        return self.server.clock

    def invites(self, host: str | None = None) -> Any:
        """The invites API of a host (``modules=[..., "invites"]``): ``create_account()``,
        ``create_contact()``, ``create_reset()``, ``find()``, ``revoke()``; expiry follows
        the server's ``clock``."""
        module = self.server.hosts[host or self.host].modules.get("invites")
        if module is None:
            raise ValueError("the invites module is not enabled")
        return module.api

    @property
    def http_url(self) -> str:
        """``http://localhost:<port>`` (no path)."""
        return f"http://{self.host}:{self.http_port}"

    @property
    def https_url(self) -> str:
        return f"https://{self.host}:{self.https_port}"

    @property
    def websocket_url(self) -> str:
        """``ws://localhost:<port>/xmpp-websocket`` (the websocket module)."""
        return f"ws://{self.host}:{self.http_port}/xmpp-websocket"

    async def stop(self) -> None:
        await self.server.stop()


def make_config(
    folder: Path,
    *,
    hosts: Sequence[str] = ("localhost",),
    modules: Sequence[str] = DEFAULT_MODULES,
    options: Mapping[str, Any] | None = None,
    host_options: Mapping[str, Mapping[str, Any]] | None = None,
    components: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {
        "interfaces": ["127.0.0.1"],
        "c2s_ports": [0],
        "c2s_direct_tls_ports": [0],
        "data_path": str(folder / "data"),
        "certificates": str(folder / "certs"),
        "default_iteration_count": 4096,
        "modules_enabled": list(modules),
        "log": {"warning": "*console"},
    }
    if {"http", "websocket"} & set(modules):
        data.update({"http_ports": [0], "https_ports": [0]})
    data.update(options or {})
    data["VirtualHost"] = {h: dict((host_options or {}).get(h, {})) for h in hosts}
    if components:
        data["Component"] = {name: dict(table) for name, table in components.items()}
    return data


@asynccontextmanager
async def running_server(
    folder: Path,
    *,
    hosts: Sequence[str] = ("localhost",),
    modules: Sequence[str] = DEFAULT_MODULES,
    options: Mapping[str, Any] | None = None,
    host_options: Mapping[str, Mapping[str, Any]] | None = None,
    components: Mapping[str, Mapping[str, Any]] | None = None,
    admin_socket: bool = False,
) -> AsyncIterator[TestServer]:
    """Run a server for the duration of the block (see the module docstring). ``components``:
    ``{"pubsub.localhost": {"component_module": "pubsub", …}}``, as ``[Component."…"]``."""
    raw = make_config(
        folder,
        hosts=hosts,
        modules=modules,
        options=options,
        host_options=host_options,
        components=components,
    )
    config = from_dict(raw, folder / "server.toml")
    server = Server(config)
    await server.start(admin_socket=admin_socket)
    try:
        yield TestServer(
            server=server,
            host=hosts[0],
            c2s_port=server.c2s_ports[0] if server.c2s_ports else 0,
            direct_tls_port=server.direct_tls_ports[0] if server.direct_tls_ports else 0,
            ca_file=config.resolve(server.config.hosts[hosts[0]].options.certificates) / "ca.pem",
            data_path=config.data_path,
            http_port=next(iter(server.ports.ports.get("http", [])), 0),
            https_port=next(iter(server.ports.ports.get("https", [])), 0),
        )
    finally:
        await server.stop()
