"""The module loader: finds ``mod_<name>.py`` or ``mod_<name>/`` on the plugin paths and among
the built-in modules, imports each once, and loads it per host with its dependencies; unloading
undoes everything the module registered (see module.py for what a module is).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from minixmpp.config import ConfigError, HostConfig
from minixmpp.errors import ModuleError
from minixmpp.module import Module

if TYPE_CHECKING:
    from minixmpp.host import Host

T = TypeVar("T")

# Loaded on every host unless listed in modules_disabled: the c2s protocol itself.
AUTOLOAD = (
    "c2s", "tls", "saslauth", "limit_auth", "bind", "roster", "message", "presence", "offline",
)  # fmt: skip

log = logging.getLogger("minixmpp.module")


def builtin_module_dir() -> Path:
    """Built-in modules: inside the package in a wheel, ./modules in a source checkout."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "_modules", package.parent / "modules"):
        if candidate.is_dir():
            return candidate
    raise ModuleError(f"built-in modules not found next to {package}")


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

    def provider_of_admin_command(self, command: str) -> str | None:
        """The module that declares ``command`` in its ``ADMIN_COMMANDS`` (loaded or not)."""
        for name in self.available():
            try:
                declared = getattr(self.code(name), "ADMIN_COMMANDS", ())
            except ModuleError:
                continue
            if command in declared:
                return name
        return None

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
    """Modules to load on a host: the automatic ones, then modules_enabled, minus disabled.
    A Component has no automatic modules: its component_module, then its own modules_enabled."""
    disabled = set(config.options.modules_disabled)
    ordered: list[str] = []
    first = (config.component_module,) if config.component_module else AUTOLOAD
    for name in (*first, *config.options.modules_enabled):
        if name not in disabled and name not in ordered:
            ordered.append(name)
    return ordered
