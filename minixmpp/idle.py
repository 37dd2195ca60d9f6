"""The idle policy: the server's sweeper, and what becomes of a connection that stays quiet.

One task per server (``sweep``) looks at every connection a few times per shortest limit,
instead of a timer per connection (an idle connection holds no timer handle):

* a stream that is not bound ``c2s_timeout`` seconds after it opened is closed with
  ``connection-timeout``;
* a connection with no input for ``c2s_idle_timeout`` gets ``idle_timeout()`` (below: the
  modules' ``c2s-read-timeout`` first, as in Prosody);
* one with no input for ``Server.hibernate_after`` seconds frees its lxml parser
  (``Connection.hibernate``), and once some did, free heap pages go back to the OS
  (``release_free_memory``, at most every ``TRIM_INTERVAL`` seconds: it walks the whole heap,
  ~4 ms for 200 MB). bench/README.md ("Where an idle connection's memory goes") has the
  figures.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from collections.abc import Callable
from typing import TYPE_CHECKING

from minixmpp.events import C2S_READ_TIMEOUT, EventBus, SessionEvent

if TYPE_CHECKING:
    from minixmpp.connection import Connection
    from minixmpp.server import Server


TRIM_INTERVAL = 5.0


async def sweep(server: Server) -> None:
    """Run the server's idle policy until cancelled (see the module docstring)."""
    trimmed_at, untrimmed = server.clock.monotonic(), False
    while True:
        opts = server.options
        # a quarter of the shortest timeout; half of hibernate_after (a parser is freed
        # between 1 and 1.5 times it: no need to visit every connection more often)
        periods = [t / 4 for t in (opts.c2s_timeout, opts.c2s_idle_timeout) if t > 0]
        if server.hibernate_after > 0:
            periods.append(server.hibernate_after / 2)
        await server.clock.sleep(min(10.0, max(0.05, min(periods, default=10.0))))
        opts = server.options  # a reload may have changed them meanwhile
        now = server.clock.monotonic()
        hibernated = 0
        for conn in list(server.connections):
            idle = now - conn.last_activity
            if (
                opts.c2s_timeout
                and not conn.session.bound
                and now - conn.opened_at > opts.c2s_timeout
            ):
                conn.close("connection-timeout", "Timed out waiting for authentication")
            elif opts.c2s_idle_timeout and idle > opts.c2s_idle_timeout:
                idle_timeout(conn)
            elif idle > server.hibernate_after and conn.hibernate():
                hibernated += 1
        untrimmed = untrimmed or hibernated > 0
        if untrimmed and now - trimmed_at >= TRIM_INTERVAL:
            release_free_memory()
            trimmed_at, untrimmed = now, False


def idle_timeout(conn: Connection) -> None:
    """Nothing came from the client for ``c2s_idle_timeout``. A bound session's modules are
    asked first (``c2s-read-timeout``, Prosody's event): a handler that returns True keeps the
    stream for another period (XEP-0198 asks the client for an ack), one that returns False
    drops the connection without a stream error (so that a resumable session hibernates);
    otherwise, or with no handler, the stream is closed with ``connection-timeout``."""
    session = conn.session
    host = conn.server.hosts.get(session.host)
    if host is None or not session.bound or not host.events.has(C2S_READ_TIMEOUT):
        conn.close("connection-timeout", "Idle for too long")
        return
    conn.touch()  # asked once per period
    conn.server.keep(asyncio.ensure_future(_read_timeout(conn, host.events)))


async def _read_timeout(conn: Connection, events: EventBus) -> None:
    try:
        verdict = await events.fire(C2S_READ_TIMEOUT, SessionEvent(conn.session))
    except Exception:
        conn.log.exception("a c2s-read-timeout handler failed")
        verdict = None
    if verdict is None:
        conn.close("connection-timeout", "Idle for too long")
    elif verdict is False:
        conn.log.info("idle for too long: connection from %s dropped", conn.session.ip)
        conn.abort()


def release_free_memory() -> None:
    """Hand freed heap pages back to the OS (glibc keeps them otherwise); no-op elsewhere."""
    if _malloc_trim is not None:
        _malloc_trim(0)


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_malloc_trim = _find_malloc_trim()
