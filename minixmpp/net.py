"""The thin I/O edge: non-blocking sockets on the event loop, TLS done by ``ssl.SSLSocket``.

Why not asyncio's transports: asyncio's TLS layer (``sslproto.SSLProtocol``) moves every record
through Python-level MemoryBIO plumbing. Measured on the benchmark machine (bench/): 29 µs of
server CPU per forwarded message and ~39 KB per idle TLS connection, against 21 µs and ~16 KB
when an ``SSLSocket`` reads, decrypts, encrypts and writes in one C call each.

``Transport`` is one connection (ports.py's ``Listener`` accepts them), with the part of the
asyncio transport API the server uses (write, close, abort, pause/resume reading, flow control
towards the protocol, get_extra_info) plus ``start_tls()`` for STARTTLS on the same socket. The
protocol object gets the asyncio.Protocol callbacks. Everything is level-triggered ``add_reader`` /
``add_writer`` on the running loop (stdlib or uvloop).

TLS writes follow OpenSSL's retry rule: a write that could not complete is retried with a
buffer that starts with the same bytes (CPython sets SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER), so
the pending data lives in one append-only bytearray until the socket takes it.

Closing lingers: a socket closed while the client's input is still unread makes the kernel
answer with a reset instead of a FIN, and a client whose stack sees the reset first loses what we
wrote last (the stream error that explains the close). So ``close()`` writes what is buffered,
sends TLS close_notify, shuts our sending side down (FIN), then reads and discards the client's
input until it closes its side, ``LINGER_BYTES`` have come, or ``LINGER_TIME`` has passed; only
then is the socket closed and the protocol told. ``close(linger=False)`` discards only what has
already arrived; ``abort()`` closes at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from typing import Any

from minixmpp.tls import tls_failure
from minixmpp.transport import StreamProtocol

log = logging.getLogger("minixmpp.net")

READ_SIZE = 16 * 1024  # one TLS record
HIGH_WATER = 64 * 1024  # ask the protocol to stop producing above this many unsent bytes
LOW_WATER = 16 * 1024
LINGER_TIME = 2.0  # seconds a closing connection waits for the client to close its side
LINGER_BYTES = 1024 * 1024  # the client's input discarded meanwhile, at most
_AGAIN = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class Transport:
    """One TCP connection, plaintext or TLS."""

    __slots__ = (
        "_buffer", "_closed", "_closing", "_connected", "_drained", "_fd", "_handshake",
        "_handshake_timer", "_linger", "_linger_left", "_linger_timer", "_lingering", "_loop",
        "_peername", "_protocol", "_protocol_paused", "_read_paused", "_read_wants_write",
        "_reading", "_sock", "_tls", "_write_wants_read", "_writing",
    )  # fmt: skip

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol: StreamProtocol,
        *,
        tls: ssl.SSLContext | None = None,
        handshake_timeout: float = 10.0,
    ) -> None:
        self._loop = loop
        self._sock: socket.socket = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        self._tls: ssl.SSLSocket | None = None
        self._buffer = bytearray()
        self._peername = _peer(sock)
        self._reading = False  # registered with the loop for reading
        self._read_paused = False  # the protocol asked us not to read
        self._writing = False  # registered with the loop for writing
        self._protocol_paused = False
        self._read_wants_write = False
        self._write_wants_read = False
        self._handshake: asyncio.Future[None] | None = None
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._closing = False
        self._closed = False
        self._linger = True  # close() waits for the client's side (see the module docstring)
        self._lingering = False  # our side is shut down; discarding input until theirs is
        self._linger_left = LINGER_BYTES
        self._linger_timer: asyncio.TimerHandle | None = None
        self._connected = False  # the protocol got connection_made()
        self._drained: asyncio.Future[None] | None = None
        if tls is not None:
            self._wrap(tls, handshake_timeout).add_done_callback(self._direct_tls_ready)
        else:
            self._connected = True
            protocol.connection_made(self)
            self._update_reading()

    # -- the asyncio.Transport API the server uses --------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self._peername
        if name == "ssl_object":
            return self._tls
        if name == "socket":
            return self._tls or self._sock
        if name == "sockname":
            with contextlib.suppress(OSError):
                return self._sock.getsockname()
        return default

    def is_closing(self) -> bool:
        return self._closing or self._closed

    @property
    def finished(self) -> bool:
        """The socket is closed (a callback may have closed it under our feet)."""
        return self._closed

    def get_write_buffer_size(self) -> int:
        return len(self._buffer)

    def writelines(self, chunks: list[bytes]) -> None:
        """Write the chunks as one (one TLS record, one syscall, where they fit)."""
        self.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def write(self, data: bytes) -> None:
        if self._closing or self._closed:
            return
        if not self._buffer and self._handshake is None and not self._write_wants_read:
            sent = self._send(data)
            if sent is None:
                return  # the connection failed
            if sent == len(data):
                return
            data = data[sent:]
        self._buffer += data
        self._update_writing()
        if not self._protocol_paused and len(self._buffer) > HIGH_WATER:
            self._protocol_paused = True
            self._protocol.pause_writing()

    def pause_reading(self) -> None:
        self._read_paused = True
        self._update_reading()

    def resume_reading(self) -> None:
        self._read_paused = False
        self._update_reading()

    def close(self, *, linger: bool = True) -> None:
        """Send what is buffered, then close (TLS: with close_notify), lingering unless told
        not to (see the module docstring). Called again with ``linger=False``, it ends a
        linger at once."""
        if self._closed:
            return
        if self._closing:
            if not linger:
                self._linger = False
                if self._lingering:
                    self._discard_input()
                    self._finish(None)
            return
        self._closing = True
        self._linger = linger
        self._update_reading()
        if not self._buffer:
            self._loop.call_soon(self._half_close)

    def abort(self) -> None:
        """Close now, dropping unsent data."""
        self._finish(None)

    async def wait_drained(self) -> None:
        """Until every byte written so far is handed to the socket, or the connection is gone."""
        while self._buffer and not self._closed:
            drained = self._drained
            if drained is None or drained.done():
                drained = self._drained = self._loop.create_future()
            await drained

    async def start_tls(self, context: ssl.SSLContext, timeout: float) -> None:
        """Upgrade this plaintext connection to TLS (the server side of STARTTLS).

        Reading stops at once: bytes the client sent after its request are left in the socket,
        where the TLS layer reads them as handshake records. Raises if the handshake fails.
        """
        if self._tls is not None or self._closing or self._closed:
            raise RuntimeError("start_tls() on a closing or already encrypted connection")
        self._read_paused = True
        self._update_reading()
        await self.wait_drained()  # <proceed/> must reach the client in plaintext first
        if self._closed:
            raise ConnectionError("connection closed before TLS started")
        self._read_paused = False
        await self._wrap(context, timeout)

    # -- internals ------------------------------------------------------------------------

    def _wrap(self, context: ssl.SSLContext, timeout: float) -> asyncio.Future[None]:
        """Start the TLS handshake on this socket; the future completes with it."""
        self._tls = context.wrap_socket(self._sock, server_side=True, do_handshake_on_connect=False)
        self._sock = self._tls  # wrap_socket() detached the plain socket object; same fd
        handshake: asyncio.Future[None] = self._loop.create_future()
        self._handshake = handshake
        self._handshake_timer = self._loop.call_later(timeout, self._handshake_timed_out)
        self._do_handshake()
        return handshake

    def _do_handshake(self) -> None:
        assert self._tls is not None and self._handshake is not None
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            self._read_wants_write = False
            self._update_writing()
            self._update_reading()
            return
        except ssl.SSLWantWriteError:
            self._read_wants_write = True
            self._update_writing()
            return
        except (OSError, ValueError) as exc:
            self._fail_handshake(exc)
            return
        handshake, self._handshake = self._handshake, None
        self._read_wants_write = False
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        self._update_reading()
        self._update_writing()
        if not handshake.done():
            handshake.set_result(None)

    def _fail_handshake(self, exc: BaseException) -> None:
        handshake, self._handshake = self._handshake, None
        if handshake is not None and not handshake.done():
            handshake.set_exception(exc if isinstance(exc, Exception) else ConnectionError())
            handshake.exception()  # retrieved here; the caller sees it through the future
        self._finish(exc if isinstance(exc, Exception) else None)

    def _handshake_timed_out(self) -> None:
        self._handshake_timer = None
        if self._handshake is not None:
            self._fail_handshake(TimeoutError("TLS handshake timed out"))

    def _direct_tls_ready(self, future: asyncio.Future[None]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:  # the protocol never hears of this connection: say it here
            peer = self._peername[0] if self._peername else "?"
            log.info("TLS handshake failed from %s (direct TLS): %s", peer, tls_failure(exc))
        elif not self._closed:
            self._connected = True
            self._protocol.connection_made(self)

    def _update_reading(self) -> None:
        want = not self._closed and (
            self._handshake is not None
            or (not self._read_paused and not self._closing)
            or self._write_wants_read
            or self._lingering
        )
        if want and not self._reading:
            self._loop.add_reader(self._fd, self._on_readable)
            self._reading = True
        elif not want and self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False

    def _update_writing(self) -> None:
        want = not self._closed and (
            self._read_wants_write or (bool(self._buffer) and not self._write_wants_read)
        )
        if want and not self._writing:
            self._loop.add_writer(self._fd, self._on_writable)
            self._writing = True
        elif not want and self._writing:
            self._loop.remove_writer(self._fd)
            self._writing = False

    def _on_readable(self) -> None:
        if self._closed:
            return
        if self._lingering:
            if self._discard_input():
                self._finish(None)
            return
        if self._handshake is not None:
            self._do_handshake()
            return
        if self._write_wants_read:
            self._write_wants_read = False
            self._flush()
            if self.finished:
                return
        if self._read_paused or self._closing:
            self._update_reading()
            return
        sock = self._sock
        while True:
            try:
                data = sock.recv(READ_SIZE)
            except ssl.SSLWantWriteError:
                self._read_wants_write = True  # TLS needs to write before it can read on
                self._update_writing()
                return
            except _AGAIN:
                return
            except (OSError, ValueError) as exc:
                self._finish(exc)
                return
            if not data:
                self._eof()
                return
            self._protocol.data_received(data)
            if (
                self._tls is None
                or self._closed
                or self._read_paused
                or self._closing
                or not self._tls.pending()
            ):
                return

    def _on_writable(self) -> None:
        if self._closed:
            return
        if self._handshake is not None:
            self._do_handshake()
            return
        if self._read_wants_write:
            self._read_wants_write = False
            self._update_writing()
            self._on_readable()
            if self.finished:
                return
        self._flush()

    def _send(self, data: bytes | bytearray) -> int | None:
        """Send as much as the socket takes; None if the connection failed."""
        try:
            return self._sock.send(data)
        except ssl.SSLWantReadError:
            self._write_wants_read = True  # TLS needs a read before it can write on
            self._update_reading()
            return 0
        except _AGAIN:
            return 0
        except (OSError, ValueError) as exc:
            self._finish(exc)
            return None

    def _flush(self) -> None:
        if self._buffer and not self._write_wants_read:
            sent = self._send(self._buffer)
            if sent is None:
                return
            if sent:
                del self._buffer[:sent]
        self._update_writing()
        if self._protocol_paused and len(self._buffer) <= LOW_WATER:
            self._protocol_paused = False
            self._protocol.resume_writing()
        if not self._buffer:
            drained, self._drained = self._drained, None
            if drained is not None and not drained.done():
                drained.set_result(None)
            if self._closing:
                self._half_close()

    def _eof(self) -> None:
        try:
            keep_open = self._protocol.eof_received()
        except Exception:
            log.exception("eof_received() failed")
            keep_open = False
        if not keep_open:
            self.close()

    def _half_close(self) -> None:
        """Everything is written: send close_notify (TLS) and FIN, then linger."""
        if self._closed or self._lingering:
            return
        if self._handshake is not None:  # mid-handshake: nothing of ours to protect
            self._finish(None)
            return
        if self._tls is not None:
            with contextlib.suppress(OSError, ValueError):
                self._tls.unwrap()  # sends close_notify; not waiting for the client's
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._finish(None)
            return
        self._lingering = True
        if self._discard_input() or not self._linger:
            self._finish(None)
            return
        self._linger_timer = self._loop.call_later(LINGER_TIME, self._finish, None)
        self._update_reading()

    def _discard_input(self) -> bool:
        """Read and drop what the client sent (raw bytes: after our close_notify its TLS
        records need no decrypting). True when there is no point waiting any longer: it closed
        its side, the connection failed, or it sent ``LINGER_BYTES``."""
        while True:
            try:
                data = socket.socket.recv(self._sock, READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return False
            except (OSError, ValueError):
                return True
            if not data:
                return True
            self._linger_left -= len(data)
            if self._linger_left <= 0:
                return True

    def _finish(self, exc: Exception | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._closing = True
        self._lingering = False
        self._update_reading()
        self._update_writing()
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        with contextlib.suppress(OSError):
            self._sock.close()
        self._buffer.clear()
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)
        if self._handshake is not None:
            handshake, self._handshake = self._handshake, None
            if not handshake.done():
                handshake.set_exception(exc or ConnectionError("connection closed"))
                handshake.exception()
        if self._connected:
            self._loop.call_soon(self._protocol.connection_lost, exc)
        else:  # a direct-TLS handshake that failed never reached the protocol
            self._loop.call_soon(self._protocol.connection_failed, exc)


def _peer(sock: socket.socket) -> Any:
    try:
        return sock.getpeername()
    except OSError:
        return None
