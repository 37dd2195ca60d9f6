"""What a configuration reload (SIGHUP) changes, as Prosody's ``prosodyctl reload`` does.

``plan(running, new, module_keys)`` compares the running configuration with a new one that has
passed every start-up check, and returns the configuration to run with from now on:

- options that can change live take their new values: the log sinks and levels (``LIVE``
  below), and the options of every module that follows reloads (it hooks ``config-reloaded``
  and reads its options again there);
- every other option keeps its running value until a restart, and is named in
  ``Plan.restart`` (ports, interfaces, paths, hosts, the modules loaded, TLS, and the options
  that modules read once when they load); a Component keeps its whole configuration.

Pure: no I/O and no server; ``Server.reload`` applies the plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

import msgspec

from minixmpp.config import GLOBAL_KEYS, HOST_KEYS, Config, HostConfig

# Core options that only a restart applies: listening sockets, files and folders held open,
# modules loaded, TLS contexts, and what modules read once at load.
RESTART_GLOBAL = frozenset(
    {
        "interfaces",
        "c2s_ports",
        "c2s_direct_tls_ports",
        "data_path",
        "plugin_paths",
        "network_backend",
        "network_settings",
    }
)
RESTART_HOST = frozenset(
    {
        "modules_enabled",
        "modules_disabled",
        "c2s_require_encryption",
        "allow_registration",
        "certificates",
        "ssl",
    }
)
LIVE = (GLOBAL_KEYS - RESTART_GLOBAL) | (HOST_KEYS - RESTART_HOST)

_ABSENT = object()


@dataclass
class Plan:
    config: Config  # the configuration to run with: the new one, minus what needs a restart
    live: dict[str, frozenset[str]]  # host -> options changed now (server-wide ones included)
    restart: list[str] = field(default_factory=list)  # options that changed but wait, sorted
    hosts_added: list[str] = field(default_factory=list)
    hosts_removed: list[str] = field(default_factory=list)
    components_changed: list[str] = field(default_factory=list)  # added, removed or changed

    @property
    def changed_now(self) -> list[str]:
        return sorted(set().union(*self.live.values())) if self.live else []


def plan(running: Config, new: Config, module_keys: Mapping[str, Mapping[str, bool]]) -> Plan:
    """``module_keys``: per running host, the options of its loaded modules -> whether they
    change live (True only when every loaded module that reads the option follows reloads).
    Options no loaded module reads change nothing now, so they are not reported."""
    restart: set[str] = set()
    live_global: set[str] = set()
    for key in GLOBAL_KEYS:
        if running.raw_global.get(key, _ABSENT) != new.raw_global.get(key, _ABSENT):
            (restart if key in RESTART_GLOBAL else live_global).add(key)
    hosts: dict[str, HostConfig] = {}
    live: dict[str, frozenset[str]] = {}
    for name, old in running.hosts.items():
        fresh = new.hosts.get(name)
        if fresh is None:
            hosts[name] = old
            live[name] = frozenset(live_global)
            continue
        keys = module_keys.get(name, {})
        fixed = RESTART_HOST | {key for key, follows in keys.items() if not follows}
        changed = {
            key
            for key in old.raw.keys() | fresh.raw.keys()
            if old.raw.get(key, _ABSENT) != fresh.raw.get(key, _ABSENT)
            and (key in HOST_KEYS or key in keys)
        }
        restart |= changed & fixed
        live[name] = frozenset(live_global | (changed - fixed))
        hosts[name] = HostConfig(
            name,
            msgspec.structs.replace(
                fresh.options, **{key: getattr(old.options, key) for key in RESTART_HOST}
            ),
            _keep(fresh.raw, old.raw, fixed),
        )
    options = msgspec.structs.replace(
        new.options, **{key: getattr(running.options, key) for key in RESTART_GLOBAL}
    )
    config = Config(
        path=running.path,
        options=options,
        hosts=hosts,
        raw_global=_keep(new.raw_global, running.raw_global, RESTART_GLOBAL),
        components=running.components,  # a component's options wait for a restart
    )
    components_changed = sorted(
        name
        for name in running.components.keys() | new.components.keys()
        if running.components.get(name) != new.components.get(name)
    )
    return Plan(
        config,
        live,
        sorted(restart),
        hosts_added=sorted(new.hosts.keys() - running.hosts.keys()),
        hosts_removed=sorted(running.hosts.keys() - new.hosts.keys()),
        components_changed=components_changed,
    )


def _keep(new: dict[str, Any], old: dict[str, Any], keys: AbstractSet[str]) -> dict[str, Any]:
    """``new`` with the running values (or absence) of ``keys``."""
    merged = {key: value for key, value in new.items() if key not in keys}
    merged.update({key: value for key, value in old.items() if key in keys})
    return merged
