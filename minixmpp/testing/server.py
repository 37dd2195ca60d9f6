"""``XmppServer``: a whole minixmpp for a test, in the caller's event loop.

Start to ready is the time to bind loopback port 0 and open a temporary SQLite database (about
50 ms); ``reset()`` puts back the state the server had once started (accounts, rosters,
invites, offline messages, every module's stores; every stream closed, throttles and the clock
back to normal) in a few milliseconds, so one server serves a whole test session.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import secrets
import shutil
import socket
import struct
import tempfile
import termios
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

from minixmpp.clock import Clock
from minixmpp.config import from_dict
from minixmpp.events import SERVER_RESET, SERVER_RESETTING, ServerEvent
from minixmpp.jid import JID
from minixmpp.roster import RosterItem
from minixmpp.server import Server
from minixmpp.testing.config import DEFAULT_MODULES, make_config
from minixmpp.testing.faults import Faults
from minixmpp.testing.traffic import Mark, Matcher, Record, TrafficLog

if TYPE_CHECKING:
    from minixmpp.testing.threaded import ThreadedXmppServer

Rows = dict[str, list[tuple[Any, ...]]]
_user_numbers = itertools.count(1)


@dataclass(frozen=True)
class Account:
    """An account made for a test: its bare JID and password."""

    jid: str
    password: str

    @property
    def username(self) -> str:
        return self.jid.split("@", 1)[0]

    @property
    def host(self) -> str:
        return self.jid.split("@", 1)[1]

    def __str__(self) -> str:
        return self.jid


@dataclass(frozen=True)
class Snapshot:
    """The server's stored state at one moment (``snapshot()``), to ``restore()`` later."""

    rows: Rows


class XmppServer:
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
        admin_socket: bool = False,
    ) -> None:
        """``folder``: where the database and certificates go (a temporary folder, removed
        at ``stop()``, by default). ``plaintext``: clients may log in without TLS.
        ``users``: accounts made at start (``{"alice": "secret"}``, or names: password
        ``"password"``). ``admin``: an account made at start with the admin role, for XEP-0133
        commands (loads adhoc and admin_adhoc). ``open_registration``: in-band registration
        for anyone, without a throttle. ``profile``: whose wire behaviour to copy where servers
        differ (``minixmpp.testing.config.PROFILES``)."""
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
        self._modules = modules
        self._options = {**extra, **(options or {})}
        self._host_options = host_options
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
            profile=self._profile,
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
        for host in server.hosts.values():
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

    # -- accounts, rosters, invites -------------------------------------------------------

    async def create_user(
        self,
        username: str,
        password: str | None = None,
        host: str | None = None,
        *,
        roles: Sequence[str] = (),
    ) -> Account:
        """Make an account (a random password unless given); ValueError if it exists."""
        h = self.server.hosts[host or self.host]
        password = password if password is not None else secrets.token_urlsafe(12)
        if not await h.users.create(username, password, source="test"):
            raise ValueError(f"user {username}@{h.name} exists")
        if roles:
            await h.users.set_roles(username, roles)
        account = Account(f"{username}@{h.name}", password)
        self.accounts[account.jid] = account
        return account

    async def new_user(self, prefix: str = "user", host: str | None = None) -> Account:
        """An account with a name no other test of this process uses."""
        while True:
            name = f"{prefix}{next(_user_numbers)}"
            if not await self.server.hosts[host or self.host].users.exists(name):
                return await self.create_user(name, host=host)

    async def delete_user(self, jid: str | Account) -> bool:
        parsed = JID.parse(str(jid))
        self.accounts.pop(parsed.bare, None)
        assert parsed.node is not None
        return await self.server.hosts[parsed.domain].users.delete(parsed.node, source="test")

    async def add_contact(
        self,
        owner: str | Account,
        contact: str | Account,
        subscription: str = "both",
        *,
        name: str | None = None,
        groups: Sequence[str] = (),
        mutual: bool = True,
    ) -> None:
        """Put ``contact`` on ``owner``'s roster with ``subscription`` (none, to, from,
        both); with ``mutual``, the contact's roster gets the matching item (``to`` on one
        side is ``from`` on the other) when the contact is an account of this server."""
        if subscription not in ("none", "to", "from", "both"):
            raise ValueError("subscription is none, to, from or both")
        a, b = JID.parse(str(owner)), JID.parse(str(contact))
        assert a.node is not None
        rosters = self.server.rosters
        await rosters.save(
            a.domain, a.node, RosterItem(b.bare, name, subscription, groups=tuple(groups))
        )
        if mutual and b.node is not None and b.domain in self.server.hosts:
            mirror = {"to": "from", "from": "to"}.get(subscription, subscription)
            await rosters.save(b.domain, b.node, RosterItem(a.bare, None, mirror))

    async def roster(self, owner: str | Account) -> dict[str, RosterItem]:
        jid = JID.parse(str(owner))
        assert jid.node is not None
        return await self.server.rosters.items(jid.domain, jid.node)

    def invites(self, host: str | None = None) -> Any:
        """The invites API of a host (``modules=[..., "invites"]``): ``create_account()``,
        ``create_contact()``, ``create_reset()`` (each with ``token=`` to choose the token,
        ``ttl=`` its life in seconds), ``find()``, ``revoke()``; expiry follows ``clock``."""
        module = self.server.hosts[host or self.host].modules.get("invites")
        if module is None:
            raise ValueError("the invites module is not enabled")
        return module.api

    async def create_invite(
        self,
        kind: str = "account",
        *,
        token: str | None = None,
        username: str | None = None,
        inviter: str | None = None,
        roles: Sequence[str] = (),
        groups: Sequence[str] = (),
        ttl: int | None = None,
        max_uses: int | None = None,
        host: str | None = None,
    ) -> Any:
        """An invite of ``kind``: ``account`` (any name, or ``username``), ``contact``
        (``inviter``'s contact; with ``username``, it may create that account first),
        ``account-and-contact``, or ``reset`` (``username``'s password)."""
        api = self.invites(host)
        if kind == "account":
            return await api.create_account(
                username, roles=list(roles), groups=list(groups), ttl=ttl, token=token,
                reusable=max_uses is not None, max_uses=max_uses,
            )  # fmt: skip
        if kind in ("contact", "account-and-contact"):
            if inviter is None:
                raise ValueError("a contact invite needs an inviter")
            return await api.create_contact(
                JID.parse(str(inviter)).node or str(inviter), ttl=ttl, token=token,
                allow_registration=kind == "account-and-contact", username=username,
            )  # fmt: skip
        if kind == "reset":
            if username is None:
                raise ValueError("a reset invite needs the username")
            return await api.create_reset(username, ttl=ttl, token=token)
        raise ValueError("kind is account, contact, account-and-contact or reset")

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
        for host in server.hosts.values():
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
        for host in server.hosts.values():
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

    # -- waiting --------------------------------------------------------------------------

    async def wait_for(
        self,
        what: str | Callable[[Record], bool],
        timeout: float = 5.0,
        *,
        since: Mark | None = None,
    ) -> Any:
        """Wait until the server fires the event named ``what`` (``user-registered``,
        ``invite-created``, ``resource-bind``…: returns its payload) or, for a matcher
        (``minixmpp.testing.match("message", type="chat")``, or any callable taking a
        Record), until such an element passes either way (returns the Record). What happened
        since ``since`` (default: the start or the last reset) counts, so there is no race
        with what the test did just before; AssertionError after ``timeout`` seconds."""

        def found() -> Any:
            if isinstance(what, str):
                payloads = self.traffic.events_named(what, since=since)
                return payloads[0] if payloads else None
            records = self.traffic.find(what, since=since)
            return records[0] if records else None

        return await self._until(found, timeout, repr(what))

    async def _until(self, found: Any, timeout: float, what: str) -> Any:
        result = found()
        if result is not None:
            return result
        changed = asyncio.Event()
        self.traffic.changed.append(changed.set)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await changed.wait()
                    changed.clear()
                    result = found()
                    if result is not None:
                        return result
        except TimeoutError:
            raise AssertionError(f"nothing like {what} within {timeout} s") from None
        finally:
            self.traffic.changed.remove(changed.set)

    async def idle(self, timeout: float = 5.0) -> None:
        """Wait until the server has nothing left to do: no input unread on any socket, no
        stream handling anything, no background task, no output unsent. Bounded by
        ``timeout`` (AssertionError past it)."""
        server = self.server
        quiet = 0
        async with asyncio.timeout(timeout):
            while quiet < 3:
                await asyncio.sleep(0)
                if self._busy(server):
                    quiet = 0
                else:
                    quiet += 1

    def _busy(self, server: Server) -> bool:
        if any(not t.done() for t in server._tasks):
            return True
        for conn in server.connections:
            if conn.busy or conn._out:
                return True
            transport = conn.transport
            sock = transport.get_extra_info("socket") if transport is not None else None
            if sock is not None and _unread(sock) > 0:
                return True
        return False

    async def assert_nothing_sent_to(
        self,
        jid: str | Account,
        matcher: Matcher = None,
        *,
        within: float = 5.0,
        since: Mark | None = None,
        **attrs: str | None,
    ) -> None:
        """Fail if the server sent ``jid`` (bare: any resource) anything matching since
        ``since``; waits until the server is idle (at most ``within`` seconds), not a fixed
        time."""
        with contextlib.suppress(TimeoutError):  # still busy: check what was sent so far
            await self.idle(within)
        got = [r for r in self.traffic.received_by(str(jid), matcher, since=since, **attrs)]
        got = [r for r in got if r.element is not None and r.tag in ("message", "presence", "iq")]
        if got:
            shown = "\n".join(r.text for r in got[:10])
            raise AssertionError(f"{jid} was sent {len(got)} stanza(s):\n{shown}")

    def received_by(
        self,
        jid: str | Account,
        matcher: Matcher = None,
        *,
        since: Mark | None = None,
        **attrs: str | None,
    ) -> list[Record]:
        """What the server sent ``jid`` (``traffic.received_by``)."""
        return self.traffic.received_by(str(jid), matcher, since=since, **attrs)


def _unread(sock: socket.socket) -> int:
    """Bytes the kernel holds for ``sock`` that nobody read yet."""
    with contextlib.suppress(OSError, ValueError):
        buf = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
        return int(struct.unpack("i", buf)[0])
    return 0
