"""A c2s connection: asyncio.Protocol <-> StreamParser, with an explicit state table.

Theory of operation
-------------------
Bytes arrive in ``data_received`` and go to the sans-I/O parser, which returns stream events.
Each event is handled by a coroutine (the router, or stream-header handling). Most handlers
never wait for anything, so the coroutine is stepped synchronously and finishes without an
asyncio Task; only a handler that really suspends (storage) is finished in a Task. Per
connection, events are handled strictly in order: while a handler is suspended, further events
wait, and newly received bytes are held *unparsed*. So a handler that restarts the stream (SASL
success) or starts TLS always resets the parser before the next byte is parsed.

STARTTLS: ``<starttls/>`` must be the last thing the client sent. If any event or byte follows
it, the server answers ``<failure/>`` and closes; nothing sent in plaintext can reach the TLS
stream. Between ``<proceed/>`` and the end of the handshake the TLS layer owns the socket.

States and transitions are in ``TRANSITIONS``; the only write path is ``_write``.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
import secrets
import uuid
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from lxml import etree

from minixmpp.errors import StanzaError, StreamError
from minixmpp.events import (
    RESOURCE_BIND,
    RESOURCE_UNBIND,
    STREAM_FEATURES,
    ResourceUnbind,
    SessionEvent,
    StreamFeatures,
)
from minixmpp.jid import JID, InvalidJID, nameprep, resourceprep
from minixmpp.net import Transport
from minixmpp.xml import stanza as st
from minixmpp.xml.parser import StanzaReceived, StreamOpened, StreamParser
from minixmpp.xml.redact import for_log

if TYPE_CHECKING:
    from minixmpp.host import Host
    from minixmpp.server import Server

log = logging.getLogger("minixmpp.session")

NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
_LANG_RE = re.compile(r"^[A-Za-z0-9]{1,8}(-[A-Za-z0-9]{1,8})*$")
_MAX_WRITE_BUFFER = 4 * 1024 * 1024
_MAX_HELD_INPUT = 1024 * 1024


class State(enum.Enum):
    WAIT_HEADER = "wait-header"  # before the (first or restarted) stream header
    OPEN = "open"  # stream open, not authenticated
    TLS = "tls"  # <proceed/> sent: only the TLS handshake may follow
    AUTHENTICATED = "authenticated"  # SASL done and stream restarted, resource not bound
    BOUND = "bound"
    CLOSING = "closing"  # our </stream:stream> is sent
    CLOSED = "closed"


TRANSITIONS: dict[State, frozenset[State]] = {
    State.WAIT_HEADER: frozenset({State.OPEN, State.AUTHENTICATED, State.CLOSING, State.CLOSED}),
    State.OPEN: frozenset({State.TLS, State.WAIT_HEADER, State.CLOSING, State.CLOSED}),
    State.TLS: frozenset({State.WAIT_HEADER, State.CLOSED}),
    State.AUTHENTICATED: frozenset({State.BOUND, State.CLOSING, State.CLOSED}),
    State.BOUND: frozenset({State.CLOSING, State.CLOSED}),
    State.CLOSING: frozenset({State.CLOSED}),
    State.CLOSED: frozenset(),
}

_ids = iter(range(1, 1 << 62))


class Session(asyncio.Protocol):
    """One client connection and its stream(s)."""

    c2s = True

    def __init__(self, server: Server, *, direct_tls: bool = False) -> None:
        self.server = server
        self.id = next(_ids)
        self.log = logging.LoggerAdapter(log, {"session": f"c2s{self.id}"})
        self.state = State.WAIT_HEADER
        self.transport: Transport | None = None
        self.ip = ""
        self.secure = direct_tls
        self.direct_tls = direct_tls
        self.host = ""
        self.jid = JID(None, "invalid")
        self.username: str | None = None
        self.resource: str | None = None
        self.authenticated = False
        self._auth_epoch = 0
        self.lang = "en"
        self.stream_id = ""
        self.data: dict[str, Any] = {}
        self.presence: etree._Element | None = None
        self.priority = 0
        loop = asyncio.get_running_loop()
        self.opened_at = self.last_activity = loop.time()
        self._loop = loop
        self.parser = StreamParser(server.options.c2s_unauthed_stanza_size_limit)
        self._header_sent = False
        self._held: list[bytes] | None = None  # bytes received while a handler is suspended
        self._held_size = 0
        self._more_events = False
        self._restart = False
        self._peer_closed = False
        self._unbound = False
        self._unbind_task: asyncio.Task[Any] | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._out: list[bytes] | None = None  # output held while an input chunk is processed
        self._wire = log.isEnabledFor(logging.DEBUG)

    # -- public API for modules -----------------------------------------------------------

    @property
    def bound(self) -> bool:
        return self.state is State.BOUND

    @property
    def suspended(self) -> bool:
        """A handler is waiting (storage); input is held until it is done."""
        return self._held is not None

    @property
    def host_obj(self) -> Host:
        return self.server.hosts[self.host]

    def send(self, stanza: etree._Element) -> bool:
        """Send a stanza or stream element. False if the stream can no longer take it."""
        if self.state is State.CLOSING or self.state is State.CLOSED:
            return False
        if not self._write(st.tostring(stanza), for_log(stanza) if self._wire else None):
            return False
        transport = self.transport
        if transport is not None and transport.get_write_buffer_size() > _MAX_WRITE_BUFFER:
            # It is not reading: it would never read an error either. Drop it.
            self.log.warning("client is not reading; dropping the connection")
            self.abort()
        return True

    async def drain(self) -> None:
        """Wait until everything sent so far has been handed to the socket, or the connection
        is gone. A module that sends much (a backlog) sends it in parts and waits here between
        them: send() drops a client whose unsent output exceeds _MAX_WRITE_BUFFER."""
        self._uncork()  # what this step has sent must reach the transport's buffer first
        transport = self.transport
        while transport is not None and transport.get_write_buffer_size():
            waiter = transport._drained  # resolved when the buffer empties or the socket closes
            if waiter is None or waiter.done():
                waiter = transport._drained = self._loop.create_future()
            await waiter

    def close(
        self, condition: str | None = None, text: str | None = None, app: str | None = None
    ) -> None:
        """Close the stream (with a stream error when ``condition`` is given)."""
        if self.state is State.CLOSING or self.state is State.CLOSED or self.transport is None:
            return
        if self.state is State.TLS:  # mid-handshake: no XML can be sent any more
            self.abort()
            return
        if not self._header_sent:
            self._send_header()
        if condition is not None:
            self.log.info("closing stream: %s%s", condition, f" ({text})" if text else "")
            self._write(st.stream_error(condition, text, app))
        self._write(b"</stream:stream>")
        graceful = condition is None and self.authenticated and not self._peer_closed
        self._set_state(State.CLOSING)
        self._unbind(None if condition is None else text or condition)
        if graceful:
            # Give an authenticated client a moment to send what it had and close its stream.
            timeout = self.server.options.c2s_close_timeout
            self._close_timer = self._loop.call_later(timeout, self._close_transport)
        else:
            self._close_transport()

    async def starttls(self) -> bool:
        """Upgrade to TLS (called by mod_tls). False if the request was refused."""
        if self.secure or self._more_events or self._held or self.parser.has_pending_input():
            # Data pipelined after <starttls/> is an injection attempt (or a broken client).
            self.log.warning("refusing STARTTLS: data after <starttls/>")
            self._write(f"<failure xmlns='{NS_TLS}'/>".encode())
            self.close()
            return False
        transport = self.transport
        assert transport is not None
        self._set_state(State.TLS)
        self._write(f"<proceed xmlns='{NS_TLS}'/>".encode())
        self._uncork()
        self.parser.reset()
        self._header_sent = False
        try:
            await transport.start_tls(
                self.server.tls.context_for(self.host), self.server.tls_handshake_timeout
            )
        except (OSError, ValueError, RuntimeError) as exc:  # ssl.SSLError and timeouts: OSError
            self.log.info("TLS handshake failed: %s", exc)
            self._lost(f"TLS handshake failed: {exc}")
            return False
        if self.state is State.CLOSED:
            return False
        self.secure = True
        self._set_state(State.WAIT_HEADER)
        return True

    def authenticated_as(self, username: str, epoch: int = 0) -> None:
        """SASL succeeded (called by mod_saslauth after sending <success/>) with credentials
        looked up at ``epoch`` (Users.epoch): if they are revoked before bind, bind fails."""
        self.authenticated = True
        self.username = username
        self._auth_epoch = epoch
        self.jid = JID(username, self.host)
        self.parser.max_stanza_size = self.server.options.c2s_stanza_size_limit
        self._restart = True

    async def bind(self, resource: str | None) -> JID:
        """Bind a resource (called by mod_bind). Raises StanzaError."""
        if self.state is not State.AUTHENTICATED or self.username is None:
            raise StanzaError("not-allowed")
        try:
            resource = resourceprep(resource, strict=True) if resource else None
        except InvalidJID:
            resource = None  # Prosody hands out a random resource instead of an error
        if resource is None:
            resource = secrets.token_urlsafe(9)
        host = self.host_obj
        if host.users.epoch(self.username) != self._auth_epoch:
            # the password changed or the account went after this login checked it
            if await host.users.exists(self.username):
                self.close("reset", "Password changed")
            else:
                self.close("not-authorized", "Account deleted")
            raise StanzaError("not-authorized")
        limit = host.config.options.max_resources
        jid = JID(self.username, self.host, resource)
        if host.sessions.get(jid.full) is None and host.sessions.count_of(self.username) >= limit:
            raise StanzaError(
                "resource-constraint", f"Resource limit reached; only {limit} resources allowed"
            )
        self.jid = jid
        self.resource = resource
        self._set_state(State.BOUND)
        old = host.sessions.add(self)
        if old is not None and old is not self:
            old.close("conflict", "Replaced by new connection")
            # As Prosody: the old session is gone (its unavailable sent) before the new one is
            # bound, so that contacts never see the new presence followed by the old unavailable.
            await old.unbound()
        await host.events.fire(RESOURCE_BIND, SessionEvent(self))
        return jid

    def channel_bindings(self) -> dict[str, bytes]:
        """Channel-binding data this connection can offer to SCRAM-PLUS."""
        if not self.secure or self.transport is None:
            return {}
        ssl_object = self.transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return {}
        bindings = {}
        end_point = self.server.tls.end_point_hash(ssl_object.context)
        if end_point is not None:
            bindings["tls-server-end-point"] = end_point
        if ssl_object.version() != "TLSv1.3":
            unique = ssl_object.get_channel_binding("tls-unique")
            if unique:
                bindings["tls-unique"] = unique
        return bindings

    @property
    def tls_version(self) -> str | None:
        if self.transport is None:
            return None
        ssl_object = self.transport.get_extra_info("ssl_object")
        return None if ssl_object is None else ssl_object.version()

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.ip = peer[0] if peer else ""
        self.server.sessions.add(self)
        self.log.debug("connection from %s", self.ip)

    def data_received(self, data: bytes) -> None:
        self.last_activity = self._loop.time()
        if self.state is State.CLOSED:
            return
        # During STARTTLS the TLS layer owns the socket: what reaches us here is decrypted
        # data of the new stream, held (below) until start_tls() has returned.
        if self._held is not None:
            self._hold(data)
            return
        batch = self._open_batch()
        corked = self._cork()
        try:
            self._feed(data)
        finally:
            if corked:
                self._uncork()
            if batch:
                self._flush_batch()

    def _hold(self, data: bytes) -> None:
        assert self._held is not None
        self._held.append(data)
        self._held_size += len(data)
        if self._held_size > _MAX_HELD_INPUT and self.transport is not None:
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost(None if exc is None else str(exc) or type(exc).__name__)

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()  # stop producing replies for a reader that lags

    def resume_writing(self) -> None:
        if self.transport is not None and self._held is None:
            self.transport.resume_reading()

    def hibernate(self) -> bool:
        """Free per-connection parser memory while idle (called by the server's sweeper)."""
        if self.suspended or self.state is not State.BOUND:
            return False
        return self.parser.hibernate()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self._lost("aborted")

    # -- input: events in order, handlers stepped eagerly --------------------------------------

    def _feed(self, data: bytes) -> None:
        try:
            events = self.parser.feed(data)
        except StreamError as exc:
            self.log.info("bad input: %s", exc)
            if self.state is State.CLOSING:
                self._close_transport()
            else:
                self.close(exc.condition, exc.text, exc.app)
            return
        self._run(events, 0)

    def _run(self, events: list[Any], start: int) -> None:
        count = len(events)
        for i in range(start, count):
            if self.state is State.CLOSED or self.state is State.TLS:
                return
            self._more_events = i + 1 < count
            coro = self._handle(events[i])
            try:
                waiting = coro.send(None)
            except StopIteration:
                pass
            else:
                self._held = []
                task = self._loop.create_task(self._resume(coro, waiting, events, i + 1))
                self.server.keep(task)
                return
            if self._restart and not self._after_restart(i + 1 < count):
                return
        self._more_events = False

    async def _resume(
        self, coro: Coroutine[Any, Any, None], waiting: Any, events: list[Any], next_index: int
    ) -> None:
        await _finish(coro, waiting, self)
        held, self._held, self._held_size = self._held or [], None, 0
        if self._restart and not self._after_restart(next_index < len(events) or bool(held)):
            return
        batch = self._open_batch()
        corked = self._cork()
        try:
            self._run(events, next_index)
            for chunk in held:
                if self.suspended:
                    self._hold(chunk)  # suspended again: keep the order
                elif self.state is not State.CLOSED:
                    self._feed(chunk)
        finally:
            if corked:
                self._uncork()
            if batch:
                self._flush_batch()
        if not self.suspended and self.transport is not None and self.state is not State.CLOSED:
            self.transport.resume_reading()

    def _after_restart(self, more: bool) -> bool:
        """After SASL success the client must open a new stream; nothing may be pipelined."""
        self._restart = False
        if more or self.parser.has_pending_input():
            self.close("policy-violation", "Data sent before the stream restart")
            return False
        self.parser.reset()
        self._header_sent = False
        self._set_state(State.WAIT_HEADER)
        return True

    async def _handle(self, event: Any) -> None:
        kind = type(event)
        if self._wire:  # what was parsed, not raw reads: no secret can slip past the redaction
            self.log.debug("RECV %s", _for_log(event))
        if kind is StanzaReceived:
            state = self.state
            if state is State.BOUND or state is State.OPEN or state is State.AUTHENTICATED:
                await self.server.router.process(self, event.element)
        elif kind is StreamOpened:
            await self._stream_opened(event)
        else:
            self._peer_closed = True
            if self.state is State.CLOSING:
                self._close_transport()
            else:
                self.close()

    async def _stream_opened(self, header: StreamOpened) -> None:
        if self.state is not State.WAIT_HEADER:
            self.close("not-well-formed")
            return
        if header.lang and _LANG_RE.match(header.lang):
            self.lang = header.lang  # the default for this client's stanzas, kept on restarts
        if header.to is None:
            self.close("improper-addressing", "A 'to' attribute is required on stream headers")
            return
        try:
            host = nameprep(header.to)
        except InvalidJID:
            host = header.to
        if self.host and host != self.host:
            self.close(
                "not-authorized", "The 'to' attribute must remain the same across stream restarts"
            )
            return
        if host not in self.server.hosts:
            self.host = host  # the header answers as the name asked for, as Prosody does
            self.close("host-unknown", "This server does not serve " + header.to)
            self.host = ""
            return
        self.host = host
        if self.username is None:
            self.jid = JID(None, host)
        if header.version is None or not header.version.startswith("1."):
            self.close("unsupported-version")
            return
        self._send_header()
        self._set_state(State.AUTHENTICATED if self.authenticated else State.OPEN)
        features = st.element("{http://etherx.jabber.org/streams}features")
        await self.host_obj.events.fire(STREAM_FEATURES, StreamFeatures(self, features))
        self._write(_features_bytes(features))

    # -- output and teardown --------------------------------------------------------------

    def _send_header(self) -> None:
        self.stream_id = str(uuid.uuid4())
        host = self.host or next(iter(self.server.hosts))
        self._header_sent = True
        self._write(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client'"
            " xmlns:stream='http://etherx.jabber.org/streams'"
            f" id='{self.stream_id}' from='{st.escape(host)}' version='1.0' xml:lang='en'>".encode()
        )

    def _write(self, data: bytes, logged: bytes | None = None) -> bool:
        """Write ``data`` (logged as ``logged`` when given: a stanza with its secrets cut out;
        what else is written here, headers, features and stream errors, holds none)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        if self._wire:
            self.log.debug("SEND %s", data if logged is None else logged)
        if self._out is not None:
            self._out.append(data)
        elif self.server.batch is not None:  # another session's input caused this
            self._out = [data]
            self.server.batch.append(self)
        else:
            transport.write(data)
        return True

    def _open_batch(self) -> bool:
        if self.server.batch is not None:
            return False
        self.server.batch = []
        return True

    def _flush_batch(self) -> None:
        sessions, self.server.batch = self.server.batch or [], None
        for session in sessions:
            session._uncork()

    def _cork(self) -> bool:
        """Hold output until _uncork(): what one input chunk causes leaves in one write."""
        if self._out is not None:
            return False
        self._out = []
        return True

    def _uncork(self) -> None:
        out, self._out = self._out, None
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def _set_state(self, new: State) -> None:
        if new not in TRANSITIONS[self.state]:
            raise RuntimeError(f"c2s{self.id}: invalid transition {self.state} -> {new}")
        self.state = new

    def _unbind(self, error: str | None) -> None:
        if self._unbound:
            return
        self._unbound = True
        if self.resource is None or not self.host:
            return
        host = self.host_obj
        host.sessions.remove(self)
        task = self._loop.create_task(
            host.events.fire(RESOURCE_UNBIND, ResourceUnbind(self, error))
        )
        self._unbind_task = task
        self.server.keep(task)

    async def unbound(self) -> None:
        """Wait until modules have handled this session's going away (its ``unavailable``
        has been sent)."""
        if self._unbind_task is not None:
            await asyncio.shield(self._unbind_task)

    def _close_transport(self) -> None:
        self._uncork()
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _lost(self, error: str | None = None) -> None:
        if self.state is State.CLOSED:
            return
        self._set_state(State.CLOSED)
        self._unbind(error or "connection closed")  # no-op after a close()
        self.parser.release()
        if self._close_timer is not None:
            self._close_timer.cancel()
        self.server.forget(self)
        self.log.debug("connection closed%s", f" ({error})" if error else "")


def _features_bytes(features: etree._Element) -> bytes:
    # The features element is built in the streams namespace; write it with the stream prefix.
    inner = b"".join(st.tostring(child) for child in features)
    return b"<stream:features>" + inner + b"</stream:features>"


async def _finish(coro: Coroutine[Any, Any, None], waiting: Any, session: Session) -> None:
    """Drive a coroutine that suspended after its synchronous first step to completion.

    This is what an asyncio Task would have done after its first step: wait for the awaited
    future, then send into the coroutine again; the coroutine reads the future's result itself.
    Each step's output to other sessions is batched, as in ``data_received``.
    """
    while True:
        error: BaseException | None = None
        if waiting is None:
            await asyncio.sleep(0)  # a bare yield
        else:
            # The coroutine marked the future as awaited (as a Task expects); a Task clears the
            # mark before waiting on it, and so must we.
            waiting._asyncio_future_blocking = False
            try:
                await waiting
            except asyncio.CancelledError as exc:
                if not (isinstance(waiting, asyncio.Future) and waiting.cancelled()):
                    error = exc
            except BaseException:  # noqa: S110 - the coroutine re-raises it from its own await
                pass
        batch = session._open_batch()
        try:
            waiting = coro.send(None) if error is None else coro.throw(error)
        except StopIteration:
            return
        finally:
            if batch:
                session._flush_batch()


def _for_log(event: Any) -> bytes | str:
    if isinstance(event, StanzaReceived):
        return for_log(event.element)
    if isinstance(event, StreamOpened):
        return f"<stream:stream to={event.to!r} from={event.from_!r} version={event.version!r}>"
    return "</stream:stream>"
