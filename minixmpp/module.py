"""Modules: ``Module`` is the API a module sees; ``Loader`` finds, loads and unloads them.

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
import importlib.util
import logging
import sys
import types
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

from minixmpp.config import ConfigError, GlobalOptions, HostConfig, HostOptions, convert
from minixmpp.events import EventName
from minixmpp.events import StanzaEvent as StanzaEvent  # re-exported for module authors
from minixmpp.jid import JID, InvalidJID
from minixmpp.roster import Rosters
from minixmpp.storage import KeyValueStore, MapStore

if TYPE_CHECKING:
    import ssl

    from lxml import etree

    from minixmpp.accounts import Users
    from minixmpp.connection import Connection
    from minixmpp.framing import Framing
    from minixmpp.host import Host
    from minixmpp.session import Session

T = TypeVar("T")
P = TypeVar("P")
R = TypeVar("R")
Handler = Callable[[Any], Awaitable[Any]]

# Loaded on every host unless listed in modules_disabled: the c2s protocol itself.
AUTOLOAD = (
    "c2s", "tls", "saslauth", "limit_auth", "bind", "roster", "message", "presence", "offline",
)  # fmt: skip

log = logging.getLogger("minixmpp.module")


class ModuleError(Exception):
    """A module cannot be found, imported or loaded; the message names it and says why."""


def builtin_module_dir() -> Path:
    """Built-in modules: inside the package in a wheel, ./modules in a source checkout."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "_modules", package.parent / "modules"):
        if candidate.is_dir():
            return candidate
    raise ModuleError(f"built-in modules not found next to {package}")


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
        self._timers: list[asyncio.TimerHandle | asyncio.Task[None]] = []
        self._migrations: list[tuple[str, Sequence[str]]] = []
        self._options: Any = None

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

    def add_identity(self, category: str, type: str, name: str | None = None) -> None:
        self.add_item("identity", (category, type, name))

    # -- other modules, options, storage -------------------------------------------------

    def depends(self, name: str) -> Any:
        """Load ``name`` on this host if needed and return its API."""
        return self._loader.load(self._host, name, required_by=self.name).api

    def options(self, cls: type[T]) -> T:
        """This module's options for this host, typed by ``cls`` (the module's ``Options``)."""
        if self._options is None or not isinstance(self._options, cls):
            self._options = option_values(self._host.config, cls, self.name)
        return self._options

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

    def open_store(self, name: str, kind: str = "keyval") -> KeyValueStore | MapStore:
        """A per-host store: ``keyval`` (one value per user) or ``map`` (values by key)."""
        storage = self._host.storage
        if kind == "keyval":
            return storage.keyval(self.host, name)
        if kind == "map":
            return storage.map(self.host, name)
        raise ValueError(f"unknown store kind {kind!r}")

    def migrate(self, component: str, migrations: Sequence[str]) -> None:
        """Own tables: the loader applies these migrations before the server serves."""
        self._migrations.append((component, migrations))

    def own_user_rows(
        self, table: str, host_column: str = "host", user_column: str = "username"
    ) -> None:
        """Rows of ``table`` belong to an account and go when it is deleted."""
        self._host.storage.own_user_rows(table, host_column, user_column)

    @property
    def users(self) -> Users:
        return self._host.users

    @property
    def rosters(self) -> Rosters:
        """Roster storage (core tables); mod_roster adds the protocol and pushes."""
        return self._host.rosters

    @property
    def storage(self) -> Any:
        return self._host.storage

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
        ``connection_made()`` (net.Listener does), then feed it ``data_received()``."""
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

    def add_timer(self, delay: float, callback: Callable[[], Awaitable[None] | None]) -> None:
        """Run ``callback`` once after ``delay`` seconds (cancelled on unload)."""
        loop = asyncio.get_running_loop()
        self._timers.append(loop.call_later(delay, self._run_callback, callback))

    def every(self, interval: float, callback: Callable[[], Awaitable[None] | None]) -> None:
        """Run ``callback`` every ``interval`` seconds until unload."""

        async def repeat() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    result = callback()
                    if result is not None:
                        await result
                except Exception:
                    self.log.exception("periodic task failed")

        self._timers.append(asyncio.get_running_loop().create_task(repeat()))

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
        self._hooks.clear()
        self._items.clear()
        self._timers.clear()


def option_values(config: HostConfig, cls: type[T], module: str) -> T:
    if not dataclasses.is_dataclass(cls):
        raise ModuleError(f"module {module}: Options must be a dataclass")
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in config.raw.items() if k in names}
    where = f'module {module} on VirtualHost "{config.name}"'
    return convert(values, cls, where)


class Loader:
    """Finds module files, imports each once, and loads them per host."""

    def __init__(self, plugin_paths: Sequence[Path]) -> None:
        self.search_path = [*plugin_paths, builtin_module_dir()]
        self._code: dict[str, types.ModuleType] = {}

    def find(self, name: str) -> Path:
        """``mod_<name>.py`` or ``mod_<name>/__init__.py``, the first found on the path."""
        if not name.replace("_", "").isalnum():
            raise ModuleError(f"module {name!r}: invalid name")
        for folder in self.search_path:
            package = folder / f"mod_{name}" / "__init__.py"
            if package.is_file():
                return package
            candidate = folder / f"mod_{name}.py"
            if candidate.is_file():
                return candidate
        places = ", ".join(str(p) for p in self.search_path)
        raise ModuleError(
            f"module {name!r} not found (looked for mod_{name}.py and mod_{name}/ in {places})"
        )

    def code(self, name: str) -> types.ModuleType:
        """Import the module once; later calls return the same code."""
        if name in self._code:
            return self._code[name]
        path = self.find(name)
        qualname = f"minixmpp.mod.{name}"
        package = path.name == "__init__.py"
        spec = importlib.util.spec_from_file_location(
            qualname, path, submodule_search_locations=[str(path.parent)] if package else None
        )
        if spec is None or spec.loader is None:
            raise ModuleError(f"module {name!r}: cannot import {path}")
        code = importlib.util.module_from_spec(spec)
        sys.modules[qualname] = code
        try:
            spec.loader.exec_module(code)
        except Exception as exc:
            _forget(qualname)
            raise ModuleError(
                f"module {name!r} failed to import: {type(exc).__name__}: {exc}"
            ) from exc
        if not callable(getattr(code, "load", None)):
            _forget(qualname)
            raise ModuleError(f"module {name!r}: {path} has no load(module) function")
        self._code[name] = code
        return code

    def available(self) -> list[str]:
        names: set[str] = set()
        for folder in self.search_path:
            names.update(p.stem[4:] for p in folder.glob("mod_*.py"))
            names.update(p.parent.name[4:] for p in folder.glob("mod_*/__init__.py"))
        return sorted(names)

    def options_class(self, name: str) -> type | None:
        cls = getattr(self.code(name), "Options", None)
        if cls is None:
            return None
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise ModuleError(f"module {name!r}: Options must be a dataclass")
        return cls

    def load(self, host: Host, name: str, *, required_by: str | None = None) -> Module:
        """Load ``name`` on ``host`` (and what it depends on). Idempotent."""
        existing = host.modules.get(name)
        if existing is not None:
            if existing.api is _LOADING:
                raise ModuleError(f"module {name!r}: circular dependency via {required_by!r}")
            return existing
        code = self.code(name)
        module = Module(name, host, self, code)
        module.api = _LOADING
        host.modules[name] = module
        try:
            cls = getattr(code, "Options", None)
            if cls is not None:
                module.options(cls)
            module.api = code.load(module)
        except (ModuleError, ConfigError):
            module._teardown()
            del host.modules[name]
            raise
        except Exception as exc:
            module._teardown()
            del host.modules[name]
            raise ModuleError(
                f"module {name!r} failed to load on {host.name}: {type(exc).__name__}: {exc}"
            ) from exc
        log.debug("loaded module %s on %s", name, host.name)
        return module

    async def migrate(self, host: Host) -> None:
        """Apply the schema migrations loaded modules asked for."""
        for module in list(host.modules.values()):
            while module._migrations:
                component, steps = module._migrations.pop(0)
                await host.storage.migrate(component, steps)

    def unload(self, host: Host, name: str) -> None:
        module = host.modules.pop(name, None)
        if module is None:
            return
        unload = getattr(module._code, "unload", None)
        try:
            if callable(unload):
                unload(module)
        finally:
            module._teardown()
        log.debug("unloaded module %s from %s", name, host.name)


_LOADING = object()


def _forget(qualname: str) -> None:
    """Drop a module that failed to import, and its helper files, from sys.modules."""
    for key in [k for k in sys.modules if k == qualname or k.startswith(qualname + ".")]:
        del sys.modules[key]


def enabled_modules(config: HostConfig) -> list[str]:
    """Modules to load on a host: the automatic ones, then modules_enabled, minus disabled."""
    disabled = set(config.options.modules_disabled)
    ordered: list[str] = []
    for name in (*AUTOLOAD, *config.options.modules_enabled):
        if name not in disabled and name not in ordered:
            ordered.append(name)
    return ordered
