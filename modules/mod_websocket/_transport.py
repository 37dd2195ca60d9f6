"""The WebSocket side of a client connection: aiohttp's WebSocketResponse as a Transport.

Output units become text frames, one element each (RFC 7395 §3.3), sent in order: a frame is
started at once (``start_eager``) and only one that must wait for the socket to drain is
finished by a task, the later ones queued behind it. Input is read by the request handler's
loop (``run``), which waits while the connection asks to pause reading.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from minixmpp.scheduling import start_eager

if TYPE_CHECKING:
    from minixmpp.connection import Connection

log = logging.getLogger("minixmpp.mod.websocket")

# Close codes (RFC 6455 §7.4.1) for how the stream ended
NORMAL, UNSUPPORTED_DATA, INVALID_DATA, TOO_BIG = 1000, 1003, 1007, 1009
CLOSE_TIMEOUT = 5.0  # seconds to wait for the peer to answer our close frame
_CODES = {"not-well-formed": INVALID_DATA, "bad-format": INVALID_DATA}


class WebSocketTransport:
    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self._ws = ws
        self._request = request
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._sending: asyncio.Future[None] | None = None
        self._readable = asyncio.Event()
        self._readable.set()
        self._drained: list[asyncio.Future[None]] = []
        self._closing = False
        self.close_code = NORMAL
        self.close_message = "Stream closed"
        self.conn: Connection | None = None
        self._close_task: asyncio.Future[Any] | None = None

    # -- the Transport interface (connection.Transport) ----------------------------------

    def writelines(self, chunks: list[bytes]) -> None:
        if self._closing:
            return
        self._queue.extend(chunks)
        self._queued += sum(map(len, chunks))
        if self._sending is None:
            self._pump()

    def _pump(self) -> None:
        while self._queue:
            frame = self._queue.popleft()
            self._queued -= len(frame)
            waiting = start_eager(self._ws.send_frame(frame, WSMsgType.TEXT))
            if waiting is not None:
                self._sending = waiting
                waiting.add_done_callback(self._sent)
                return
        self._sending = None
        self._wake_drained()
        if self._closing:
            self._finish()

    def _sent(self, done: asyncio.Future[None]) -> None:
        self._sending = None
        if done.cancelled() or done.exception() is not None:
            self._queue.clear()  # the socket is gone
            self._queued = 0
            self._wake_drained()
            return
        self._pump()

    def _wake_drained(self) -> None:
        waiters, self._drained = self._drained, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait_drained(self) -> None:
        while (self._queue or self._sending is not None) and not self._ws.closed:
            waiter = asyncio.get_running_loop().create_future()
            self._drained.append(waiter)
            await waiter

    def close(self, *, linger: bool = True) -> None:
        """Close once the queued frames are out (with ``close_code``). ``linger`` is TCP's
        business: the WebSocket closing handshake already lets the client read what was sent,
        and its close frame is awaited with a timeout."""
        if self._closing:
            return
        self._closing = True
        self._readable.set()
        if self._sending is None and not self._queue:
            self._finish()

    def _finish(self) -> None:
        conn = self.conn
        if conn is not None and conn.close_condition is not None:
            self.close_code = _CODES.get(conn.close_condition, self.close_code)
        task = asyncio.ensure_future(
            self._ws.close(code=self.close_code, message=self.close_message.encode())
        )
        task.add_done_callback(_ignore)
        self._close_task = task

    def abort(self) -> None:
        self._closing = True
        self._queue.clear()
        transport = self._request.transport
        if transport is not None:
            transport.abort()
        self._readable.set()

    def is_closing(self) -> bool:
        return self._closing or self._ws.closed

    def get_write_buffer_size(self) -> int:
        transport = self._request.transport
        below = transport.get_write_buffer_size() if transport is not None else 0
        return self._queued + below

    def pause_reading(self) -> None:
        self._readable.clear()

    def resume_reading(self) -> None:
        self._readable.set()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        transport = self._request.transport
        return default if transport is None else transport.get_extra_info(name, default)

    # -- input ------------------------------------------------------------------------------

    async def run(self, conn: Connection, frame_limit: int) -> None:
        """Feed ``conn`` the text frames until the socket closes."""
        self.conn = conn
        conn.connection_made(self)
        error: Exception | None = None
        try:
            while not self._closing:
                await self._readable.wait()
                msg = await self._ws.receive()
                if msg.type is WSMsgType.TEXT or msg.type is WSMsgType.BINARY:
                    if msg.type is WSMsgType.BINARY:  # Prosody: no stream error, just this
                        self.close_code = UNSUPPORTED_DATA
                        self.close_message = "Only text frames are supported, RFC 7395 3.2"
                        self.close()
                        break
                    self._frame(conn, msg.data, frame_limit)
                elif msg.type is WSMsgType.ERROR:
                    error = msg.data if isinstance(msg.data, Exception) else None
                    break
                else:  # CLOSE, CLOSING, CLOSED: the peer went without <close/>
                    break
        finally:
            conn.connection_lost(error)
            if self._close_task is not None:  # before aiohttp closes with its own 1000
                await asyncio.wait([self._close_task], timeout=CLOSE_TIMEOUT)

    def _frame(self, conn: Connection, data: str | bytes, frame_limit: int) -> None:
        payload = data.encode() if isinstance(data, str) else data
        limit = conn.stream.framing.parser.max_stanza_size
        if len(payload) > limit:
            # Over the stanza limit (but under frame_limit, past which aiohttp refuses the
            # frame itself): the stream error first, so a resuming client does not resend it.
            self.close_code = TOO_BIG
            conn.close("policy-violation", "XML stanza is too big", STANZA_TOO_BIG)
            return
        if not payload.lstrip().startswith(b"<"):
            conn.close("not-well-formed")
            return
        conn.data_received(payload)


STANZA_TOO_BIG = "<stanza-too-big xmlns='urn:xmpp:errors'/>"


def _ignore(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: a close on a dead socket is not worth a warning
