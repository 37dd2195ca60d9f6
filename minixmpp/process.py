"""The server as a process: ``serve()`` runs one until SIGTERM or SIGINT, and reloads its
configuration file on SIGHUP, as Prosody does (``Server.reload`` and reload.py say what a reload
changes).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable

from minixmpp.config import Config, ConfigError
from minixmpp.config import load as load_config
from minixmpp.module import ModuleError
from minixmpp.server import Server, check, raise_open_files_limit, warn_unread

log = logging.getLogger("minixmpp.server")


async def serve(
    config: Config,
    *,
    ready: Callable[[Server], None] | None = None,
    shutdown: asyncio.Event | None = None,
    configure_logging: Callable[[Config], None] | None = None,
) -> None:
    """Run until ``shutdown`` is set, SIGTERM or SIGINT; then close cleanly. SIGHUP reloads the
    configuration file (``Server.reload``; ``configure_logging`` opens the log sinks again).

    The signal handlers are in place before start-up begins and stay until the server has
    stopped: a signal during start-up takes effect once start-up is done, and a second SIGTERM
    or SIGINT while stopping does not cut the clean close short."""
    raise_open_files_limit()
    stop = shutdown or asyncio.Event()
    reload_wanted = asyncio.Event()
    received: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        if sig is signal.SIGHUP:
            log.info("Received SIGHUP%s", "; stopping, not reloading" if stop.is_set() else "")
            reload_wanted.set()
        elif received:
            log.info("Received %s; already stopping", sig.name)
        else:
            log.info("Received %s", sig.name)
            received.append(f"Received {sig.name}")
            stop.set()

    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        try:
            loop.add_signal_handler(sig, on_signal, sig)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, Windows
            pass
    try:
        server = Server(config)
        await server.start()
        # This process is the server: what start-up built lives for ever, so the cyclic GC need
        # not rescan it; and a higher first threshold spares most collections under stanzas.
        gc.freeze()
        gc.set_threshold(10_000, 20, 50)
        if ready is not None:
            ready(server)
        while await _next_request(stop, reload_wanted):
            reload_wanted.clear()
            await _reload(server, configure_logging)
        await server.stop(reason=received[0] if received else None)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def _next_request(stop: asyncio.Event, reload_wanted: asyncio.Event) -> bool:
    """Wait until the server is to stop (False) or to reload (True); stopping comes first."""
    if not stop.is_set() and not reload_wanted.is_set():
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(reload_wanted.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
    return not stop.is_set()


async def _reload(server: Server, configure_logging: Callable[[Config], None] | None) -> None:
    """Read the configuration file again and apply it; on any problem keep the running one."""
    path = server.config.path
    log.info("reloading the configuration from %s", path)
    try:
        config = load_config(path)
        declared = check(config, server.loader, warn=False)
        await server.reload(config, configure_logging=configure_logging)
    except (ConfigError, ModuleError) as exc:
        log.error("configuration not reloaded; the running one stays: %s", exc)
        return
    except Exception:
        log.exception("reloading the configuration failed")
        return
    warn_unread(config, declared, {name for h in server.all_hosts() for name in h.modules})
