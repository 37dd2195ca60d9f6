"""A sans-I/O XMPP stream (server side): bytes in, events out; actions in, bytes out.

Theory of operation
-------------------
``XmppStream`` knows nothing about sockets, sessions or modules. The connection feeds it what
the transport read (``receive``) and gets stream events back (the peer's header, elements, its
close); it calls the stream's actions (``open``, ``send``, ``restart``, ``start_tls``, ``close``)
and writes the bytes they return. Every action and event is checked against ``TRANSITIONS``, an
explicit (state, event) -> state table: anything else is a ``StreamStateError`` (our bug) or,
for what the peer sent, a ``StreamError`` (its fault, which closes the stream).

::

    WAIT_HEADER --open--> OPEN --restart--> WAIT_HEADER      (after SASL)
                          OPEN --starttls-> SECURING --secured--> WAIT_HEADER
    WAIT_HEADER/OPEN --close--> CLOSING --peer-close/lost--> CLOSED
    SECURING --close--> CLOSED (no XML can be sent mid-handshake)

How the stream is framed (one XML document over TCP, or RFC 7395's ``<open/>``/``<close/>`` over
WebSocket) is the ``Framing``'s business (framing.py); the stream is the same over both.

STARTTLS and restarts: nothing the client sent after ``<starttls/>`` or after the element that
led to a restart may be used (RFC 6120 §5.4.3.3, §6.4.6): ``start_tls()`` and ``restart()``
refuse (``StreamError``) if any input is held, whole or partial.
"""

from __future__ import annotations

import enum
import uuid

from lxml import etree

from minixmpp.errors import StreamError
from minixmpp.framing import Framing
from minixmpp.xml.parser import Event, StanzaReceived, StreamClosed, StreamOpened


class State(enum.Enum):
    WAIT_HEADER = "wait-header"  # before the peer's (first or restarted) stream header
    OPEN = "open"  # both headers exchanged: elements flow
    SECURING = "securing"  # <proceed/> sent: only the TLS handshake may follow
    CLOSING = "closing"  # our close is sent; the peer's may still come
    CLOSED = "closed"


TRANSITIONS: dict[State, dict[str, State]] = {
    State.WAIT_HEADER: {
        "open": State.OPEN,
        "peer-close": State.WAIT_HEADER,  # a restarted stream closed at once: answered by close()
        "close": State.CLOSING,
        "lost": State.CLOSED,
    },
    State.OPEN: {
        "send": State.OPEN,
        "restart": State.WAIT_HEADER,
        "starttls": State.SECURING,
        "peer-close": State.OPEN,  # answered by close()
        "close": State.CLOSING,
        "lost": State.CLOSED,
    },
    State.SECURING: {"secured": State.WAIT_HEADER, "close": State.CLOSED, "lost": State.CLOSED},
    State.CLOSING: {"peer-close": State.CLOSED, "close": State.CLOSING, "lost": State.CLOSED},
    State.CLOSED: {"peer-close": State.CLOSED, "lost": State.CLOSED, "close": State.CLOSED},
}
# The peer's side is checked as it is parsed (a chunk may hold its header and its first
# elements, parsed before we answer): its header first, then elements, then its close.


class StreamStateError(RuntimeError):
    """An action that the stream's state does not allow: a bug in the caller."""


class XmppStream:
    """One XMPP stream over one connection (restarts included), the server's side."""

    __slots__ = ("framing", "header_sent", "id", "peer_closed", "peer_opened", "state")

    def __init__(self, framing: Framing) -> None:
        self.framing = framing
        self.state = State.WAIT_HEADER
        self.id = ""
        self.header_sent = False  # for this (restarted) stream
        self.peer_opened = False  # the peer's header for this (restarted) stream was parsed
        self.peer_closed = False

    def _go(self, event: str) -> None:
        new = TRANSITIONS[self.state].get(event)
        if new is None:
            raise StreamStateError(f"'{event}' is not allowed in state {self.state.value}")
        self.state = new

    # -- input ------------------------------------------------------------------------------

    def receive(self, data: bytes) -> list[Event]:
        """The events ``data`` completes (none while closed). Raises StreamError."""
        state = self.state
        if state is State.CLOSED or state is State.SECURING:
            return []
        events = self.framing.feed(data)
        for event in events:
            kind = type(event)
            if kind is StanzaReceived:
                if not self.peer_opened:
                    raise StreamError("not-well-formed", "An element before the stream header")
            elif kind is StreamOpened:
                if self.peer_opened:
                    raise StreamError("not-well-formed", "A stream header inside the stream")
                self.peer_opened = True
            else:
                assert kind is StreamClosed
                if not self.peer_opened:
                    raise StreamError("not-well-formed", "A stream close before the header")
                self.peer_closed = True
                self._go("peer-close")
        return events

    @property
    def has_pending_input(self) -> bool:
        """Bytes received but not yet part of a complete element are held."""
        return self.framing.parser.has_pending_input()

    # -- actions ----------------------------------------------------------------------------

    def open(self, from_: str) -> bytes:
        """Answer the peer's header with ours (a new stream id each time)."""
        self._go("open")
        return self._header(from_)

    def _header(self, from_: str) -> bytes:
        self.id = str(uuid.uuid4())
        self.header_sent = True
        return self.framing.header(from_=from_, id=self.id)

    def features(self, features: etree._Element) -> bytes:
        self._go("send")
        return self.framing.features(features)

    def send(self, element: etree._Element) -> bytes | None:
        """The element's bytes; None once the stream is closing (it can take nothing more)."""
        state = self.state
        if state is State.OPEN:
            return self.framing.element(element)
        if state is State.CLOSING or state is State.CLOSED:
            return None
        raise StreamStateError(f"cannot send in state {state.value}")

    def restart(self, *, more_events: bool = False) -> None:
        """The peer must open a new stream next (after SASL). ``more_events``: elements
        already parsed after the one that caused the restart (a StreamError)."""
        if more_events or self.has_pending_input:
            raise StreamError("policy-violation", "Data sent before the stream restart")
        self._go("restart")
        self.header_sent = self.peer_opened = False
        self.framing.restart()

    def start_tls(self, proceed: etree._Element, *, more_events: bool = False) -> bytes:
        """``proceed``'s bytes, the last XML before TLS takes over (a StreamError if any input
        is held after the request)."""
        if more_events or self.has_pending_input:
            raise StreamError("policy-violation", "Data sent after <starttls/>")
        data = self.framing.element(proceed)
        self._go("starttls")
        self.framing.restart()
        self.header_sent = self.peer_opened = False
        return data

    def secured(self) -> None:
        """The TLS handshake is done: the peer opens a new stream."""
        self._go("secured")

    def close(
        self,
        condition: str | None = None,
        text: str | None = None,
        app: str | None = None,
        *,
        from_: str = "",
    ) -> list[bytes]:
        """Our close, as units of output: a header first if none was sent, a stream error if
        ``condition``, the stream's end. None once closing, nor while securing (no XML can go
        out mid-handshake)."""
        state = self.state
        self._go("close")
        if state is not State.WAIT_HEADER and state is not State.OPEN:
            return []
        out = [] if self.header_sent else [self._header(from_)]
        if condition is not None:
            out.append(self.framing.error(condition, text, app))
        if self.peer_closed:
            self.state = State.CLOSED
        out.append(self.framing.closing())
        return out

    def lost(self) -> None:
        """The transport is gone."""
        self._go("lost")
