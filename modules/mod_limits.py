"""Byte rate limits on client connections (Prosody's mod_limits): a connection that sends faster
than its rate is read more slowly; nothing is dropped.

``limits = { c2s = { rate = "10kb/s", burst = "2s" } }``, Prosody's shape and units: a rate is
bytes a second with a unit whose first letter is b, k, m, g or t (powers of 1000: "kb/s" is
1000 bytes a second), a burst is seconds ("2s", or a number). Each client connection gets a
token bucket holding ``burst`` seconds' worth of its rate, full at first (Prosody's
util.throttle); what arrives beyond it is held by the connection, which stops reading, and the
bucket is looked at again every ``limits_resolution`` seconds. A WebSocket frame cannot be
split: it waits whole until the bucket has room for it (or is full, for a frame larger than the
bucket: the bucket then owes the difference). The bytes counted are what the
client sends after TLS (as Prosody's filter sees them), from the first one, before the host is
known: so ``limits`` is read at the top level, like Prosody's (the first host's value rules).

Loaded without ``limits``, Prosody's defaults apply: 10 KiB/s, a 2 s burst. Accounts in
``unlimited_jids`` lose their limit when they authenticate; connections from ``unlimited_ips``
(loopback by default) have none. Prosody's other connection types (``s2sin``, ``s2sout``,
``component``) are accepted and unused: minixmpp serves clients only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated

import msgspec

from minixmpp.admission import AddressSet
from minixmpp.clock import Clock, Timer
from minixmpp.config import ConfigError
from minixmpp.connection import Connection, ConnectionSetup
from minixmpp.events import AUTHENTICATION_SUCCESS, SessionEvent
from minixmpp.jid import JID, InvalidJID
from minixmpp.module import Module
from minixmpp.throttle import Throttle

KEY = "limits"  # session.data: this connection's Limiter
RATE_UNITS = {"b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}  # Prosody's
DEFAULT_RATE = 10 * 1024  # Prosody's built-in c2s limit
DEFAULT_BURST = 2.0
Rate = Annotated[str, msgspec.Meta(pattern=r"^\d+ ?[bBkKmMgGtT][^/]*/s$")]
Burst = Annotated[str, msgspec.Meta(pattern=r"^\d+ ?s$")] | Annotated[float, msgspec.Meta(gt=0)]


class Limit(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    rate: Rate | None = None  # e.g. "10kb/s"
    burst: Burst | None = None  # e.g. "2s" or 2


class Limits(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    c2s: Limit | None = None
    s2sin: Limit | None = None  # Prosody's; minixmpp has no server-to-server connections
    s2sout: Limit | None = None
    component: Limit | None = None


@dataclass
class Options:
    limits: Limits = field(default_factory=Limits)
    limits_resolution: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    unlimited_jids: list[str] = field(default_factory=list)


def parse_rate(rate: str | None) -> int:
    """Bytes a second (Prosody's parse_rate, without its silent fallback)."""
    if rate is None:
        return DEFAULT_RATE
    found = re.fullmatch(r"(\d+) ?([^/]+)/s", rate)
    if found is None or found[2][0].lower() not in RATE_UNITS:
        raise ValueError(f'{rate!r} is not a rate like "10kb/s"')
    value = int(found[1]) * RATE_UNITS[found[2][0].lower()]
    if value <= 0:
        raise ValueError(f"{rate!r}: a rate must be more than 0")
    return value


def parse_burst(burst: str | float | None) -> float:
    if burst is None:
        return DEFAULT_BURST
    if isinstance(burst, str):
        burst = float(burst.rstrip("s").strip())
    if burst <= 0:
        raise ValueError("a burst must be more than 0 s")
    return burst


class Limiter:
    """One connection's throttle (connection.InputThrottle)."""

    def __init__(self, conn: Connection, bucket: Throttle, resolution: float, clock: Clock) -> None:
        self.conn = conn
        self.clock = clock
        self.bucket = bucket
        self.resolution = resolution
        self._timer: Timer | None = None

    def take(self, size: int, *, whole: bool = False) -> int:
        taken = self.bucket.take(size, whole=whole)
        if taken < size and self._timer is None:
            self.conn.log.debug("over its rate limit: reading slows down")
            self._timer = self.clock.call_later(self.resolution, self._wake)
        return taken

    def _wake(self) -> None:
        self._timer = None
        self.conn.release_input()  # takes again; a new timer if still short

    def lift(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.conn.set_input_throttle(None)


def load(module: Module) -> None:
    opts = module.options(Options)
    where = f"{module.name}: option 'limits'"
    c2s = opts.limits.c2s or Limit()
    try:
        rate, burst = parse_rate(c2s.rate), parse_burst(c2s.burst)
    except ValueError as exc:
        raise ConfigError(f"{where}: c2s: {exc}") from None
    for name in ("s2sin", "s2sout", "component"):
        if getattr(opts.limits, name) is not None:
            module.log.warning("limits.%s is not used: minixmpp serves clients only", name)
    unlimited_jids: set[str] = set()
    for entry in opts.unlimited_jids:
        try:
            unlimited_jids.add(JID.parse(entry).bare)
        except InvalidJID:
            raise ConfigError(f"{module.name}: option 'unlimited_jids': {entry!r}") from None
    unlimited_ips = AddressSet(module.server_options.unlimited_ips)
    resolution = opts.limits_resolution

    def attach(conn: Connection) -> None:
        if conn.session.ip in unlimited_ips:
            return
        bucket = Throttle(rate * burst, burst, module.clock.monotonic)
        limiter = Limiter(conn, bucket, resolution, module.clock)
        conn.session.data[KEY] = limiter
        conn.set_input_throttle(limiter)

    module.provides("connection-setup", ConnectionSetup("limits", attach))

    @module.hook(AUTHENTICATION_SUCCESS)
    async def unlimited(event: SessionEvent) -> None:
        session = event.session
        limiter = session.data.get(KEY)
        if limiter is not None and f"{session.username}@{module.host}" in unlimited_jids:
            del session.data[KEY]
            limiter.lift()
            module.log.debug("c2s%d: %s is unlimited", session.id, session.jid.bare)
