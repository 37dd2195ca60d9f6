"""The one place where mod_websocket reaches into aiohttp's internals: text frames handed over
inside aiohttp's ``data_received``, instead of one wake of the request handler's task per frame.

aiohttp parses frames in the connection protocol's ``data_received`` (its ``WebSocketReader``)
and puts each message into a ``WebSocketDataQueue``; ``WebSocketResponse.receive()`` waits on
that queue. So every frame costs a future, a task wake-up on the next loop turn and the
``receive()`` machinery: a quarter of the server's CPU for a routed message (bench/README.md).
``InlineResponse`` has aiohttp build its queue as ``Frames``, a subclass whose ``feed_data``
hands a text frame straight to ``deliver`` (the transport) while nothing waits in the queue
before it. Everything else (close, ping, pong, binary frames, errors, and text frames while the
transport pauses or closes, or while earlier ones still wait in the queue) goes into the queue
as before, where ``receive()`` and aiohttp's own closing handshake, auto-pong and flow control
take it. Order is kept: a frame is handed over only when the queue is empty.

The internals used, all checked by ``inline_supported()`` (a test asserts it, so an aiohttp
upgrade that changes them fails loudly; the server then falls back to ``receive()``):

- ``WebSocketResponse._post_start`` builds the queue by calling the name ``WebSocketDataQueue``
  of the module ``aiohttp.web_ws`` (``_post_start`` is where aiohttp 3.11 to 3.14 make the
  reader and queue and install them with the protocol's ``set_parser``); we bind that name to
  ``Frames`` for the duration of that synchronous call;
- the queue is ``WebSocketResponse._reader``, and its pending messages are ``_buffer``;
- the compiled reader calls ``feed_data(message, size)`` on its queue through Cython's
  ``cpdef`` dispatch, which honours a Python subclass's override; a message is a tuple
  ``(type, data, extra)``.

Output needs no internals: text frames from a server are not masked, so they are built here
(``text_frames``) and written to the request's transport in one write.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web, web_ws

log = logging.getLogger("minixmpp.mod.websocket")

_TEXT = WSMsgType.TEXT
_LEN2 = struct.Struct("!BBH").pack
_LEN8 = struct.Struct("!BBQ").pack
_FIN_TEXT = 0x81  # FIN, opcode 1 (RFC 6455 §5.2)
# Headers of the short frames, made once: most stanzas are under 126 bytes or not much over.
_SHORT = [bytes((_FIN_TEXT, n)) for n in range(126)]


def text_frames(payloads: list[bytes]) -> bytes:
    """``payloads`` as unmasked text frames (RFC 6455 §5.2: a server does not mask), joined."""
    parts: list[bytes] = []
    append = parts.append
    for payload in payloads:
        n = len(payload)
        if n < 126:
            append(_SHORT[n])
        elif n < 65536:
            append(_LEN2(_FIN_TEXT, 126, n))
        else:
            append(_LEN8(_FIN_TEXT, 127, n))
        append(payload)
    return b"".join(parts)


def _not_taken(data: bytes) -> bool:
    return False


# aiohttp.web_ws as Any: what is used of it is not its public API (and the queue is a Cython
# class without stubs for its methods)
_WEB_WS: Any = web_ws
_DataQueue: Any = _WEB_WS.WebSocketDataQueue


class Frames(_DataQueue):  # type: ignore[misc]
    """aiohttp's message queue, which hands text frames to ``deliver`` while it is empty."""

    __slots__ = ("deliver",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # True: the frame is taken; False: it goes into the queue, for receive()
        self.deliver: Callable[[bytes], bool] = _not_taken

    def feed_data(self, data: Any, size: int) -> None:
        if data[0] is _TEXT and not self._buffer and self.deliver(data[1]):
            return
        super().feed_data(data, size)


class InlineResponse(web.WebSocketResponse):
    """A WebSocketResponse whose queue is a ``Frames`` (see the module docstring)."""

    def _post_start(self, *args: Any, **kwargs: Any) -> None:
        made = _WEB_WS.WebSocketDataQueue
        _WEB_WS.WebSocketDataQueue = Frames
        try:
            super()._post_start(*args, **kwargs)
        finally:
            _WEB_WS.WebSocketDataQueue = made

    def frames(self) -> Frames | None:
        """The queue, if aiohttp made it a ``Frames`` (it did if ``inline_supported()``)."""
        queue = getattr(self, "_reader", None)
        return queue if isinstance(queue, Frames) else None


def inline_supported() -> bool:
    """Whether this aiohttp works as the module docstring says: ``Frames`` is what
    ``_post_start`` uses, and the compiled reader calls its ``feed_data`` override. Run once at
    import (microseconds): a frame is parsed by aiohttp's own reader into a ``Frames``."""
    try:
        if "WebSocketDataQueue" not in web_ws.WebSocketResponse._post_start.__code__.co_names:
            return False
        reader_class = _WEB_WS.WebSocketReader
        queue = Frames(_Protocol(), 2**16, loop=_NoLoop())
        taken: list[bytes] = []

        def take(data: bytes) -> bool:
            taken.append(data)
            return True

        queue.deliver = take
        reader = reader_class(queue, 1024, compress=False, decode_text=False)
        # a masked client text frame holding b"<a/>" (mask 0: the payload as it is)
        reader.feed_data(b"\x81\x84\x00\x00\x00\x00<a/>")
        return taken == [b"<a/>"] and not queue._buffer
    except Exception:
        log.debug("aiohttp's WebSocket internals are not as expected", exc_info=True)
        return False


class _Protocol:
    _reading_paused = False

    def pause_reading(self) -> None:  # pragma: no cover - the probe's queue never fills
        pass


class _NoLoop:
    def create_future(self) -> Any:  # pragma: no cover - the probe never reads
        raise RuntimeError


INLINE = inline_supported()
if not INLINE:
    log.warning(
        "aiohttp %s: WebSocket frames are read through receive() (slower); "
        "see modules/mod_websocket/_aiohttp.py",
        aiohttp.__version__,
    )
