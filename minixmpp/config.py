"""server.toml -> typed, frozen options (Prosody's model and option names, in TOML).

Global options sit at the top level; ``[VirtualHost."name"]`` tables override them per host.
``[Component."name"]`` tables (Prosody's ``Component "name" "module"``) declare internal
components: hosts with no accounts and no client connections, served by the module named in
their ``component_module`` (e.g. ``pubsub``) plus those in their own ``modules_enabled``.
Core options are declared here: ``GlobalOptions`` only make sense once per process (ports,
paths), ``HostOptions`` may also be set per host. Modules declare their own options as a
dataclass named ``Options`` in the module file; the loader checks those (module.py). A key that
nothing declares, or a value of the wrong type, is a ``ConfigError`` naming the file and key.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

import msgspec

from minixmpp.admission import parse_networks
from minixmpp.jid import JID, InvalidJID, nameprep

T = TypeVar("T")

# Types for module options with a lower bound: checked with the types, so also by check-config.
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]


class ConfigError(Exception):
    """The configuration is invalid; ``str()`` is a message for the operator."""


class SslOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    certificate: str
    key: str


class NetworkSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Prosody's ``network_settings`` (the ones minixmpp has)."""

    # seconds a TLS handshake may take: a client that asks its user to accept a certificate
    # waits for them (Prosody's default)
    ssl_handshake_timeout: float = 60.0


class GlobalOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Options that only make sense once per server (Prosody names where Prosody has them)."""

    interfaces: list[str] = msgspec.field(default_factory=lambda: ["127.0.0.1", "::1"])
    c2s_ports: list[int] = msgspec.field(default_factory=lambda: [5222])
    c2s_direct_tls_ports: list[int] = msgspec.field(default_factory=lambda: [5223])
    data_path: str = "data"
    plugin_paths: list[str] = msgspec.field(default_factory=list)
    log: str | dict[str, str] = "*console"
    c2s_stanza_size_limit: int = 256 * 1024
    c2s_unauthed_stanza_size_limit: int = 10000
    c2s_timeout: int = 300
    c2s_idle_timeout: int = 900
    c2s_close_timeout: int = 5
    c2s_max_auth_failures: int = 5
    # Unauthenticated connections (admission.py): per address (IPv6: per /64), and in all
    # (None: half the open-files limit, at most 10 000); 0 turns a cap off.
    c2s_max_unauthed_per_ip: int = 32
    c2s_max_unauthed: int | None = None
    # Addresses and ranges without per-address limits (loopback: test suites)
    unlimited_ips: list[str] = msgspec.field(default_factory=lambda: ["127.0.0.1", "::1"])
    default_iteration_count: int = 10000
    network_backend: str = "asyncio"
    network_settings: NetworkSettings = msgspec.field(default_factory=NetworkSettings)


class HostOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Options a VirtualHost may override."""

    modules_enabled: list[str] = msgspec.field(default_factory=list)
    modules_disabled: list[str] = msgspec.field(default_factory=list)
    admins: list[str] = msgspec.field(default_factory=list)
    c2s_require_encryption: bool = True
    allow_registration: bool = False
    certificates: str = "certs"
    ssl: SslOptions | None = None
    max_resources: int = 10


GLOBAL_KEYS = frozenset(GlobalOptions.__struct_fields__)
HOST_KEYS = frozenset(HostOptions.__struct_fields__)
LOG_LEVELS = ("debug", "info", "warn", "warning", "error")


@dataclass(frozen=True)
class HostConfig:
    name: str
    options: HostOptions
    raw: dict[
        str, Any
    ]  # global values overlaid with this host's table: module options come from here
    component_module: str | None = None  # a Component: the module that serves it

    @property
    def admins(self) -> frozenset[str]:
        return frozenset(self.options.admins)


@dataclass(frozen=True)
class Config:
    path: Path
    options: GlobalOptions
    hosts: dict[str, HostConfig]
    raw_global: dict[str, Any] = field(default_factory=dict)
    components: dict[str, HostConfig] = field(default_factory=dict)

    def all_hosts(self) -> list[HostConfig]:
        """The VirtualHosts, then the Components."""
        return [*self.hosts.values(), *self.components.values()]

    @property
    def base(self) -> Path:
        return self.path.parent

    def resolve(self, value: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base / p

    @property
    def data_path(self) -> Path:
        return self.resolve(self.options.data_path)


def convert(values: dict[str, Any], cls: type[T], where: str) -> T:
    """Type-check ``values`` into ``cls``; a ConfigError names the key and what was expected."""
    try:
        return msgspec.convert(values, cls, strict=True)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{where}: {_describe(exc)}") from None


def _describe(exc: msgspec.ValidationError) -> str:
    message = str(exc)
    text, sep, path = message.rpartition(" - at `$.")
    if not sep:
        return message
    key = path.rstrip("`")
    return f"option '{key}': {text[0].lower()}{text[1:]}"


def load(path: Path) -> Config:
    """Read and check the core options of ``path``. Module options are checked by the loader."""
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return from_dict(data, path)


def from_dict(data: dict[str, Any], path: Path) -> Config:
    data = dict(data)
    vhosts = data.pop("VirtualHost", {})
    if not isinstance(vhosts, dict):
        raise ConfigError(
            f'{path}: VirtualHost must be a table of tables: [VirtualHost."example.com"]'
        )
    components = data.pop("Component", {})
    if not isinstance(components, dict):
        raise ConfigError(
            f'{path}: Component must be a table of tables: [Component."pubsub.example.com"]'
        )
    global_opts = convert(
        {k: v for k, v in data.items() if k in GLOBAL_KEYS}, GlobalOptions, str(path)
    )
    _check_global(global_opts, path)
    host_level = {k: v for k, v in data.items() if k not in GLOBAL_KEYS}
    if not vhosts:
        raise ConfigError(f'{path}: no VirtualHost defined; add e.g. [VirtualHost."localhost"]')
    hosts: dict[str, HostConfig] = {}
    for name, table in vhosts.items():
        where = f'{path}: VirtualHost "{name}"'
        host, raw = _host_table(name, table, where, host_level)
        options = convert({k: v for k, v in raw.items() if k in HOST_KEYS}, HostOptions, where)
        _check_admins(options.admins, where)
        hosts[host] = HostConfig(host, options, raw)
    parts: dict[str, HostConfig] = {}
    for name, table in components.items():
        where = f'{path}: Component "{name}"'
        host, raw = _host_table(name, table, where, host_level)
        if host in hosts:
            raise ConfigError(f"{where}: already a VirtualHost")
        module = raw.pop("component_module", None)
        if not isinstance(module, str) or not module:
            raise ConfigError(
                f"{where}: option 'component_module' (the module that serves it, e.g."
                ' "pubsub") is required'
            )
        # As in Prosody, a component loads only the modules its own table names.
        raw["modules_enabled"] = table.get("modules_enabled", [])
        options = convert({k: v for k, v in raw.items() if k in HOST_KEYS}, HostOptions, where)
        _check_admins(options.admins, where)
        parts[host] = HostConfig(host, options, raw, component_module=module)
    return Config(path=path, options=global_opts, hosts=hosts, raw_global=data, components=parts)


def _host_table(
    name: str, table: Any, where: str, host_level: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """A VirtualHost's or Component's prepared name, and its options over the globals."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    try:
        host = nameprep(name, strict=True)
    except InvalidJID:
        raise ConfigError(f"{where}: not a valid domain name") from None
    if host != name:
        raise ConfigError(f"{where}: write the host name in its prepared form {host!r}")
    for key in table:
        if key in GLOBAL_KEYS:
            raise ConfigError(f"{where}: option '{key}' can only be set globally")
    return host, {**host_level, **table}


def _check_global(opts: GlobalOptions, path: Path) -> None:
    for key in ("c2s_ports", "c2s_direct_tls_ports"):
        for port in getattr(opts, key):
            if not 0 <= port <= 65535:
                raise ConfigError(f"{path}: option '{key}': {port} is not a port number")
    for key in ("c2s_timeout", "c2s_idle_timeout", "c2s_close_timeout"):
        if getattr(opts, key) < 0:
            raise ConfigError(f"{path}: option '{key}': must not be negative")
    for key in ("c2s_stanza_size_limit", "c2s_unauthed_stanza_size_limit"):
        if getattr(opts, key) < 10000:
            raise ConfigError(f"{path}: option '{key}': must be at least 10000")
    if opts.default_iteration_count < 4096:
        raise ConfigError(f"{path}: option 'default_iteration_count': must be at least 4096")
    for key in ("c2s_max_unauthed_per_ip", "c2s_max_unauthed"):
        value = getattr(opts, key)
        if value is not None and value < 0:
            raise ConfigError(f"{path}: option '{key}': must not be negative")
    try:
        parse_networks(opts.unlimited_ips)
    except ValueError as exc:
        raise ConfigError(f"{path}: option 'unlimited_ips': {exc}") from None
    if opts.c2s_max_auth_failures < 1:
        raise ConfigError(f"{path}: option 'c2s_max_auth_failures': must be at least 1")
    if opts.network_settings.ssl_handshake_timeout <= 0:
        raise ConfigError(
            f"{path}: option 'network_settings.ssl_handshake_timeout': must be positive"
        )
    if opts.network_backend not in ("asyncio", "uvloop"):
        raise ConfigError(f'{path}: option \'network_backend\': expected "asyncio" or "uvloop"')
    sinks = {"info": opts.log} if isinstance(opts.log, str) else opts.log
    for level in sinks:
        if level not in LOG_LEVELS:
            raise ConfigError(
                f"{path}: option 'log': unknown level {level!r} (use {', '.join(LOG_LEVELS)})"
            )


def _check_admins(admins: list[str], where: str) -> None:
    """An admin is an account: a bare JID (Prosody compares the prepared bare JID, so an entry
    with a resource or one that is not a JID would silently never match)."""
    for entry in admins:
        try:
            jid = JID.parse(entry)
        except InvalidJID:
            raise ConfigError(f"{where}: option 'admins': {entry!r} is not a valid JID") from None
        if jid.resource is not None or jid.node is None:
            raise ConfigError(f"{where}: option 'admins': {entry!r} is not a bare user@host JID")


def check_unknown_keys(config: Config, declared: dict[str, str]) -> None:
    """Refuse keys nobody declared. ``declared`` maps module option names to their module."""
    known = GLOBAL_KEYS | HOST_KEYS | declared.keys()
    for key in config.raw_global:
        if key not in known:
            raise ConfigError(f"{config.path}: unknown option '{key}'{_hint(key, known)}")
    for host in config.all_hosts():
        kind = "Component" if host.component_module else "VirtualHost"
        for key in host.raw:
            if key not in known:
                raise ConfigError(
                    f'{config.path}: {kind} "{host.name}": unknown option'
                    f" '{key}'{_hint(key, known)}"
                )


def _hint(key: str, known: frozenset[str] | set[str] | Any) -> str:
    import difflib

    close = difflib.get_close_matches(key, sorted(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
