"""Server: hosts, module loader, storage, and the listening services modules provide.
(``process.serve()`` runs one as the process, with its signals.)

``Server.start(listen=False)`` brings up everything but the network: the CLI uses that to run
account and invite commands in-process when no server is running.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import re
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from typing import Any

from lxml import etree

from minixmpp import admin, datalock, idle
from minixmpp.accounts import Accounts
from minixmpp.admission import AddressSet, Admission, automatic_total
from minixmpp.clock import Clock
from minixmpp.config import Config, check_unknown_keys
from minixmpp.connection import Connection, ConnectionSetup
from minixmpp.events import (
    CONFIG_RELOADED,
    SERVER_STARTED,
    SERVER_STOPPING,
    ConfigReloaded,
    ServerEvent,
)
from minixmpp.framing import Framing
from minixmpp.host import Host
from minixmpp.loader import Loader, enabled_modules
from minixmpp.module import option_values
from minixmpp.ports import NetService, PortManager
from minixmpp.reload import plan as plan_reload
from minixmpp.roster import Rosters
from minixmpp.router import Router
from minixmpp.scheduling import WriteCoalescer
from minixmpp.storage import Storage
from minixmpp.tls import TlsContexts, load_contexts

log = logging.getLogger("minixmpp.server")

DATABASE = "minixmpp.sqlite"


def check(config: Config, loader: Loader, *, warn: bool = True) -> dict[str, str]:
    """Every check start-up does before touching the network or the database.

    Raises ConfigError (unknown key, bad value) or ModuleError (module missing or broken).
    With ``warn``, options read only by modules not enabled are logged (``warn_unread``).
    Returns the declared options (``declared_options``) of built-in and enabled modules.
    """
    enabled = {name for host in config.all_hosts() for name in enabled_modules(host)}
    declared = declared_options(loader, enabled)
    check_unknown_keys(config, declared)
    for host in config.all_hosts():
        for name in enabled_modules(host):
            cls = loader.options_class(name)
            if cls is not None:
                option_values(host, cls, name)
    if warn:
        warn_unread(config, declared, enabled)
    return declared


def declared_options(loader: Loader, also: AbstractSet[str] = frozenset()) -> dict[str, str]:
    """Option name → the module that reads it, for built-in modules and ``also``."""
    declared: dict[str, str] = {}
    for name in sorted(set(Loader([]).available()) | also):
        cls = loader.options_class(name)
        if cls is not None:
            for f in dataclasses.fields(cls):
                declared.setdefault(f.name, name)
    return declared


def warn_unread(config: Config, declared: dict[str, str], loaded: AbstractSet[str]) -> None:
    """Log each option that is set but belongs to a module not ``loaded``."""
    used = set(config.raw_global) | {k for h in config.all_hosts() for k in h.raw}
    for key in sorted(used):
        owner = declared.get(key)
        if owner is not None and owner not in loaded:
            log.warning(
                "option '%s' is set but module %s, which reads it, is not enabled", key, owner
            )


class Server:
    """The whole server. ``await start()``, then ``await stop()``."""

    # seconds without input before a stream frees its parser (idle.py): soon, so that the
    # freed parsers' memory is reused by the next ones instead of left as holes between
    # other connections' blocks; waking one costs ~5 us (bench/README.md)
    hibernate_after = 1.0

    def __init__(self, config: Config) -> None:
        self.config = config
        self.options = config.options
        self.tls_handshake_timeout = config.options.network_settings.ssl_handshake_timeout
        self.router = Router()
        self.clock = Clock()  # what modules read the time from; tests move it
        # Called with (connection, incoming, data) for every element in and every write out,
        # when set: the test harness's traffic log (minixmpp.testing). Incoming data is
        # redacted as for logs (no passwords, no SASL payloads).
        self.wiretap: Callable[[Connection, bool, bytes | str], None] | None = None
        # When set, sees each element before it is written; True takes it (the harness's
        # fault injection delays or drops chosen replies).
        self.intercept: Callable[[Connection, etree._Element], bool] | None = None
        self.hosts: dict[str, Host] = {}  # the VirtualHosts: accounts and client connections
        self.components: dict[str, Host] = {}  # internal components (config.py), e.g. pubsub
        self.connections: set[Connection] = set()
        total = self.options.c2s_max_unauthed
        self.admission = Admission(
            per_address=self.options.c2s_max_unauthed_per_ip,
            total=automatic_total(open_files_limit()) if total is None else total,
            unlimited=AddressSet(self.options.unlimited_ips),
        )
        self.coalescer = WriteCoalescer(asyncio.get_running_loop())
        self.loader = Loader([config.resolve(p) for p in config.options.plugin_paths])
        self.tls: TlsContexts
        self.storage: Storage | None = None
        self.accounts: Accounts
        self.rosters: Rosters
        self.secret = b""
        self.ports = PortManager()
        self.shared: dict[str, Any] = {}  # Module.shared()
        self.log_secrets: list[re.Pattern[str]] = []  # Module.add_log_secret()
        self.stop_reason: str | None = None  # set once stopping
        self._tasks: set[asyncio.Future[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._admin: admin.AdminSocket | None = None
        self._data_lock: datalock.DataLock | None = None
        self._stopped = asyncio.Event()
        self._all_closed = asyncio.Event()
        self._stopping = False

    def all_hosts(self) -> list[Host]:
        """The VirtualHosts, then the Components."""
        return [*self.hosts.values(), *self.components.values()]

    @property
    def c2s_ports(self) -> list[int]:
        return self.ports.ports.get("c2s", [])

    @property
    def direct_tls_ports(self) -> list[int]:
        return self.ports.ports.get("c2s_direct_tls", [])

    async def start(
        self, *, listen: bool = True, admin_socket: bool = True, lock: bool = True
    ) -> None:
        """``listen=False``: everything but the network, for a CLI command run in-process.
        ``lock``: take the data folder's lock (datalock.py), as a server, or with
        ``listen=False`` as a command; DataFolderBusy when another process holds it."""
        declared = check(self.config, self.loader, warn=False)  # warned once loaded
        if lock:
            self._data_lock = await self._lock_data_folder(server=listen)
        try:
            if listen:
                self.tls = load_contexts(self.config)
            self.storage = await Storage.open(self.config.data_path / DATABASE)
            self.secret = await self.storage.meta("sasl-secret", os.urandom(32))
            self.accounts = Accounts(self.storage, self.options.default_iteration_count)
            self.rosters = Rosters(self.storage)
            await self.rosters.setup()
            for host_config in self.config.all_hosts():
                host = Host(
                    host_config,
                    server=self,
                    storage=self.storage,
                    accounts=self.accounts,
                    router=self.router,
                    tasks=self._tasks,
                    secret=self.secret,
                    rosters=self.rosters,
                )
                if host_config.component_module:
                    self.components[host.name] = host
                else:
                    self.hosts[host.name] = host
                    await host.users.load_roles()
                self.router.hosts[host.name] = host
            for host in self.all_hosts():
                for name in enabled_modules(host.config):
                    self.loader.load(host, name)
            loaded = {name for host in self.all_hosts() for name in host.modules}
            warn_unread(self.config, declared, loaded)  # any other option was refused already
            if listen:
                for host in self.hosts.values():
                    for service in host.items.get("net", ()):
                        assert isinstance(service, NetService)
                        await self.ports.open(service)
                self._sweeper = asyncio.get_running_loop().create_task(idle.sweep(self))
            if admin_socket:
                self._admin = await admin.AdminSocket.start(self)
            for host in self.all_hosts():
                await host.events.fire(SERVER_STARTED, ServerEvent(host.name))
        except BaseException:
            await self._teardown()
            raise
        if listen:
            services = ", ".join(
                f"{name} ports {ports}" for name, ports in self.ports.ports.items()
            )
            log.info("serving %s on %s", ", ".join(self.router.hosts), services or "no ports")

    async def reload(
        self, config: Config, *, configure_logging: Callable[[Config], None] | None = None
    ) -> None:
        """Run with ``config`` (which passed ``check()``) from now on, as far as it can change
        live (reload.py), and fire ``config-reloaded`` on every host; each changed option that
        waits for a restart is logged. ``configure_logging`` opens its log sinks. ConfigError,
        with nothing changed, when a loaded module's options are invalid in it or a log sink
        cannot be opened."""
        plan = plan_reload(self.config, config, self._module_keys())
        for name, host_config in plan.config.hosts.items():
            for module in self.hosts[name].modules:
                cls = self.loader.options_class(module)
                if cls is not None:
                    option_values(host_config, cls, module)
        if configure_logging is not None:
            configure_logging(plan.config)
        for key in plan.restart:
            log.warning("option '%s' changed: takes effect after a restart", key)
        for name in plan.hosts_added:
            log.warning('VirtualHost "%s" added: takes effect after a restart', name)
        for name in plan.hosts_removed:
            log.warning('VirtualHost "%s" removed: takes effect after a restart', name)
        for name in plan.components_changed:
            log.warning('Component "%s" changed: takes effect after a restart', name)
        self.config = plan.config
        self.options = plan.config.options
        self.accounts.iterations = self.options.default_iteration_count
        for name, host in self.hosts.items():
            host.reconfigure(plan.config.hosts[name], self.options)
        for name, host in self.hosts.items():
            try:
                await host.events.fire(CONFIG_RELOADED, ConfigReloaded(name, plan.live[name]))
            except Exception:
                log.exception("a config-reloaded handler failed on %s", name)
        changed = ", ".join(plan.changed_now) or "none"
        log.info("configuration reloaded from %s; options changed now: %s", config.path, changed)

    def _module_keys(self) -> dict[str, dict[str, bool]]:
        """Per host: the options of its loaded modules -> whether they change live."""
        keys: dict[str, dict[str, bool]] = {}
        for name, host in self.hosts.items():
            per_host: dict[str, bool] = {}
            keys[name] = per_host
            for module in host.modules.values():
                cls = self.loader.options_class(module.name)
                for f in dataclasses.fields(cls) if cls is not None else ():
                    per_host[f.name] = per_host.get(f.name, True) and module.follows_reloads
        return keys

    def connection(self, framing: Framing, *, secure: bool = False) -> Connection:
        """A new client connection over ``framing`` (for listener modules)."""
        return Connection(self, framing, secure=secure)

    def connection_setups(self) -> list[ConnectionSetup]:
        """What modules do to each new connection: each name once (ConnectionSetup)."""
        found: dict[str, ConnectionSetup] = {}
        for host in self.hosts.values():
            for item in host.items.get("connection-setup", ()):
                found.setdefault(item.name, item)
        return list(found.values())

    def forget(self, conn: Connection) -> None:
        """A connection is gone (called by the connection)."""
        self.connections.discard(conn)
        if not self.connections:
            self._all_closed.set()

    def keep(self, task: asyncio.Future[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self, timeout: float = 5.0, reason: str | None = None) -> None:
        """Stop listening, close every stream with system-shutdown, release everything."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        self.stop_reason = reason
        for host in self.all_hosts():
            try:
                await host.events.fire(SERVER_STOPPING, ServerEvent(host.name))
            except Exception:
                log.exception("server-stopping handler failed on %s", host.name)
        # Streams close first (a connection accepted meanwhile is closed as it is made), then
        # the listening services: an HTTP server waits for its WebSocket handlers to end.
        for conn in list(self.connections):
            conn.close("system-shutdown", reason)
        if self.connections:
            self._all_closed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_closed.wait(), timeout)
        for conn in list(self.connections):
            conn.abort()
        await self.ports.close()
        await self._teardown()
        self._stopped.set()
        log.info("stopped")

    async def _teardown(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._admin is not None:
            await self._admin.close()
            self._admin = None
        await self.ports.close()
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=2.0)
            for task in pending:
                task.cancel()
        for host in self.all_hosts():
            for name in reversed(list(host.modules)):
                try:
                    self.loader.unload(host, name)
                except Exception:
                    log.exception("unloading %s from %s failed", name, host.name)
        if self.storage is not None:
            await self.storage.close()
            self.storage = None
        if self._data_lock is not None:
            self._data_lock.release()
            self._data_lock = None

    async def _lock_data_folder(self, *, server: bool) -> datalock.DataLock:
        folder = self.config.data_path
        if server:
            return await datalock.acquire_for_server(folder)
        return datalock.DataLock.try_acquire(folder, datalock.COMMAND)

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def wait_stopped(self) -> None:
        await self._stopped.wait()


OPEN_FILES_WANTED = 4096  # fewer, and a few thousand clients exhaust the server's descriptors


def open_files_limit() -> int:
    """The soft limit on open files; -1 when there is none (or no such thing)."""
    try:
        import resource
    except ImportError:  # not a Unix
        return -1
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return -1 if soft == resource.RLIM_INFINITY else soft


def raise_open_files_limit(wanted: int = OPEN_FILES_WANTED) -> int:
    """Raise the soft limit on open files to the hard limit (every connection is a file
    descriptor); warn when it stays under ``wanted``. Returns the soft limit now in force."""
    try:
        import resource
    except ImportError:  # not a Unix
        return -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:  # e.g. macOS refuses RLIM_INFINITY
            log.warning("cannot raise the open files limit from %d to %d: %s", soft, hard, exc)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        log.warning(
            "the open files limit is %d (hard limit %d): fewer than %d clients can connect;"
            " raise it to at least %d (ulimit -n, or LimitNOFILE= in a systemd unit)",
            soft,
            hard,
            soft,
            wanted,
        )
    return soft
