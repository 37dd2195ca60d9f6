"""The sans-I/O XMPP stream and its framings, synchronously: bytes in, events out; actions in,
bytes out; every state change checked against the table."""

from __future__ import annotations

import pytest
from lxml import etree

from minixmpp.errors import StreamError
from minixmpp.framing import NS_FRAMING, TcpFraming, WebSocketFraming
from minixmpp.stream import TRANSITIONS, State, StreamStateError, XmppStream
from minixmpp.xml import stanza as st
from minixmpp.xml.parser import StanzaReceived, StreamClosed, StreamOpened

HEADER = (
    b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
    b" to='localhost' version='1.0'>"
)
OPEN = f"<open xmlns='{NS_FRAMING}' to='localhost' version='1.0'/>".encode()
CLOSE = f"<close xmlns='{NS_FRAMING}'/>".encode()
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"


def tcp() -> XmppStream:
    return XmppStream(TcpFraming(10_000))


def ws() -> XmppStream:
    return XmppStream(WebSocketFraming(10_000))


def kinds(events: list[object]) -> list[str]:
    return [type(e).__name__ for e in events]


def test_a_tcp_stream_from_header_to_close() -> None:
    stream = tcp()
    events = stream.receive(HEADER + b"<presence/>")
    assert kinds(events) == ["StreamOpened", "StanzaReceived"]
    assert isinstance(events[0], StreamOpened) and events[0].to == "localhost"
    header = stream.open("localhost")
    assert header.startswith(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client'")
    assert f"id='{stream.id}'".encode() in header and stream.state is State.OPEN
    features = stream.features(st.element("{http://etherx.jabber.org/streams}features"))
    assert features == b"<stream:features></stream:features>"
    assert stream.send(st.element("message", {"to": "a@b"})) == b'<message to="a@b"/>'
    assert kinds(stream.receive(b"</stream:stream>")) == ["StreamClosed"]
    assert stream.peer_closed
    assert stream.close() == [b"</stream:stream>"]
    assert stream.state is State.CLOSED  # both sides have closed
    assert stream.send(st.element("message")) is None


def test_closing_before_our_header_sends_one_first() -> None:
    stream = tcp()
    stream.receive(HEADER.replace(b"localhost", b"elsewhere"))
    units = stream.close("host-unknown", "not here", from_="elsewhere")
    assert len(units) == 3 and units[0].startswith(b"<?xml") and b"from='elsewhere'" in units[0]
    assert units[1] == st.stream_error("host-unknown", "not here")
    assert units[2] == b"</stream:stream>"
    assert stream.state is State.CLOSING
    assert stream.close() == []  # once


def test_a_restart_needs_a_new_header_and_nothing_pipelined() -> None:
    stream = tcp()
    stream.receive(HEADER)
    first = stream.open("localhost")
    stream.restart()
    assert stream.state is State.WAIT_HEADER
    assert kinds(stream.receive(HEADER)) == ["StreamOpened"]
    second = stream.open("localhost")
    assert first != second  # a new stream id

    pipelined = tcp()
    pipelined.receive(HEADER)
    pipelined.open("localhost")
    with pytest.raises(StreamError) as info:
        pipelined.restart(more_events=True)
    assert info.value.condition == "policy-violation"
    partial = tcp()
    partial.receive(HEADER)
    partial.open("localhost")
    partial.receive(b"<stream:stre")  # a new header, in part, before the restart happened
    with pytest.raises(StreamError):
        partial.restart()


def test_starttls_refuses_held_input_and_needs_a_new_header_after() -> None:
    stream = tcp()
    stream.receive(HEADER)
    stream.open("localhost")
    proceed = st.element(f"{{{NS_TLS}}}proceed")
    assert stream.start_tls(proceed) == st.tostring(proceed)
    assert stream.state is State.SECURING
    assert stream.receive(b"<message/>") == []  # the TLS layer owns the socket
    assert stream.close("system-shutdown") == []  # no XML mid-handshake
    assert stream.state is State.CLOSED

    injected = tcp()
    injected.receive(HEADER)
    injected.open("localhost")
    injected.receive(b"<iq type='set' id='x'>")  # plaintext after <starttls/>, in part
    with pytest.raises(StreamError):
        injected.start_tls(proceed)
    assert injected.state is State.OPEN


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"<presence/>", "An element before the stream header"),
        (HEADER + HEADER, "A stream header inside the stream"),
    ],
)
def test_the_peers_order_is_checked_as_parsed(data: bytes, reason: str) -> None:
    stream = tcp()
    if not data.startswith(HEADER):
        stream.framing.parser.feed(HEADER)  # a parser already past some header
    with pytest.raises(StreamError) as info:
        stream.receive(data)
    assert info.value.condition == "not-well-formed"


ACTIONS = sorted({action for table in TRANSITIONS.values() for action in table})


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("action", ACTIONS)
def test_every_transition_is_in_the_table(state: State, action: str) -> None:
    stream = tcp()
    stream.state = state
    allowed = action in TRANSITIONS[state]
    try:
        stream._go(action)
    except StreamStateError:
        assert not allowed
    else:
        assert allowed and stream.state is TRANSITIONS[state][action]


def test_actions_out_of_turn_are_our_bugs() -> None:
    stream = tcp()
    with pytest.raises(StreamStateError):
        stream.send(st.element("message"))  # before the header
    with pytest.raises(StreamStateError):
        stream.features(st.element("{http://etherx.jabber.org/streams}features"))
    with pytest.raises(StreamStateError):
        stream.secured()


# -- RFC 7395 framing -------------------------------------------------------------------------


def test_a_websocket_stream_from_open_to_close() -> None:
    stream = ws()
    events = stream.receive(OPEN)
    assert kinds(events) == ["StreamOpened"]
    assert isinstance(events[0], StreamOpened) and events[0].version == "1.0"
    header = stream.open("localhost")
    assert etree.fromstring(header).tag == f"{{{NS_FRAMING}}}open"
    assert b"from='localhost'" in header and f"id='{stream.id}'".encode() in header
    features = stream.features(st.element("{http://etherx.jabber.org/streams}features"))
    assert etree.fromstring(features).tag == "{http://etherx.jabber.org/streams}features"
    events = stream.receive(b"<message xmlns='jabber:client' to='a@b'><body>hi</body></message>")
    assert isinstance(events[0], StanzaReceived)
    assert events[0].element.tag == "message"  # jabber:client elements come out plain
    out = stream.send(events[0].element)
    assert out is not None
    parsed = etree.fromstring(out)  # a standalone document, namespace declared
    assert parsed.tag == "{jabber:client}message"
    assert parsed.find("{jabber:client}body") is not None
    error = stream.framing.error("policy-violation", "too big", None)
    assert etree.fromstring(error).tag == "{http://etherx.jabber.org/streams}error"
    assert kinds(stream.receive(CLOSE)) == ["StreamClosed"]
    assert stream.close() == [CLOSE]


def test_a_websocket_restart_is_a_new_open() -> None:
    stream = ws()
    stream.receive(OPEN)
    stream.open("localhost")
    stream.restart()
    with pytest.raises(StreamError):
        stream.receive(
            b"<iq xmlns='jabber:client' type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>"
        )
    again = ws()
    again.receive(OPEN)
    again.open("localhost")
    again.restart()
    assert kinds(again.receive(OPEN)) == ["StreamOpened"]


@pytest.mark.parametrize(
    "frame",
    [
        b"<message xmlns='jabber:client'><body>half",  # not a complete element
        HEADER,  # TCP framing's header
        b"</fragments>",  # the parser's own root
        b"hello",
        b"<message xmlns='jabber:client'><x:body/></message>",
    ],
)
def test_websocket_frames_that_are_not_complete_elements(frame: bytes) -> None:
    stream = ws()
    stream.receive(OPEN)
    stream.open("localhost")
    with pytest.raises(StreamError) as info:
        stream.receive(frame)
    assert info.value.condition in ("not-well-formed", "bad-format")


def test_websocket_stream_close_answers() -> None:
    stream = ws()
    assert kinds(stream.receive(OPEN)) == ["StreamOpened"]
    units = stream.close("host-unknown", None, from_="x")
    assert [etree.fromstring(u).tag for u in units] == [
        f"{{{NS_FRAMING}}}open",
        "{http://etherx.jabber.org/streams}error",
        f"{{{NS_FRAMING}}}close",
    ]


def test_a_closed_peer_stream_is_an_event_in_both_framings() -> None:
    stream = ws()
    stream.receive(OPEN)
    stream.open("localhost")
    assert [type(e) for e in stream.receive(CLOSE)] == [StreamClosed]


@pytest.mark.parametrize(
    "frame",
    [
        b"<message xmlns='jabber:client' to='a@b' id='x'><body>hi</body></message>",
        b'<message xmlns="jabber:client" to="a@b" id="x"><body>hi</body></message>',
        b"<message to='a@b' xmlns='jabber:client' id='x'><body>hi</body></message>",  # not first
        b"<message to='a@b' id='x' xmlns:c='jabber:client' xmlns='jabber:client'><body>hi</body>"
        b"</message>",
        b"<message to='a@b' id='x' xmlns='jabber:client'><body>hi</body></message>",  # last
        b"<message to='a@b'\n id = \"x\"\txmlns = 'jabber:client' ><body>hi</body></message>",
    ],
)
def test_websocket_stanzas_declaring_jabber_client_in_any_order(frame: bytes) -> None:
    stream = ws()
    stream.receive(OPEN)
    stream.open("localhost")
    (event,) = stream.receive(frame)
    assert isinstance(event, StanzaReceived)
    el = event.element
    assert (el.tag, el.get("to"), el.get("id")) == ("message", "a@b", "x")
    assert el.findtext("body") == "hi"  # children are plain jabber:client tags too


@pytest.mark.parametrize(
    ("frame", "to", "condition"),
    [
        # the declaration's text inside another attribute's value declares nothing
        (b"<message to='a@b' note=\" xmlns='jabber:client'\"><body/></message>", "a@b", None),
        (b"<message to='a>b' xmlns='jabber:client'><body/></message>", "a>b", "ok"),
        # two default namespaces: not well-formed, whichever comes first
        (b"<message xmlns='urn:x' xmlns='jabber:client'/>", None, "not-well-formed"),
        (b"<message xmlns='jabber:client' xmlns='urn:x'/>", None, "not-well-formed"),
    ],
)
def test_the_jabber_client_declaration_is_only_taken_where_it_is_one(
    frame: bytes, to: str | None, condition: str | None
) -> None:
    """The declaration is taken out of the frame before parsing (framing._DECLARED): only a
    whole attribute of the stanza's start tag, and never to make an ill-formed tag parse."""
    stream = ws()
    stream.receive(OPEN)
    stream.open("localhost")
    if condition == "ok":
        (event,) = stream.receive(frame)
        assert isinstance(event, StanzaReceived) and event.element.get("to") == to
        assert event.element.tag == "message"
        return
    with pytest.raises(StreamError) as info:
        stream.receive(frame)
    assert info.value.condition == (condition or "unsupported-stanza-type")


def test_a_websocket_stanza_without_a_namespace_is_refused() -> None:
    stream = ws()
    stream.receive(OPEN)
    stream.open("localhost")
    with pytest.raises(StreamError) as info:
        stream.receive(b"<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert info.value.condition == "unsupported-stanza-type"  # as Prosody answers it


def test_a_forwarded_stanza_keeps_its_namespace_below_another() -> None:
    frame = (
        b"<message xmlns='jabber:client' to='a@b'><forwarded xmlns='urn:xmpp:forward:0'>"
        b"<message xmlns='jabber:client' from='c@d'><body>inner</body></message>"
        b"</forwarded></message>"
    )
    for data in (
        frame,
        frame.replace(
            b"<message xmlns='jabber:client' to='a@b'>",
            b"<message to='a@b' xmlns='jabber:client'>",
            1,
        ),
    ):
        stream = ws()
        stream.receive(OPEN)
        stream.open("localhost")
        (event,) = stream.receive(data)
        assert isinstance(event, StanzaReceived)
        inner = event.element.find("{urn:xmpp:forward:0}forwarded")
        assert inner is not None and inner[0].tag == "{jabber:client}message"


def test_a_declaration_inside_an_attribute_value_is_left_alone() -> None:
    stream = ws()
    stream.receive(OPEN)
    stream.open("localhost")
    (event,) = stream.receive(
        b"<message xmlns='jabber:client' id=\"a xmlns='jabber:client'\"><body/></message>"
    )
    assert isinstance(event, StanzaReceived)
    assert event.element.get("id") == "a xmlns='jabber:client'"
