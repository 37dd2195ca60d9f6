"""What ``check-config`` checks beyond the configuration itself: that ``serve`` could start now.

Each check returns problems instead of raising, so that one run names them all. Nothing is
created or written: certificates that would be generated are not, the data folder is not
created, and each port is bound and released at once.
"""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from minixmpp import datalock
from minixmpp.config import Config, ConfigError, GlobalOptions, HostConfig
from minixmpp.ports import bind
from minixmpp.server import DATABASE
from minixmpp.tls import find_certificate, verify_pair

log = logging.getLogger("minixmpp.preflight")


@dataclass(frozen=True)
class Problem:
    message: str
    configuration: bool  # a fault of the configuration (exit 2), not of the machine's state (1)


def certificate(config: Config, host: HostConfig) -> tuple[str, Problem | None]:
    """What ``serve`` would use as the host's certificate, and why it could not."""
    try:
        pair = find_certificate(config, host)
    except OSError as exc:
        return "unknown", Problem(f'VirtualHost "{host.name}": {_reason(exc)}', True)
    except ConfigError as exc:
        return "unknown", Problem(str(exc), True)
    if pair is not None:
        try:
            verify_pair(pair)
        except ConfigError as exc:
            return str(pair.certificate), Problem(f'VirtualHost "{host.name}": {exc}', True)
        return str(pair.certificate), None
    folder = config.resolve(host.options.certificates)
    problem = _unwritable(folder) or _unreadable(folder / "ca.key")
    if problem:
        message = f'VirtualHost "{host.name}": no certificate, and none can be made: {problem}'
        return "none", Problem(message, True)
    return "a test certificate will be generated", None


def data_folder(config: Config) -> list[Problem]:
    """The data folder can be created or written, and no other server uses it."""
    folder = config.data_path
    problem = _unwritable(folder) or _unwritable_file(folder / DATABASE)
    if problem:
        return [Problem(f"data folder unusable: {problem}", False)]
    try:
        datalock.check_free(folder)
    except datalock.DataFolderError as exc:
        return [Problem(str(exc), False)]
    return []


def ports(options: GlobalOptions) -> list[Problem]:
    """Bind each configured interface and port as ``serve`` would, and release it at once."""
    problems = []
    for port in [*options.c2s_ports, *options.c2s_direct_tls_ports]:
        if port == 0:  # any free port: always possible
            continue
        for interface in options.interfaces:
            try:
                bind(interface, port).close()  # as serve binds it
            except OSError as exc:
                if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                    log.warning("[%s]:%d: %s (serve skips it)", interface, port, _reason(exc))
                    continue
                hint = " (is a server already running?)" if exc.errno == errno.EADDRINUSE else ""
                message = f"cannot listen on [{interface}]:{port}: {_reason(exc)}{hint}"
                problems.append(Problem(message, False))
    return problems


def _unwritable(folder: Path) -> str | None:
    """Why ``folder`` cannot be created or written into (None: it can)."""
    existing = folder
    try:
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            return f"{existing} is not a folder"
    except OSError as exc:
        return f"{folder}: {_reason(exc)}"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def _unwritable_file(path: Path) -> str | None:
    try:
        if path.exists() and not os.access(path, os.R_OK | os.W_OK):
            return f"{path} is not writable"
    except OSError as exc:
        return f"{path}: {_reason(exc)}"
    return None


def _unreadable(path: Path) -> str | None:
    try:
        if path.exists() and not os.access(path, os.R_OK):
            return f"{path} is not readable"
    except OSError as exc:
        return f"{path}: {_reason(exc)}"
    return None


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
