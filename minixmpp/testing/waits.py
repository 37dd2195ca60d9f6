"""Waiting on a test server: for an event or an element, for the server to be idle, and
"nothing was sent" assertions that end when the server idles (``XmppServer``'s part)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import socket
import struct
import termios
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from minixmpp.testing.traffic import Mark, Matcher, Record, TrafficLog

if TYPE_CHECKING:
    from minixmpp.server import Server
    from minixmpp.testing.accounts import Account


class WaitsMixin:
    traffic: TrafficLog

    @property
    def server(self) -> Server:
        raise NotImplementedError

    async def wait_for(
        self,
        what: str | Callable[[Record], bool],
        timeout: float = 5.0,
        *,
        since: Mark | None = None,
    ) -> Any:
        """Wait until the server fires the event named ``what`` (``user-registered``,
        ``invite-created``, ``resource-bind``…: returns its payload) or, for a matcher
        (``minixmpp.testing.match("message", type="chat")``, or any callable taking a
        Record), until such an element passes either way (returns the Record). What happened
        since ``since`` (default: the start or the last reset) counts, so there is no race
        with what the test did just before; AssertionError after ``timeout`` seconds."""

        def found() -> Any:
            if isinstance(what, str):
                payloads = self.traffic.events_named(what, since=since)
                return payloads[0] if payloads else None
            records = self.traffic.find(what, since=since)
            return records[0] if records else None

        return await self._until(found, timeout, repr(what))

    async def _until(self, found: Any, timeout: float, what: str) -> Any:
        result = found()
        if result is not None:
            return result
        changed = asyncio.Event()
        self.traffic.changed.append(changed.set)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await changed.wait()
                    changed.clear()
                    result = found()
                    if result is not None:
                        return result
        except TimeoutError:
            raise AssertionError(f"nothing like {what} within {timeout} s") from None
        finally:
            self.traffic.changed.remove(changed.set)

    async def idle(self, timeout: float = 5.0) -> None:
        """Wait until the server has nothing left to do: no input unread on any socket, no
        stream handling anything, no background task, no output unsent. Bounded by
        ``timeout`` (AssertionError past it)."""
        server = self.server
        quiet = 0
        async with asyncio.timeout(timeout):
            while quiet < 3:
                await asyncio.sleep(0)
                if self._busy(server):
                    quiet = 0
                else:
                    quiet += 1

    def _busy(self, server: Server) -> bool:
        if any(not t.done() for t in server._tasks):
            return True
        for conn in server.connections:
            if conn.busy or conn._out:
                return True
            transport = conn.transport
            sock = transport.get_extra_info("socket") if transport is not None else None
            if sock is not None and _unread(sock) > 0:
                return True
        return False

    async def assert_nothing_sent_to(
        self,
        jid: str | Account,
        matcher: Matcher = None,
        *,
        within: float = 5.0,
        since: Mark | None = None,
        **attrs: str | None,
    ) -> None:
        """Fail if the server sent ``jid`` (bare: any resource) anything matching since
        ``since``; waits until the server is idle (at most ``within`` seconds), not a fixed
        time."""
        with contextlib.suppress(TimeoutError):  # still busy: check what was sent so far
            await self.idle(within)
        got = [r for r in self.traffic.received_by(str(jid), matcher, since=since, **attrs)]
        got = [r for r in got if r.element is not None and r.tag in ("message", "presence", "iq")]
        if got:
            shown = "\n".join(r.text for r in got[:10])
            raise AssertionError(f"{jid} was sent {len(got)} stanza(s):\n{shown}")

    def received_by(
        self,
        jid: str | Account,
        matcher: Matcher = None,
        *,
        since: Mark | None = None,
        **attrs: str | None,
    ) -> list[Record]:
        """What the server sent ``jid`` (``traffic.received_by``)."""
        return self.traffic.received_by(str(jid), matcher, since=since, **attrs)


def _unread(sock: socket.socket) -> int:
    """Bytes the kernel holds for ``sock`` that nobody read yet."""
    with contextlib.suppress(OSError, ValueError):
        buf = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
        return int(struct.unpack("i", buf)[0])
    return 0
