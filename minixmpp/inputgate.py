"""A connection's input before it is parsed (``InputGate``).

Bytes are held, unparsed and in order, while one of the connection's event handlers waits (so a
handler that restarts the stream or starts TLS does it before the next byte is read) or while an
input throttle (mod_limits) holds them back; a throttle may let only part of a read through (a
whole WebSocket frame or nothing). Reading is paused while any reason to pause holds: the
throttle, too much held, a client that does not read our output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from minixmpp.transport import InputThrottle

if TYPE_CHECKING:
    from minixmpp.connection import Connection

MAX_HELD_INPUT = 1024 * 1024  # input held while a handler waits, before reading pauses
# No reason to pause: one frozenset shared by every gate, where a set of its own is 216 bytes
# (bench/README.md, "Where an idle connection's memory goes").
_NONE: frozenset[str] = frozenset()


class InputGate:
    __slots__ = ("_conn", "_held", "_held_size", "_paused", "_throttle", "throttled")

    def __init__(self, conn: Connection) -> None:
        self._conn: Connection | None = conn
        self._held: list[bytes] = []
        self._held_size = 0
        self._throttle: InputThrottle | None = None
        self.throttled = False  # the throttle holds input back until release()
        self._paused: frozenset[str] = _NONE  # reasons why reading is paused (shared when none)

    @property
    def holding(self) -> bool:
        """Input is held (a restart or STARTTLS must not leave it behind)."""
        return bool(self._held)

    @property
    def paused(self) -> bool:
        return bool(self._paused)

    def receive(self, data: bytes) -> None:
        conn = self._conn
        if conn is None:
            return
        if conn.busy or self.throttled:  # keep the bytes, unparsed, in order
            self._hold(data)
        elif self._throttle is None:
            conn.guard(conn.feed, data)
        else:
            conn.guard(self._take, data)

    def pause(self, reason: str) -> None:
        conn = self._conn
        if not self._paused and conn is not None and conn.transport is not None:
            conn.transport.pause_reading()
        self._paused = self._paused | {reason}

    def unpause(self, reason: str) -> None:
        if reason in self._paused:
            self._paused = self._paused - {reason} or _NONE
            conn = self._conn
            if not self._paused and conn is not None and conn.transport is not None:
                conn.transport.resume_reading()

    def _hold(self, data: bytes, *, first: bool = False) -> None:
        if first:
            self._held.insert(0, data)
        else:
            self._held.append(data)
        self._held_size += len(data)
        if self._held_size > MAX_HELD_INPUT:
            self.pause("held")

    def _take(self, data: bytes) -> None:
        """Feed what the throttle lets through now; hold the rest."""
        conn = self._conn
        assert conn is not None
        throttle = self._throttle
        if throttle is not None:
            allowed = throttle.take(len(data), whole=conn.kind != "tcp")
            if allowed < len(data):
                self.throttled = True
                self.pause("throttled")
                self._hold(data[allowed:], first=True)  # before anything held behind it
                data = data[:allowed]
        if data:
            conn.feed(data)

    def set_throttle(self, throttle: InputThrottle | None) -> None:
        self._throttle = throttle
        if throttle is None and self.throttled:
            self.release()

    def release(self) -> None:
        """The throttle has room again: handle what it held back, and read on."""
        conn = self._conn
        if not self.throttled or conn is None:
            return
        self.throttled = False
        conn.touch()  # a slow client is not an idle one
        self.process_held()
        if not self.throttled:
            self.unpause("throttled")

    def process_held(self) -> None:
        """Handle held input in order, until a handler suspends or the throttle says wait."""
        conn = self._conn
        if conn is None:
            return
        while self._held and not conn.busy and not self.throttled:
            chunk = self._held.pop(0)
            self._held_size -= len(chunk)
            if conn.open_for_input:
                conn.guard(self._take, chunk)
        if not conn.busy and self._held_size <= MAX_HELD_INPUT:
            self.unpause("held")

    def close(self) -> None:
        """The connection is gone: drop what is held, and the reference back to it."""
        self._held.clear()
        self._held_size = 0
        self._conn = None
