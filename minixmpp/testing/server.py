"""``XmppServer``: a whole minixmpp for a test, in the caller's event loop.

Start to ready is the time to bind loopback port 0 and open a temporary SQLite database (about
50 ms); ``reset()`` puts back the state the server had once started (accounts, rosters,
invites, offline messages, every module's stores; every stream closed, throttles and the clock
back to normal) in a few milliseconds, so one server serves a whole test session.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

from minixmpp.clock import Clock
from minixmpp.config import from_dict
from minixmpp.events import SERVER_RESET, SERVER_RESETTING, ServerEvent
from minixmpp.server import Server
from minixmpp.testing.accounts import Account, AccountsMixin
from minixmpp.testing.config import DEFAULT_MODULES, make_config
from minixmpp.testing.faults import Faults
from minixmpp.testing.traffic import TrafficLog
from minixmpp.testing.waits import WaitsMixin

if TYPE_CHECKING:
    from minixmpp.testing.threaded import ThreadedXmppServer

Rows = dict[str, list[tuple[Any, ...]]]


@dataclass(frozen=True)
class Snapshot:
    """The server's stored state at one moment (``snapshot()``), to ``restore()`` later."""

    rows: Rows


class XmppServer(AccountsMixin, WaitsMixin):
    """A minixmpp server for tests (see the package docstring for a tour)::

    async with XmppServer(modules=["register", "invites"]) as server:
        alice = await server.create_user("alice")
        # connect to server.c2s_address, trusting server.ca_file
    """

    __test__ = False  # not a pytest test class
    _running: ClassVar[weakref.WeakSet[XmppServer]] = weakref.WeakSet()

    def __init__(
        self,
        folder: Path | str | None = None,
        *,
        hosts: Sequence[str] = ("localhost",),
        modules: Sequence[str] = DEFAULT_MODULES,
        options: Mapping[str, Any] | None = None,
        host_options: Mapping[str, Mapping[str, Any]] | None = None,
        profile: str | None = None,
        plaintext: bool = False,
        users: Mapping[str, str] | Iterable[str] = (),
        admin: str | None = None,
        open_registration: bool = False,
        anonymous_host: str | None = None,
        any_password_host: str | None = None,
        admin_socket: bool = False,
        components: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """``folder``: where the database and certificates go (a temporary folder, removed
        at ``stop()``, by default). ``plaintext``: clients may log in without TLS.
        ``users``: accounts made at start (``{"alice": "secret"}``, or names: password
        ``"password"``). ``admin``: an account made at start with the admin role, for XEP-0133
        commands (loads adhoc and admin_adhoc). ``open_registration``: in-band registration
        for anyone, without a throttle. ``profile``: whose wire behaviour to copy where servers
        differ (``minixmpp.testing.config.PROFILES``). ``anonymous_host``: one more host
        where clients log in with SASL ANONYMOUS (XEP-0175) and get a new account each time;
        ``any_password_host``: one more where any password is right (PLAIN; a missing
        account is made at its first login). ``components``:
        ``{"pubsub.localhost": {"component_module": "pubsub"}}`` (README: Components)."""
        modules = list(modules)
        extra: dict[str, Any] = {}
        if plaintext:
            extra["c2s_require_encryption"] = False
        if admin is not None:
            modules += [m for m in ("adhoc", "admin_adhoc") if m not in modules]
        if open_registration:
            modules += [m for m in ("register",) if m not in modules]
            extra.update({"allow_registration": True, "registration_throttle_max": None})
            extra["min_seconds_between_registrations"] = None
        self._folder_given = Path(folder) if folder is not None else None
        self._hosts = list(hosts)
        per_host = {k: dict(v) for k, v in (host_options or {}).items()}
        for extra_host, kind in ((anonymous_host, "anonymous"), (any_password_host, "insecure")):
            if extra_host is not None:
                self._hosts.append(extra_host)
                per_host.setdefault(extra_host, {})["authentication"] = kind
                if plaintext:
                    per_host[extra_host]["allow_unencrypted_plain_auth"] = True
        self._modules = modules
        self._options = {**extra, **(options or {})}
        self._host_options = per_host
        self._components = components
        self._profile = profile
        self._users = dict(users) if isinstance(users, Mapping) else {u: "password" for u in users}
        self._admin = admin
        self._admin_socket = admin_socket
        self._folder: Path | None = None
        self._ports: dict[str, list[int]] = {}  # kept across restarts
        self._server: Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._start_state: Snapshot | None = None
        self.traffic = TrafficLog()
        self.faults = Faults(self)
        self.accounts: dict[str, Account] = {}  # made through this object, by bare JID

    # -- life -----------------------------------------------------------------------------

    async def start(self) -> XmppServer:
        if self._server is not None:
            raise RuntimeError("the server is running")
        folder = self._folder_given or Path(tempfile.mkdtemp(prefix="minixmpp-test-"))
        self._folder = folder
        try:
            server = await self._start_server(folder)
        except BaseException:
            self._remove_folder()
            raise
        self._ports = {
            "c2s_ports": server.c2s_ports, "c2s_direct_tls_ports": server.direct_tls_ports,
            **{f"{k}_ports": v for k, v in server.ports.ports.items() if k in ("http", "https")},
        }  # fmt: skip
        for name, password in self._users.items():
            await self.create_user(name, password)
        if self._admin is not None:
            await self.create_user(self._admin, "password", roles=["prosody:admin"])
        self._start_state = await self.snapshot()
        self.traffic.clear()
        self._loop = asyncio.get_running_loop()
        XmppServer._running.add(self)
        return self

    @classmethod
    def running(cls) -> list[XmppServer]:
        """The servers of this process that run in the calling thread's event loop."""
        loop = asyncio.get_running_loop()
        return [s for s in cls._running if s._server is not None and s._loop is loop]

    async def _start_server(self, folder: Path) -> Server:
        raw = make_config(
            folder, hosts=self._hosts, modules=self._modules,
            options={**self._options, **self._ports}, host_options=self._host_options,
            profile=self._profile, components=self._components,
        )  # fmt: skip
        server = Server(from_dict(raw, folder / "server.toml"))
        await server.start(admin_socket=self._admin_socket)
        self._server = server
        self._tap(server)
        return server

    async def restart(self, *, kill: bool = False) -> None:
        """Stop and start again on the same ports with the same data (clients see their
        streams closed with ``system-shutdown``; with ``kill``, dropped without a word, as
        a crash would). The clock starts again from the system's time."""
        server = self.server
        if kill:
            for conn in list(server.connections):
                conn.abort()
        await server.stop()
        self._server = None
        assert self._folder is not None
        await self._start_server(self._folder)

    def _tap(self, server: Server) -> None:
        self.traffic.clock = server.clock.monotonic
        server.wiretap = self.traffic.tap
        for host in server.all_hosts():
            host.events.tap = self.traffic.event_tap(host.name)

    async def stop(self) -> None:
        XmppServer._running.discard(self)
        server, self._server = self._server, None
        if server is not None:
            await server.stop()
        self._remove_folder()

    def _remove_folder(self) -> None:
        if self._folder_given is None and self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)

    def start_in_thread(self) -> ThreadedXmppServer:
        """Start in a thread of its own, with its own event loop: for synchronous suites and
        clients that run their own loop. The result has the same methods, blocking."""
        from minixmpp.testing.threaded import ThreadedXmppServer

        return ThreadedXmppServer(self).start()

    async def __aenter__(self) -> XmppServer:
        return await self.start()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- where it is ----------------------------------------------------------------------

    @property
    def server(self) -> Server:
        if self._server is None:
            raise RuntimeError("the server is not running")
        return self._server

    @property
    def host(self) -> str:
        return self._hosts[0]

    @property
    def hosts(self) -> list[str]:
        return list(self._hosts)

    @property
    def c2s_port(self) -> int:
        return next(iter(self.server.c2s_ports), 0)

    @property
    def direct_tls_port(self) -> int:
        return next(iter(self.server.direct_tls_ports), 0)

    @property
    def c2s_address(self) -> tuple[str, int]:
        """Where clients connect (STARTTLS, or plaintext with ``plaintext=True``)."""
        return ("127.0.0.1", self.c2s_port)

    @property
    def direct_tls_address(self) -> tuple[str, int]:
        """Where clients connect with TLS from the first byte (XEP-0368)."""
        return ("127.0.0.1", self.direct_tls_port)

    @property
    def http_port(self) -> int:
        return next(iter(self.server.ports.ports.get("http", [])), 0)

    @property
    def https_port(self) -> int:
        return next(iter(self.server.ports.ports.get("https", [])), 0)

    @property
    def http_url(self) -> str:
        """``http://localhost:<port>`` (no path), with a module that serves HTTP."""
        return f"http://{self.host}:{self.http_port}"

    @property
    def https_url(self) -> str:
        return f"https://{self.host}:{self.https_port}"

    @property
    def websocket_url(self) -> str:
        """``ws://localhost:<port>/xmpp-websocket`` (the websocket module)."""
        return f"ws://{self.host}:{self.http_port}/xmpp-websocket"

    @property
    def ca_file(self) -> Path:
        """The CA that signed the server's certificates: what clients trust."""
        config = self.server.config
        return config.resolve(config.hosts[self.host].options.certificates) / "ca.pem"

    @property
    def data_path(self) -> Path:
        return self.server.config.data_path

    @property
    def clock(self) -> Clock:
        """The server's clock: ``freeze()``, ``advance(seconds)``, ``set_time(unix_time)``."""
        return self.server.clock

    # -- state ----------------------------------------------------------------------------

    async def snapshot(self) -> Snapshot:
        """The stored state now (accounts, rosters, invites, offline messages, every store)."""
        storage = self.server.storage
        assert storage is not None
        return Snapshot(await storage.dump())

    async def restore(self, snapshot: Snapshot) -> None:
        """Back to ``snapshot``: every stream closed, stores replaced, in-memory state and
        the clock as at start."""
        server = self.server
        await self._close_everything(server)
        for host in server.all_hosts():
            await host.events.fire(SERVER_RESETTING, ServerEvent(host.name))
        storage = server.storage
        assert storage is not None
        await storage.load(snapshot.rows)
        await server.rosters.reload()
        for host in server.hosts.values():
            await host.users.load_roles()
        server.clock.reset()
        self.faults.clear()
        self.traffic.clear()
        for host in server.all_hosts():
            await host.events.fire(SERVER_RESET, ServerEvent(host.name))

    async def reset(self) -> None:
        """Back to the state the server had once started (with the ``users`` and ``admin``
        made then)."""
        assert self._start_state is not None
        await self.restore(self._start_state)
        self.accounts = {
            jid: a for jid, a in self.accounts.items() if jid.split("@")[0] in self._seeded()
        }

    def _seeded(self) -> set[str]:
        return set(self._users) | ({self._admin} if self._admin else set())

    async def _close_everything(self, server: Server) -> None:
        for conn in list(server.connections):
            conn.abort()
        for host in server.hosts.values():
            for session in list(host.sessions.all()):
                c2s: Any = session  # a client's session (C2SSession), not the Protocol
                if c2s.state in ("bound", "hibernating"):
                    c2s.end("server reset")
        await self._settle(server, 5.0)

    async def _settle(self, server: Server, timeout: float) -> None:
        """Wait until the background tasks (sessions' unbinding) are done."""
        pending = [t for t in server._tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
