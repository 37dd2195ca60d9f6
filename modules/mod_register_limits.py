"""Who may register, by IP address (Prosody's mod_register_limits): a blocklist, an optional
allowlist-only mode, and a throttle per address (a token bucket: ``registration_throttle_max``
registrations per ``registration_throttle_period`` seconds). Allowlisted addresses (loopback
by default) are never throttled. Addresses may be written as CIDR ranges. With no option set,
nothing is throttled.

Loaded by mod_register when registration is allowed; refuses in ``user-registering`` ahead of
other checks (priority 20), so its error is the one a client sees.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass
from typing import TypeVar

from minixmpp.config import ConfigError
from minixmpp.errors import StanzaError
from minixmpp.events import USER_REGISTERING, Registration
from minixmpp.module import Module
from minixmpp.throttle import Throttle

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK = ["127.0.0.1", "::1"]


@dataclass
class Options:
    min_seconds_between_registrations: float | None = None  # means: at most 1 per this long
    registration_throttle_max: int | None = None
    registration_throttle_period: float | None = None
    registration_throttle_cache_size: int = 100  # addresses remembered
    blocklist_on_registration_throttle_overload: bool | None = None  # default false
    allowlist_registration_only: bool | None = None  # default false
    registration_allowlist: list[str] | None = None  # default loopback: ["127.0.0.1", "::1"]
    registration_blocklist: list[str] | None = None  # default none
    # Prosody's old names, still read by Prosody: a new name wins when both are set
    blacklist_on_registration_throttle_overload: bool | None = None
    whitelist_registration_only: bool | None = None
    registration_whitelist: list[str] | None = None
    registration_blacklist: list[str] | None = None


T = TypeVar("T")


def pick(module: Module, opts: Options, new: str, old: str, default: T) -> T:
    """An option by its name, else by Prosody's old name (with a warning), else ``default``."""
    value, legacy = getattr(opts, new), getattr(opts, old)
    if value is not None:
        return value  # type: ignore[no-any-return]
    if legacy is not None:
        module.log.warning("option '%s' is deprecated, use '%s'", old, new)
        return legacy  # type: ignore[no-any-return]
    return default


def networks(entries: list[str], option: str, where: str) -> list[Network]:
    found = []
    for entry in entries:
        try:
            found.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ConfigError(f"{where}: option '{option}': {entry!r} is not an address") from None
    return found


def load(module: Module) -> None:
    opts = module.options(Options)
    where = module.name
    allowed = pick(module, opts, "registration_allowlist", "registration_whitelist", LOOPBACK)
    allowlist = networks(allowed, "registration_allowlist", where)
    blocked: list[str] = pick(module, opts, "registration_blocklist", "registration_blacklist", [])
    blocklist = networks(blocked, "registration_blocklist", where)
    allowlist_only = pick(
        module, opts, "allowlist_registration_only", "whitelist_registration_only", False
    )
    overload = pick(
        module, opts, "blocklist_on_registration_throttle_overload",
        "blacklist_on_registration_throttle_overload", False,
    )  # fmt: skip
    maximum = opts.registration_throttle_max
    period = opts.registration_throttle_period
    if opts.min_seconds_between_registrations is not None:
        maximum = 1 if maximum is None else maximum
        period = opts.min_seconds_between_registrations if period is None else period
    if maximum is not None and (period is None or period <= 0 or maximum < 1):
        raise ConfigError(
            f"{where}: registration_throttle_max needs registration_throttle_period"
            " (or min_seconds_between_registrations) greater than 0"
        )
    buckets: OrderedDict[str, Throttle] = OrderedDict()
    module.forget_on_reset(buckets)

    def listed(nets: list[Network], ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in net for net in nets)

    def allowed_now(ip: str) -> bool:
        assert maximum is not None and period is not None
        bucket = buckets.pop(ip, None) or Throttle(maximum, period, module.clock.monotonic)
        buckets[ip] = bucket  # the most recently seen last
        if len(buckets) > opts.registration_throttle_cache_size:
            old_ip, old = buckets.popitem(last=False)
            if overload and not old.peek():
                module.log.info("adding %s to the registration blocklist", old_ip)
                blocklist.append(ipaddress.ip_network(old_ip))
        return bucket.poll()

    @module.hook(USER_REGISTERING, priority=20)
    async def check(event: Registration) -> None:
        ip = event.ip
        if not ip:
            module.log.warning("address not known: no blocklist or allowlist applies")
        elif listed(blocklist, ip):
            raise StanzaError("forbidden", "Your IP address is blocklisted", "auth")
        elif allowlist_only and not listed(allowlist, ip):
            raise StanzaError("forbidden", "Your IP address is not allowlisted", "auth")
        elif maximum is not None and not listed(allowlist, ip) and not allowed_now(ip):
            raise StanzaError(
                "policy-violation", "Too many registrations from this IP address recently", "wait"
            )
