"""Framings: how one XMPP stream is carried by a transport.

A framing turns the transport's input into stream events (``StreamOpened``, ``StanzaReceived``,
``StreamClosed``) and the stream's output into the transport's units. The stream above it
(``stream.XmppStream``) and every module are the same whatever the framing.

- ``TcpFraming`` (RFC 6120): the stream is one XML document, ``<stream:stream>`` to
  ``</stream:stream>``; a restart is a new document, so the parser starts over.
- ``WebSocketFraming`` (RFC 7395): every text frame holds complete elements, each a standalone
  document with its own namespace declarations; ``<open/>`` and ``<close/>`` in the
  ``urn:ietf:params:xml:ns:xmpp-framing`` namespace stand for the stream's start and end; a
  restart is just a new ``<open/>``.
"""

from __future__ import annotations

import re
from typing import Protocol

from lxml import etree

from minixmpp.errors import StreamError
from minixmpp.xml import stanza as st
from minixmpp.xml.parser import (
    NS_CLIENT,
    NS_STREAM,
    Event,
    StanzaReceived,
    StreamClosed,
    StreamOpened,
    StreamParser,
    normalise,
)

NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_OPEN = f"{{{NS_FRAMING}}}open"
_CLOSE = f"{{{NS_FRAMING}}}close"
_CLIENT = f"{{{NS_CLIENT}}}"
_STREAM = f"{{{NS_STREAM}}}stream"
_XMLNS_CLIENT = b" xmlns='jabber:client'"
# A frame that starts with a stanza declaring jabber:client, as clients write it (first, or
# last as Strophe.js does): the declaration is taken out before parsing, so the stanza parses
# as the plain-tag stanza the server works with, and needs no renaming afterwards. Attributes
# are matched whole (a quoted value may hold ">" or "xmlns="), and only where no other default
# namespace is declared in the start tag (a duplicate must stay the error it is).
_S = rb"[ \t\r\n]"
_ATTR = rb"(?:" + _S + rb"+(?!xmlns" + _S + rb"*=)[^ \t\r\n=/>]+" + _S + rb"*=" + _S
_ATTR += rb"*(?:'[^']*'|\"[^\"]*\"))"
_DECLARED = re.compile(
    rb"[ \t\r\n]*<(?:message|presence|iq)" + _ATTR + rb"*?" + _S + rb"+"
    rb"(xmlns" + _S + rb"*=" + _S + rb"*(['\"])jabber:client\2)"
    rb"(?=" + _ATTR + rb"*" + _S + rb"*/?>)"
)


class Framing(Protocol):
    """What the stream needs from a framing."""

    name: str  # "tcp" or "websocket"
    parser: StreamParser

    def feed(self, data: bytes) -> list[Event]:
        """Events completed by ``data``. Raises StreamError."""
        ...

    def restart(self) -> None:
        """The next input opens a new stream."""
        ...

    def header(self, *, from_: str, id: str) -> bytes:
        """Our side's stream opening."""
        ...

    def element(self, element: etree._Element) -> bytes:
        """A stanza or nonza as one unit of output."""
        ...

    def features(self, features: etree._Element) -> bytes: ...

    def error(self, condition: str, text: str | None, app: str | None) -> bytes: ...

    def closing(self) -> bytes:
        """Our side's stream end."""
        ...


class TcpFraming:
    """RFC 6120 over TCP: one ``<stream:stream>`` document per stream."""

    name = "tcp"
    __slots__ = ("parser",)

    def __init__(self, max_size: int) -> None:
        self.parser = StreamParser(max_size)

    def feed(self, data: bytes) -> list[Event]:
        return self.parser.feed(data)

    def restart(self) -> None:
        self.parser.reset()

    def header(self, *, from_: str, id: str) -> bytes:
        return (
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client'"
            " xmlns:stream='http://etherx.jabber.org/streams'"
            f" id='{id}' from='{st.escape(from_)}' version='1.0' xml:lang='en'>"
        ).encode()

    def element(self, element: etree._Element) -> bytes:
        return st.tostring(element)

    def features(self, features: etree._Element) -> bytes:
        # Built in the streams namespace: written with the stream prefix the header declared.
        inner = b"".join(st.tostring(child) for child in features)
        return b"<stream:features>" + inner + b"</stream:features>"

    def error(self, condition: str, text: str | None, app: str | None) -> bytes:
        return st.stream_error(condition, text, app)

    def closing(self) -> bytes:
        return b"</stream:stream>"


class WebSocketFraming:
    """RFC 7395: elements in text frames; ``<open/>`` and ``<close/>``."""

    name = "websocket"
    __slots__ = ("parser",)

    def __init__(self, max_size: int) -> None:
        self.parser = StreamParser(max_size, fragments=True)

    def feed(self, data: bytes) -> list[Event]:
        declared = _DECLARED.match(data)
        if declared is not None:
            start, end = declared.span(1)
            data = data[:start] + data[end:]
        events = self.parser.feed(data)
        if self.parser.has_pending_input():
            raise StreamError("not-well-formed", "A frame must hold complete elements")
        if declared is not None and len(events) == 1 and type(events[0]) is StanzaReceived:
            return events  # a frame of one stanza, as clients send them: a plain-tag stanza
        out: list[Event] = []
        for i, event in enumerate(events):
            if type(event) is not StanzaReceived:  # the fragments' own root ended: not ours
                raise StreamError("not-well-formed")
            el = event.element
            tag = el.tag
            if tag == _OPEN:
                out.append(_opened(el))
            elif tag == _CLOSE:
                out.append(StreamClosed())
            elif tag == _STREAM:
                raise StreamError("not-well-formed", "No stream headers in WebSocket framing")
            elif tag.startswith(_CLIENT):
                normalise(el)
                out.append(event)
            elif tag.startswith("{") or (i == 0 and declared is not None):
                out.append(event)
            else:  # no namespace: each element must declare its own (RFC 7395 §3.3.3)
                raise StreamError("unsupported-stanza-type", "Stanzas need xmlns='jabber:client'")
        return out

    def restart(self) -> None:
        pass  # each element stands alone; the next one must be an <open/> (the stream checks)

    def header(self, *, from_: str, id: str) -> bytes:
        return (
            f"<open xmlns='{NS_FRAMING}' id='{id}' from='{st.escape(from_)}'"
            " version='1.0' xml:lang='en'/>"
        ).encode()

    def element(self, element: etree._Element) -> bytes:
        data = st.tostring(element)
        if isinstance(element.tag, str) and not element.tag.startswith("{"):
            # A stanza (plain tag) in jabber:client: each frame must declare it (RFC 7395 §3.3)
            name_end = len(element.tag) + 1
            return b"".join((data[:name_end], _XMLNS_CLIENT, data[name_end:]))
        return data

    def features(self, features: etree._Element) -> bytes:
        inner = b"".join(st.tostring(child) for child in features)
        return (
            f"<stream:features xmlns:stream='{NS_STREAM}'>".encode()
            + inner
            + (b"</stream:features>")
        )

    def error(self, condition: str, text: str | None, app: str | None) -> bytes:
        data = st.stream_error(condition, text, app)
        return data.replace(
            b"<stream:error>", f"<stream:error xmlns:stream='{NS_STREAM}'>".encode(), 1
        )

    def closing(self) -> bytes:
        return f"<close xmlns='{NS_FRAMING}'/>".encode()


def _opened(el: etree._Element) -> StreamOpened:
    return StreamOpened(
        to=el.get("to"),
        from_=el.get("from"),
        version=el.get("version"),
        lang=el.get(XML_LANG),
        id=el.get("id"),
    )
