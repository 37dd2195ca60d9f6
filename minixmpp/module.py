"""Modules: ``Module`` is the API a module sees (loader.py finds, loads and unloads them).

A module is a file ``mod_<name>.py``, or a package folder ``mod_<name>/`` whose ``__init__.py``
may import helper files beside it relatively (``from ._store import Invites``), on one of the
``plugin_paths`` or among the built-in modules. It has a function ``load(module) -> api``;
whatever ``load`` returns is what ``module.depends("<name>")`` gives other modules. Typed
options are a dataclass named ``Options`` in the module (the loader reads it before loading, so
``check-config`` can validate option names and values without loading anything). An optional
``unload(module)`` runs on unload.

Everything a module registers through its ``Module`` (hooks, items, features, timers) is
recorded, and unloading removes it all: modules never unregister by hand.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import types
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, overload

from minixmpp.clock import Clock, Timer
from minixmpp.config import GlobalOptions, HostConfig, HostOptions, convert
from minixmpp.errors import ModuleError as ModuleError  # re-exported for module authors
from minixmpp.events import CONFIG_RELOADED, SERVER_RESETTING, EventName
from minixmpp.events import StanzaEvent as StanzaEvent  # re-exported for module authors
from minixmpp.jid import JID, InvalidJID
from minixmpp.roster import Rosters
from minixmpp.storage import ArchiveStore, KeyValueStore, MapStore, Transaction


class Clearable(Protocol):
    def clear(self) -> None: ...


if TYPE_CHECKING:
    import ssl

    from lxml import etree

    from minixmpp.accounts import Users
    from minixmpp.connection import Connection
    from minixmpp.framing import Framing
    from minixmpp.host import Host
    from minixmpp.loader import Loader
    from minixmpp.session import Session

T = TypeVar("T")
P = TypeVar("P")
R = TypeVar("R")
Handler = Callable[[Any], Awaitable[Any]]

log = logging.getLogger("minixmpp.module")


class Module:
    """What a module sees. One instance per (host, module)."""

    def __init__(self, name: str, host: Host, loader: Loader, code: types.ModuleType) -> None:
        self.name = name
        self.host = host.name
        self.log = logging.getLogger(f"minixmpp.mod.{name}")
        self.api: Any = None
        self._host = host
        self._loader = loader
        self._code = code
        self._hooks: list[tuple[str, Handler]] = []
        self._items: list[tuple[str, Any]] = []
        self._timers: list[Timer | asyncio.Task[None]] = []  # cancelled on unload
        self._deletion_steps: list[Any] = []
        self._log_secrets: list[re.Pattern[str]] = []

    # -- events -------------------------------------------------------------------------

    @overload
    def hook(  # type: ignore[overload-overlap]  # an EventName is a str: the first one wins
        self, event: EventName[P], priority: int = 0
    ) -> Callable[[Callable[[P], Awaitable[R]]], Callable[[P], Awaitable[R]]]: ...

    @overload
    def hook(
        self, event: str, priority: int = 0
    ) -> Callable[
        [Callable[[StanzaEvent], Awaitable[R]]], Callable[[StanzaEvent], Awaitable[R]]
    ]: ...

    def hook(self, event: str, priority: int = 0) -> Callable[[Any], Any]:
        """Decorator: run the handler when ``event`` fires on this host. A domain event's
        handler gets its payload type (``EventName[P]``); a stanza event's a ``StanzaEvent``."""

        def register(handler: Handler) -> Handler:
            self._host.events.hook(event, handler, priority)
            self._hooks.append((event, handler))
            return handler

        return register

    @overload
    async def fire(self, event: EventName[P], payload: P) -> Any: ...
    @overload
    async def fire(self, event: str, payload: StanzaEvent) -> Any: ...

    async def fire(self, event: str, payload: Any) -> Any:
        return await self._host.events.fire(event, payload)

    # -- items, disco ---------------------------------------------------------------------

    def add_item(self, kind: str, item: Any) -> None:
        """Offer ``item`` under ``kind`` (e.g. an ad-hoc command); see ``items()``."""
        self._host.items.setdefault(kind, []).append(item)
        self._items.append((kind, item))

    def provides(self, kind: str, item: Any) -> None:
        """Prosody's name for ``add_item``: ``provides("net", NetService(...))`` opens a
        listening service, ``provides("http", Route(...))`` serves a path (mod_http)."""
        self.add_item(kind, item)

    def items(self, kind: str) -> list[Any]:
        """Every item of ``kind`` that any module on this host offers."""
        return list(self._host.items.get(kind, ()))

    def add_feature(self, var: str) -> None:
        """A disco#info feature of the host (XEP-0030)."""
        self.add_item("feature", var)

    def add_account_feature(self, var: str) -> None:
        """A disco#info feature of every account on the host."""
        self.add_item("account-feature", var)

    def add_log_secret(self, pattern: re.Pattern[str]) -> None:
        """Text matching ``pattern`` (a token this module hands out) is cut from the wire log
        wherever it is, keeping the pattern's first group (say, the first characters)."""
        secrets = self._host.server.log_secrets
        if pattern not in secrets:
            secrets.append(pattern)
            self._log_secrets.append(pattern)

    def add_identity(self, category: str, type: str, name: str | None = None) -> None:
        self.add_item("identity", (category, type, name))

    # -- other modules, options, storage -------------------------------------------------

    def depends(self, name: str) -> Any:
        """Load ``name`` on this host if needed and return its API."""
        return self._loader.load(self._host, name, required_by=self.name).api

    def options(self, cls: type[T]) -> T:
        """This module's options for this host, typed by ``cls`` (the module's ``Options``).
        Read once in ``load``; read again in a ``config-reloaded`` hook, they change live."""
        return option_values(self._host.config, cls, self.name)

    @property
    def follows_reloads(self) -> bool:
        """It hooks ``config-reloaded``: its options change on a reload, not at a restart."""
        return any(event == CONFIG_RELOADED for event, _ in self._hooks)

    @property
    def host_options(self) -> HostOptions:
        """The core options (``HostOptions``) in force on this host."""
        return self._host.config.options

    @property
    def server_options(self) -> GlobalOptions:
        """The server-wide core options (``GlobalOptions``)."""
        return self._host.server_options

    @property
    def secret(self) -> bytes:
        """A random server secret, stable across restarts (kept in the database)."""
        return self._host.secret

    @overload
    def open_store(self, name: str, kind: Literal["keyval"] = "keyval") -> KeyValueStore: ...
    @overload
    def open_store(self, name: str, kind: Literal["map"]) -> MapStore: ...
    @overload
    def open_store(self, name: str, kind: Literal["archive"]) -> ArchiveStore: ...

    def open_store(self, name: str, kind: str = "keyval") -> Any:
        """A store of this host (storage/kinds.py): ``keyval`` (one value per user), ``map``
        (values by user and key) or ``archive`` (items per user, in order, by time and id).
        What a store holds under a username is deleted with that account."""
        storage = self._host.storage
        if kind == "keyval":
            return storage.keyval(self.host, name)
        if kind == "map":
            return storage.map(self.host, name)
        if kind == "archive":
            return storage.archive(self.host, name)
        raise ValueError(f"unknown store kind {kind!r}")

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """``async with module.transaction() as tx``: store operations given ``tx=tx`` commit
        together, or not at all if the block raises."""
        return self._host.storage.transaction()

    def delete_with_account(self, step: Callable[[Transaction, str], Awaitable[None]]) -> None:
        """``await step(tx, username)`` runs inside the transaction that deletes an account of
        this host, before its stores' rows go: for data kept under other keys than its name
        (e.g. invites it issued)."""
        host = self.host

        async def on_this_host(tx: Transaction, account_host: str, username: str) -> None:
            if account_host == host:
                await step(tx, username)

        self._host.storage.user_deletion_steps.append(on_this_host)
        self._deletion_steps.append(on_this_host)

    @property
    def host_type(self) -> str:
        """``"local"`` for a VirtualHost, ``"component"`` for a Component (Prosody's
        ``module:get_host_type()``): a component has no accounts and no client streams."""
        return "component" if self._host.config.component_module else "local"

    @property
    def children(self) -> list[str]:
        """Hosts of this server one label below this one (Prosody's ``get_children``), such as
        ``pubsub.example.com`` for ``example.com``: mod_disco lists them as items."""
        return [
            name
            for name in self._host.server.router.hosts
            if name.partition(".")[2] == self.host and name != self.host
        ]

    @property
    def users(self) -> Users:
        return self._host.users

    @property
    def rosters(self) -> Rosters:
        """Roster storage (core tables); mod_roster adds the protocol and pushes."""
        return self._host.rosters

    # -- sessions and routing --------------------------------------------------------------

    def sessions_of(self, username: str) -> list[Session]:
        """Bound sessions of a local user, in bind order."""
        return self._host.sessions.of_user(username)

    def session(self, full_jid: str) -> Session | None:
        return self._host.sessions.get(full_jid)

    def all_sessions(self) -> Iterator[Session]:
        return self._host.sessions.all()

    def register_session(self, session: Session) -> Session | None:
        """Make a freshly bound session reachable by its full JID (mod_bind); returns the
        session it replaces, if any (the caller closes that one)."""
        return self._host.sessions.add(session)

    # -- connections and TLS (for listener modules) ---------------------------------------

    def connection(self, framing: Framing, *, secure: bool = False) -> Connection:
        """A new client connection speaking XMPP over ``framing``; give it a transport with
        ``connection_made()`` (ports.Listener does), then feed it ``data_received()``."""
        return self._host.server.connection(framing, secure=secure)

    def tls_context(self, kind: str = "starttls") -> ssl.SSLContext:
        """``starttls``: this host's certificate; ``direct``: XEP-0368 direct TLS, the
        certificate picked by SNI among all hosts; ``https``: the same for HTTPS."""
        tls = self._host.server.tls
        if kind == "starttls":
            return tls.context_for(self.host)
        if kind == "direct":
            return tls.direct
        if kind == "https":
            return tls.https
        raise ValueError(f"unknown TLS context {kind!r}")

    @property
    def tls_handshake_timeout(self) -> float:
        return self._host.server.tls_handshake_timeout

    @property
    def bound_ports(self) -> dict[str, list[int]]:
        """The ports each listening service got (live: filled in as services open)."""
        return self._host.server.ports.ports

    def shared(self, name: str, factory: Callable[[], T]) -> T:
        """An object this module's instances share across the server's hosts (Prosody's
        ``module:shared``), made by ``factory`` on first use."""
        store = self._host.server.shared
        key = f"{self.name}/{name}"
        if key not in store:
            store[key] = factory()
        return store[key]  # type: ignore[no-any-return]

    async def send(self, stanza: etree._Element) -> None:
        """Route a stanza from the host, as the host (Prosody's module:send)."""
        await self._host.route_from_host(stanza)

    def is_admin(self, jid: JID | str) -> bool:
        try:
            bare = (jid if isinstance(jid, JID) else JID.parse(jid)).bare
        except InvalidJID:
            return False
        if bare in self._host.admins:
            return True
        node, _, domain = bare.partition("@")
        return bool(domain) and domain == self.host and node in self._host.users.admins

    # -- timers ---------------------------------------------------------------------------

    @property
    def clock(self) -> Clock:
        """The server's clock (clock.py): ``time()``, ``monotonic()``, ``stamp()``,
        ``call_later()``, ``sleep()``. Read all time from it, so tests can freeze and move it."""
        return self._host.server.clock

    def forget_on_reset(self, *kept: Clearable) -> None:
        """Empty these in-memory caches (dicts, sets…) when the test harness resets the server
        (``server-resetting``): what they hold was read from stores that are being replaced."""

        async def forget(_event: object) -> None:
            for container in kept:
                container.clear()

        self.hook(SERVER_RESETTING)(forget)

    def add_timer(self, delay: float, callback: Callable[[], Awaitable[None] | None]) -> Timer:
        """Run ``callback`` once after ``delay`` seconds of the clock (cancelled on unload)."""
        timer = self.clock.call_later(delay, self._run_callback, callback)
        self._keep_timer(timer)
        return timer

    def every(self, interval: float, callback: Callable[[], Awaitable[None] | None]) -> None:
        """Run ``callback`` every ``interval`` seconds of the clock until unload."""
        self._keep_timer(self.clock.every(interval, callback))

    def _keep_timer(self, timer: Timer | asyncio.Task[None]) -> None:
        if len(self._timers) >= 32:  # forget those that ran
            self._timers = [
                t for t in self._timers if not (t.done if isinstance(t, Timer) else t.done())
            ]
        self._timers.append(timer)

    def _run_callback(self, callback: Callable[[], Awaitable[None] | None]) -> None:
        result = callback()
        if result is not None:
            task = asyncio.ensure_future(result)
            self._host.keep(task)

    # -- unloading ------------------------------------------------------------------------

    def _teardown(self) -> None:
        for event, handler in self._hooks:
            self._host.events.unhook(event, handler)
        for kind, item in self._items:
            items = self._host.items.get(kind, [])
            if item in items:
                items.remove(item)
        for timer in self._timers:
            timer.cancel()
        steps = self._host.storage.user_deletion_steps
        for step in self._deletion_steps:
            if step in steps:
                steps.remove(step)
        self._deletion_steps.clear()
        for pattern in self._log_secrets:
            if pattern in self._host.server.log_secrets:
                self._host.server.log_secrets.remove(pattern)
        self._log_secrets.clear()
        self._hooks.clear()
        self._items.clear()
        self._timers.clear()


def option_values(config: HostConfig, cls: type[T], module: str) -> T:
    if not dataclasses.is_dataclass(cls):
        raise ModuleError(f"module {module}: Options must be a dataclass")
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in config.raw.items() if k in names}
    kind = "Component" if config.component_module else "VirtualHost"
    where = f'module {module} on {kind} "{config.name}"'
    return convert(values, cls, where)
