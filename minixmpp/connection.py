"""A client connection: a transport, the XMPP stream over it, and the session on it.

Theory of operation
-------------------
The transport (net.py's TCP one, or mod_websocket's) calls the asyncio.Protocol callbacks. Input
goes to the sans-I/O stream (stream.py), whose events are handled one at a time, in order
(scheduling.InOrder): the peer's header is answered here (host, version, features), elements go
to the router. While a handler waits (storage), later input is held unparsed; so a handler that
restarts the stream (SASL) or starts TLS always does it before the next byte is read. An input
throttle (mod_limits) may let only part of what arrived through: the rest is held the same way,
and reading pauses, until the throttle calls ``release_input()``. Reading is paused while any
reason to pause holds (a throttle, too much held, a client that does not read our output).

Every callback and every event runs inside one error boundary (``_guard``, ``_handle``): a
``StreamError`` closes the stream with it; anything else is logged once with its traceback and
closes the stream with ``internal-server-error``; the server goes on serving everyone else.
(Stanza handlers' exceptions become stanza errors in the router, the innermost boundary.)

Output is written through the server's ``WriteCoalescer``: what this connection is sent during
one event-loop turn leaves in one write (TCP) or one frame per element (WebSocket).
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from typing import TYPE_CHECKING, Any

from lxml import etree

from minixmpp.admission import Refusal
from minixmpp.errors import StreamError
from minixmpp.framing import Framing
from minixmpp.inputgate import InputGate
from minixmpp.jid import JID, InvalidJID, nameprep
from minixmpp.scheduling import InOrder
from minixmpp.session import C2SSession
from minixmpp.stream import State, XmppStream
from minixmpp.tls import tls_failure
from minixmpp.transport import ConnectionSetup as ConnectionSetup
from minixmpp.transport import InputThrottle, Transport
from minixmpp.xml.parser import Event, StanzaReceived, StreamOpened
from minixmpp.xml.redact import for_log

if TYPE_CHECKING:
    from minixmpp.server import Server

log = logging.getLogger("minixmpp.connection")

_LANG_RE = re.compile(r"^[A-Za-z0-9]{1,8}(-[A-Za-z0-9]{1,8})*$")
MAX_WRITE_BUFFER = 4 * 1024 * 1024  # unsent bytes before a client that does not read is dropped


class Connection:
    """One client connection (see the module docstring)."""

    __slots__ = (
        "__weakref__",
        "_admitted",
        "_checked",
        "_clock",
        "_close_timer",
        "_events",
        "_linger",
        "_loop",
        "_lost_called",
        "_out",
        "_refusal",
        "_restart",
        "_wire",
        "close_condition",
        "input",
        "kind",
        "last_activity",
        "log",
        "opened_at",
        "server",
        "session",
        "stream",
        "transport",
    )  # fmt: skip

    def __init__(self, server: Server, framing: Framing, *, secure: bool = False) -> None:
        self.server = server
        self.kind = framing.name
        self.stream = XmppStream(framing)
        self.transport: Transport | None = None
        self.session = C2SSession(server.hosts, self, ip="", secure=secure)
        self.log = self.session.log
        self.close_condition: str | None = None  # the stream error we closed with, if any
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._clock = server.clock  # idle times are on the server's clock (tests move it)
        self.opened_at = self.last_activity = self._clock.monotonic()
        self._events = InOrder(self._handle, self._resumed, server.keep)
        self.input = InputGate(self)
        self._out: list[bytes] = []
        self._restart = False
        self._close_timer: asyncio.TimerHandle | None = None
        self._linger = True  # see Transport.close
        self._admitted: str | None = None  # counted among the unauthenticated from this address
        self._refusal: Refusal | None = None
        self._checked = False  # admit() was called
        self._lost_called = False
        self._wire = log.isEnabledFor(logging.DEBUG)
        framing.parser.max_stanza_size = server.options.c2s_unauthed_stanza_size_limit

    # -- transport callbacks ----------------------------------------------------------------

    def admit(self, ip: str) -> bool:
        """Count this connection from ``ip`` among the unauthenticated ones (admission.py);
        False when a cap refuses it. A listener calls it when it accepts the socket, before
        any TLS handshake; otherwise ``connection_made`` does. A refused connection is closed
        with the stream error as soon as it is made."""
        self.session.ip = ip
        self._checked = True
        self._refusal = self.server.admission.enter(ip)
        if self._refusal is not None:
            return False
        self._admitted = ip
        return True

    def connection_made(self, transport: Transport) -> None:
        self.transport = transport
        if not self._checked:
            peer = transport.get_extra_info("peername")
            self.admit(peer[0] if peer else "")
        self.server.connections.add(self)
        self.log.debug("%s connection from %s", self.kind, self.session.ip)
        if self.server.stopping:
            self.close("system-shutdown", self.server.stop_reason)
            return
        if self._refusal is not None:
            self._linger = False  # refused clients must not hold descriptors for long
            self.close(self._refusal.condition, self._refusal.text)
            return
        for setup in self.server.connection_setups():
            self.guard(setup.setup, self)

    def connection_failed(self, exc: Exception | None) -> None:
        """The transport ended before ``connection_made`` (a TLS handshake that failed)."""
        self._leave_admission()

    def data_received(self, data: bytes) -> None:
        self.last_activity = self._clock.monotonic()
        self.input.receive(data)

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard(self._lost, None if exc is None else str(exc) or type(exc).__name__)

    def pause_writing(self) -> None:
        self.input.pause("writing")  # stop producing replies for a reader that lags

    def resume_writing(self) -> None:
        self.input.unpause("writing")

    def guard(self, fn: Any, arg: Any) -> None:
        """The error boundary around transport callbacks."""
        try:
            fn(arg)
        except Exception:
            self.log.exception("internal error on a %s connection", self.kind)
            self.close("internal-server-error")

    # -- input --------------------------------------------------------------------------------

    def set_input_throttle(self, throttle: InputThrottle | None) -> None:
        """Meter the input from now on (None: stop metering, and go on with what was held)."""
        self.input.set_throttle(throttle)

    def release_input(self) -> None:
        """The throttle has room again: handle what it held back, and read on."""
        self.input.release()

    @property
    def busy(self) -> bool:
        """An event handler waits: input is held."""
        return self._events.busy

    @property
    def open_for_input(self) -> bool:
        return self.stream.state is not State.CLOSED

    def touch(self) -> None:
        self.last_activity = self._clock.monotonic()

    def feed(self, data: bytes) -> None:
        """Parse ``data`` and handle the events it completes (the input gate calls it)."""
        try:
            events = self.stream.receive(data)
        except StreamError as exc:
            if self.stream.state is State.CLOSING:  # after our close: nothing more to say
                self._close_transport()
            else:
                self.close(exc.condition, exc.text, exc.app)
            return
        if events:
            self._events.push(events)

    def _resumed(self) -> None:
        """The suspended handler and the events behind it are done: parse what was held."""
        self.input.process_held()

    async def _handle(self, event: Event) -> None:
        """One stream event, inside the error boundary."""
        if self.stream.state is State.CLOSED or self.stream.state is State.SECURING:
            return
        try:
            if self._wire:  # what was parsed, not raw reads: no secret slips past the redaction
                self.log.debug("RECV %s", _for_log(event, self.server.log_secrets))
            kind = type(event)
            tap = self.server.wiretap
            if tap is not None:
                tap(self, True, _for_log(event, []))
            if kind is StanzaReceived:
                if self.stream.state is State.OPEN:
                    session = self.session
                    element: etree._Element | None = event.element  # type: ignore[union-attr]
                    for fn in session.filters.incoming:
                        if element is None:
                            break
                        element = fn(element)
                    if element is not None:
                        await self.server.router.process(session, element)
            elif kind is StreamOpened:
                await self._stream_opened(event)  # type: ignore[arg-type]
            elif self.stream.state is State.CLOSING:
                self._close_transport()  # the peer's answer to our close
            else:
                self.close()
            if self._restart:
                self._restart = False
                self.stream.restart(more_events=self._events.pending > 0 or self.input.holding)
        except StreamError as exc:
            self.close(exc.condition, exc.text, exc.app)
        except Exception:
            self.log.exception("internal error while handling %s", type(event).__name__)
            self.close("internal-server-error")

    async def _stream_opened(self, header: StreamOpened) -> None:
        session = self.session
        if header.lang and _LANG_RE.match(header.lang):
            session.lang = header.lang  # the default for this client's stanzas, kept on restarts
        if header.to is None:
            raise StreamError(
                "improper-addressing", "A 'to' attribute is required on stream headers"
            )
        try:
            host = nameprep(header.to)
        except InvalidJID:
            host = header.to
        if session.host and host != session.host:
            raise StreamError(
                "not-authorized", "The 'to' attribute must remain the same across stream restarts"
            )
        if host not in self.server.hosts:
            self.close("host-unknown", "This server does not serve " + header.to, from_=host)
            return
        session.host = host
        if session.username is None:
            session.jid = JID(None, host)
        if header.version is None or not header.version.startswith("1."):
            raise StreamError("unsupported-version")
        self.write(self.stream.open(host))
        self.send_features(await session.stream_features())

    # -- what the session asks of its connection (session.Link) --------------------------------

    def send_features(self, features: etree._Element) -> bool:
        """Write ``<stream:features/>``: after the stream header, and after a SASL2 success
        (XEP-0388), which has no stream restart. False once the stream is closing."""
        if self.stream.state is not State.OPEN or self.transport is None:
            return False
        self.write(self.stream.features(features))
        return True

    def send_element(self, element: etree._Element) -> bool:
        intercept = self.server.intercept
        if intercept is not None and intercept(self, element):
            return True  # taken by the test harness (a reply it delays or drops)
        data = self.stream.send(element)
        if data is None or self.transport is None or self.transport.is_closing():
            return False
        if self._wire:
            self.log.debug("SEND %s", for_log(element, self.server.log_secrets))
        self.write(data)
        if self.transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            # It is not reading: it would never read an error either. Drop it.
            self.log.warning("client is not reading; dropping the connection")
            self.abort()
        return True

    async def drain(self) -> None:
        self.flush()  # what this turn queued must reach the transport first
        if self.transport is not None:
            await self.transport.wait_drained()

    def request_restart(self) -> None:
        self._restart = True

    def adopt(self, session: C2SSession) -> None:
        """Carry ``session`` from now on: XEP-0198 resumption moves a session to the
        connection of a new login (``C2SSession.take_over``)."""
        self.session = session
        self.log = session.log

    def authenticated(self) -> None:
        self.stream.framing.parser.max_stanza_size = self.server.options.c2s_stanza_size_limit
        self._leave_admission()  # authenticated connections are not capped

    def _leave_admission(self) -> None:
        if self._admitted is not None:
            self.server.admission.leave(self._admitted)
            self._admitted = None

    def ssl_object(self) -> ssl.SSLObject | ssl.SSLSocket | None:
        return None if self.transport is None else self.transport.get_extra_info("ssl_object")

    def end_point_hash(self) -> bytes | None:
        ssl_object = self.ssl_object()
        return None if ssl_object is None else self.server.tls.end_point_hash(ssl_object.context)

    async def start_tls(self, context: ssl.SSLContext, proceed: etree._Element) -> bool:
        transport = self.transport
        start = getattr(transport, "start_tls", None)
        if transport is None or start is None:
            return False
        try:
            more = self._events.pending > 0 or self.input.holding
            data = self.stream.start_tls(proceed, more_events=more)
        except StreamError:
            # Data pipelined after <starttls/> is an injection attempt (or a broken client).
            self.log.warning("refusing STARTTLS: data after <starttls/>")
            return False
        self.write(data)
        self.flush()
        try:
            await start(context, self.server.tls_handshake_timeout)
        except (OSError, ValueError, RuntimeError) as exc:  # ssl.SSLError and timeouts: OSError
            reason = tls_failure(exc)
            self.log.info("TLS handshake failed from %s (STARTTLS): %s", self.session.ip, reason)
            self._lost(f"TLS handshake failed: {reason}")
            return False
        if self.stream.state is not State.SECURING:
            return False
        self.stream.secured()
        if self.input.paused and self.transport is not None:
            self.transport.pause_reading()  # start_tls() resumed it: a reason still holds
        return True

    # -- output and the end ---------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        tap = self.server.wiretap
        if tap is not None:
            tap(self, False, data)
        if not self._out:
            self.server.coalescer.request(self)
        self._out.append(data)

    def flush(self) -> None:
        out, self._out = self._out, []
        transport = self.transport
        if out and transport is not None and not transport.is_closing():
            transport.writelines(out)

    def close(
        self,
        condition: str | None = None,
        text: str | None = None,
        app: str | None = None,
        *,
        from_: str | None = None,
    ) -> None:
        """Close the stream (with a stream error when ``condition`` is given)."""
        state = self.stream.state
        if self.transport is None:
            return
        if condition == "system-shutdown":
            self._linger = False  # the server stops: it does not wait for clients to close
            if state is State.CLOSING or state is State.CLOSED:
                if self.transport.is_closing():
                    self.transport.close(linger=False)
                return
        if state is State.CLOSING or state is State.CLOSED:
            return
        if state is State.SECURING:  # mid-handshake: no XML can be sent any more
            self.abort()
            return
        if condition is not None:
            self.close_condition = condition
            session = self.session
            # Once per stream, at info, but for shutdown (one line per client would say nothing)
            # and for refused connections (logged once per address by admission.py).
            quiet = condition == "system-shutdown" or self._refusal is not None
            self.log.log(
                logging.DEBUG if quiet else logging.INFO,
                "stream error to %s%s: %s%s",
                session.ip,
                f" ({session.username}@{session.host})" if session.authenticated else "",
                condition,
                f" ({text})" if text else "",
            )
        host = from_ or self.session.host or next(iter(self.server.hosts))
        units = self.stream.close(condition, text, app, from_=host)
        if self._wire:
            for unit in units:
                self.log.debug("SEND %s", unit)
        for unit in units:
            self.write(unit)
        graceful = condition is None and self.session.authenticated and not self.stream.peer_closed
        self.session.end(None if condition is None else text or condition)
        if graceful:
            # Give an authenticated client a moment to send what it had and close its stream.
            timeout = self.server.options.c2s_close_timeout
            self._close_timer = self._loop.call_later(timeout, self._close_transport)
        else:
            self._close_transport()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self._lost("aborted")

    def _close_transport(self) -> None:
        self.flush()
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close(linger=self._linger)

    def _lost(self, error: str | None) -> None:
        if self._lost_called:
            return
        self._lost_called = True
        self._leave_admission()
        clean = self.stream.state is State.CLOSING or self.stream.state is State.CLOSED
        self.stream.lost()
        self._events.close()
        self.input.close()
        self.stream.framing.parser.release()
        if self._close_timer is not None:
            self._close_timer.cancel()
        self.server.forget(self)
        if self.session.state != "ended":
            if clean:
                self.session.end(error or "connection closed")
            else:
                self.session.connection_lost(error)
        self.log.debug("connection closed%s", f" ({error})" if error else "")
        # The transport points back at this connection: dropping it here (and the callbacks
        # above) frees a closed connection at once instead of at the next full collection,
        # which, with the collector tuned for the server, can be hours away under login churn.
        self.transport = None

    def hibernate(self) -> bool:
        """Free the parser's memory while idle (called by the server's sweeper, idle.py)."""
        if self._events.busy or self.session.state != "bound":
            return False
        return self.stream.framing.parser.hibernate()


def _for_log(event: Event, patterns: list[re.Pattern[str]]) -> bytes | str:
    if isinstance(event, StanzaReceived):
        return for_log(event.element, patterns)
    if isinstance(event, StreamOpened):
        return f"<stream:stream to={event.to!r} from={event.from_!r} version={event.version!r}>"
    return "</stream:stream>"
