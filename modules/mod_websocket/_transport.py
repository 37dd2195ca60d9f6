"""The WebSocket side of a client connection: aiohttp's WebSocketResponse as a Transport.

Output: what the connection flushes in one event-loop turn (its output units) leaves as text
frames, one element each (RFC 7395 §3.3), in one write to the socket, as TCP output does: the
frames are built here (a server's frames are not masked) instead of one ``send_frame`` and one
``write`` each. Nothing is written once aiohttp or we have started the closing handshake.

Input: text frames are handed over by aiohttp's reader inside ``data_received``
(``_aiohttp.Frames``, the one place that touches aiohttp's internals), without waking a task
per frame. The request handler's loop (``run``) takes whatever aiohttp queues instead: control
frames and the closing handshake, binary frames, and text frames that came while reading was
paused (they wait in aiohttp's queue, whose limit stops reading the socket) or while earlier
ones still wait there. With an aiohttp whose internals differ, every frame goes that way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from ._aiohttp import INLINE, InlineResponse, text_frames

if TYPE_CHECKING:
    from aiohttp.abc import AbstractStreamWriter

    from minixmpp.connection import Connection

log = logging.getLogger("minixmpp.mod.websocket")

# Close codes (RFC 6455 §7.4.1) for how the stream ended
NORMAL, UNSUPPORTED_DATA, INVALID_DATA, TOO_BIG = 1000, 1003, 1007, 1009
CLOSE_TIMEOUT = 5.0  # seconds to wait for the peer to answer our close frame
_CODES = {"not-well-formed": INVALID_DATA, "bad-format": INVALID_DATA}


def response(**kwargs: Any) -> web.WebSocketResponse:
    """The WebSocketResponse to prepare: one that hands text frames over inline, if this
    aiohttp allows it (``_aiohttp.INLINE``)."""
    return InlineResponse(**kwargs) if INLINE else web.WebSocketResponse(**kwargs)


class WebSocketTransport:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        request: web.Request,
        writer: AbstractStreamWriter,
    ) -> None:
        self._ws = ws
        self._writer = writer  # what ws.prepare() returned: its drain() is aiohttp's flow control
        transport = request.transport  # kept: aiohttp's protocol forgets it when the socket goes
        assert transport is not None  # the response is prepared: the socket is there
        self._transport = transport
        self._readable = asyncio.Event()
        self._readable.set()
        self._closing = False
        self.close_code = NORMAL
        self.close_message = "Stream closed"
        self.conn: Connection | None = None
        self._close_task: asyncio.Future[Any] | None = None

    # -- the Transport interface (connection.Transport) ----------------------------------

    def writelines(self, chunks: list[bytes]) -> None:
        transport = self._transport
        if self._closing or self._ws.closed or transport.is_closing():
            return  # after a close frame (ours or aiohttp's), no data frame may follow
        transport.write(text_frames(chunks))

    async def wait_drained(self) -> None:
        """Until the socket takes more (aiohttp's flow control: its protocol pauses writing
        over the transport's high-water mark), or the connection is gone."""
        if self._ws.closed or self._transport.is_closing():
            return
        with contextlib.suppress(ConnectionError):  # gone: nothing more to wait for
            await self._writer.drain()

    def close(self, *, linger: bool = True) -> None:
        """Close (with ``close_code``): the connection has flushed what it had, and frames
        are written at once, so the close frame follows them. ``linger`` is TCP's business:
        the WebSocket closing handshake already lets the client read what was sent, and its
        close frame is awaited with a timeout."""
        if self._closing:
            return
        self._closing = True
        self._readable.set()
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
        self._transport.abort()
        self._readable.set()

    def is_closing(self) -> bool:
        return self._closing or self._ws.closed

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size()

    def pause_reading(self) -> None:
        self._readable.clear()

    def resume_reading(self) -> None:
        self._readable.set()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    # -- input ------------------------------------------------------------------------------

    def deliver(self, data: bytes) -> bool:
        """A text frame, from aiohttp's ``data_received`` (``_aiohttp.Frames``): handled now,
        unless reading is paused or the stream closes (then aiohttp queues it for ``run``)."""
        conn = self.conn
        if conn is None or self._closing or not self._readable.is_set():
            return False
        try:
            self._frame(conn, data)
        except Exception:  # not aiohttp's parser error: it would close the socket as one
            log.exception("internal error on a WebSocket frame")
            conn.close("internal-server-error")
        return True

    async def run(self, conn: Connection) -> None:
        """Feed ``conn`` the frames until the socket closes."""
        self.conn = conn
        conn.connection_made(self)
        frames = self._ws.frames() if isinstance(self._ws, InlineResponse) else None
        if frames is not None:
            frames.deliver = self.deliver
        error: Exception | None = None
        try:
            while not self._closing:
                await self._readable.wait()
                msg = await self._ws.receive()
                if msg.type is WSMsgType.TEXT:
                    self._frame(conn, msg.data)
                elif msg.type is WSMsgType.BINARY:  # Prosody: no stream error, just this
                    self.close_code = UNSUPPORTED_DATA
                    self.close_message = "Only text frames are supported, RFC 7395 3.2"
                    self.close()
                    break
                elif msg.type is WSMsgType.ERROR:
                    error = msg.data if isinstance(msg.data, Exception) else None
                    break
                else:  # CLOSE, CLOSING, CLOSED: the peer went without <close/>
                    break
        finally:
            if frames is not None:
                frames.deliver = _not_taken  # the queue must not keep this transport alive
            conn.connection_lost(error)
            if self._close_task is not None:  # before aiohttp closes with its own 1000
                await asyncio.wait([self._close_task], timeout=CLOSE_TIMEOUT)

    def _frame(self, conn: Connection, data: str | bytes) -> None:
        payload = data.encode() if isinstance(data, str) else data
        limit = conn.stream.framing.parser.max_stanza_size
        if len(payload) > limit:
            # Over the stanza limit (but under frame_limit, past which aiohttp refuses the
            # frame itself): the stream error first, so a resuming client does not resend it.
            self.close_code = TOO_BIG
            conn.close("policy-violation", "XML stanza is too big", STANZA_TOO_BIG)
            return
        if payload[:1] != b"<" and not payload.lstrip().startswith(b"<"):
            conn.close("not-well-formed")
            return
        conn.data_received(payload)


STANZA_TOO_BIG = "<stanza-too-big xmlns='urn:xmpp:errors'/>"


def _not_taken(data: bytes) -> bool:
    return False


def _ignore(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: a close on a dead socket is not worth a warning
