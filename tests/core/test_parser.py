"""The sans-I/O stream parser, fed at every split point and with hostile input."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as s

from minixmpp.errors import StreamError
from minixmpp.xml import stanza as st
from minixmpp.xml.parser import StanzaReceived, StreamClosed, StreamOpened, StreamParser

HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client'"
    b" xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0' xml:lang='de'>"
)
BODY = (
    b"<message to='bob@localhost' type='chat'><body>hi &amp; &#x263A; bye</body></message>"
    b" \n <iq xmlns='jabber:client' type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>"
    b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>"
    b"</stream:stream>"
)
STREAM = HEADER + BODY


def describe(events: list[object]) -> list[str]:
    out = []
    for event in events:
        if isinstance(event, StanzaReceived):
            out.append(st.tostring(event.element).decode())
        else:
            out.append(repr(event))
    return out


EXPECTED = [
    "StreamOpened(to='localhost', from_=None, version='1.0', lang='de', id=None)",
    '<message to="bob@localhost" type="chat"><body>hi &amp; \u263a bye</body></message>',
    '<iq type="get" id="1"><query xmlns="jabber:iq:roster"/></iq>',
    '<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">AGEAYg==</auth>',
    "StreamClosed()",
]


def feed_all(chunks: list[bytes], limit: int = 256 * 1024) -> list[object]:
    parser = StreamParser(limit)
    events: list[object] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    return events


def test_whole_stream() -> None:
    assert describe(feed_all([STREAM])) == EXPECTED


@pytest.mark.parametrize("split", range(len(STREAM) + 1))
def test_every_split_point(split: int) -> None:
    assert describe(feed_all([STREAM[:split], STREAM[split:]])) == EXPECTED


def test_byte_at_a_time() -> None:
    assert describe(feed_all([bytes([b]) for b in STREAM])) == EXPECTED


@given(s.lists(s.integers(min_value=0, max_value=len(STREAM)), max_size=20))
def test_any_chunking(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    chunks = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)], strict=True)]
    assert describe(feed_all(chunks)) == EXPECTED


@settings(max_examples=300)
@given(s.binary(max_size=200))
def test_arbitrary_bytes_only_ever_raise_stream_errors(junk: bytes) -> None:
    parser = StreamParser(10_000)
    with contextlib.suppress(StreamError):
        parser.feed(HEADER)
        parser.feed(junk)


@settings(max_examples=300)
@given(s.binary(max_size=200))
def test_arbitrary_bytes_before_the_header(junk: bytes) -> None:
    with contextlib.suppress(StreamError):
        StreamParser(10_000).feed(junk + HEADER)


def test_stream_header_attributes() -> None:
    (opened,) = StreamParser().feed(
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
        b" to='example.com' from='juliet@example.com' version='1.0' id='x'>"
    )
    assert opened == StreamOpened("example.com", "juliet@example.com", "1.0", None, "x")


def test_other_stream_prefix_and_extra_declarations() -> None:
    events = StreamParser().feed(
        b"<s:stream xmlns='jabber:client' xmlns:s='http://etherx.jabber.org/streams'"
        b" xmlns:x='urn:x' to='h' version='1.0'><message><x:y/></message></s:stream>"
    )
    assert describe(events)[1:] == [
        '<message xmlns:x="urn:x"><x:y/></message>',
        "StreamClosed()",
    ]


def test_utf8_byte_order_mark_is_accepted() -> None:
    events = feed_all([b"\xef", b"\xbb\xbf" + HEADER])
    assert isinstance(events[0], StreamOpened)


def test_restart_with_reset() -> None:
    parser = StreamParser()
    parser.feed(HEADER + b"<presence/>")
    parser.reset()
    events = parser.feed(HEADER + b"<presence type='unavailable'/>")
    assert describe(events)[1] == '<presence type="unavailable"/>'


def test_keepalives_do_not_accumulate() -> None:
    parser = StreamParser()
    parser.feed(HEADER)
    for _ in range(10_000):
        assert parser.feed(b" ") == []
    parser.feed(b"<presence/>")
    assert parser._root is not None
    assert parser._root.text is None
    assert len(parser._root) == 0


def test_detached_stanzas_do_not_accumulate() -> None:
    parser = StreamParser()
    parser.feed(HEADER)
    for _ in range(1000):
        parser.feed(b"<message><body>x</body></message>\n")
    assert parser._root is not None
    assert len(parser._root) == 0


def reject(data: bytes, *, header: bool = True, limit: int = 256 * 1024) -> tuple[str, str | None]:
    parser = StreamParser(limit)
    with pytest.raises(StreamError) as info:
        parser.feed(HEADER + data if header else data)
    return info.value.condition, info.value.text


@pytest.mark.parametrize(
    "before",
    [
        b"<!DOCTYPE stream>",
        b"<!DOCTYPE x [<!ENTITY a 'aaaa'><!ENTITY b '&a;&a;&a;'>]>",
        b"<!-- hello -->",
        b"<?xml-stylesheet href='x'?>",
        b"<?foo bar?>",
    ],
)
def test_restricted_xml_before_the_header(before: bytes) -> None:
    assert reject(before + HEADER, header=False)[0] == "restricted-xml"


@pytest.mark.parametrize(
    "data",
    [
        b"<!-- hi -->",
        b"<?foo bar?>",
        b"<message><!-- inside --></message>",
        b"<message><body>&nbsp;</body></message>",
        b"<message><body>&lt;&custom;</body></message>",
        b"<message to='&ent;'/>",
    ],
)
def test_restricted_xml_in_the_stream(data: bytes) -> None:
    assert reject(data)[0] == "restricted-xml"


def test_doctype_inside_the_stream_is_not_well_formed() -> None:
    assert reject(b"<!DOCTYPE x>")[0] in ("restricted-xml", "not-well-formed")


@pytest.mark.parametrize(
    "data",
    [b"<message><body></message>", b"<message a='1' a='2'/>", b"<a><b></a></b>", b"</nope>"],
)
def test_malformed_xml(data: bytes) -> None:
    assert reject(data)[0] == "not-well-formed"


def test_text_between_stanzas() -> None:
    assert reject(b"<presence/>hello<presence/>")[0] == "bad-format"
    assert reject(b"hello<presence/>")[0] == "bad-format"


@pytest.mark.parametrize("chunk", [1024, 16 * 1024, 300 * 1024])
def test_oversized_stanza(chunk: int) -> None:
    parser = StreamParser(256 * 1024)
    parser.feed(HEADER)
    data = b"<message><body>" + b"x" * (300 * 1024) + b"</body></message>"
    with pytest.raises(StreamError) as info:
        for i in range(0, len(data), chunk):
            parser.feed(data[i : i + chunk])
    assert info.value.condition == "policy-violation"


def test_stanzas_just_under_the_limit_pass() -> None:
    parser = StreamParser(64 * 1024)
    parser.feed(HEADER)
    stanza = b"<message><body>" + b"x" * (40 * 1024) + b"</body></message>"
    for _ in range(10):  # many of them, in one chunk and in pieces: the count is per stanza
        assert len(parser.feed(stanza * 3)) == 3


def test_oversized_header() -> None:
    assert reject(b"<stream:stream " + b"x" * 20000, header=False, limit=10000)[0] == (
        "policy-violation"
    )


@pytest.mark.parametrize(
    "data",
    [
        b"<?xml version='1.0' encoding='ISO-8859-1'?>" + HEADER[21:],
        b"\xff\xfe<\x00",
        b"\xfe\xff\x00<",
    ],
)
def test_unsupported_encoding(data: bytes) -> None:
    assert reject(data, header=False)[0] == "unsupported-encoding"


@pytest.mark.parametrize(
    "header",
    [
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>",
        b"<stream:stream xmlns='urn:foo' xmlns:stream='http://etherx.jabber.org/streams'>",
        b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>",
        b"<stream:stream xmlns='jabber:client' xmlns:stream='urn:wrong'>",
        b"<stream xmlns='jabber:client'>",
        b"<foo xmlns='jabber:client'/>",
    ],
)
def test_invalid_namespace(header: bytes) -> None:
    assert reject(header, header=False)[0] == "invalid-namespace"


@pytest.mark.parametrize(
    ("tail", "pending"),
    [
        (b"", False),
        (b"  \n", False),
        (b"<iq", True),
        (b"<iq type='get'", True),
        (b"<iq>", True),
        (b"hello", True),
    ],
)
def test_pending_input_after_an_element(tail: bytes, pending: bool) -> None:
    parser = StreamParser()
    parser.feed(HEADER + b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>" + tail)
    assert parser.has_pending_input() is pending


def test_nothing_after_close() -> None:
    parser = StreamParser()
    assert isinstance(parser.feed(HEADER + b"</stream:stream>")[-1], StreamClosed)
    assert parser.feed(b"<garbage") == []


# Namespaces in XML (RFC 6120 §11.3): libxml2 records these errors but goes on parsing, so a
# stanza with an undeclared prefix used to come out whole and break its recipient's parser.
NAMESPACE_ERRORS = [
    b"<message to='bob@localhost'><x:body>hi</x:body></message>",
    b"<presence type='subscribe'><x:nick/></presence>",
    b"<x:message/>",
    b"<message x:type='chat'/>",
    b"<message><body xmlns:xml='urn:not-xml'>hi</body></message>",
    b"<message><body xmlns:xmlns='urn:x'>hi</body></message>",
    b"<message><body xmlns:p='http://www.w3.org/XML/1998/namespace'/></message>",
    b"<message><body xmlns:p=''/></message>",
    b"<message><body xmlns:a='urn:u' xmlns:b='urn:u' a:x='1' b:x='2'/></message>",
    b"<message><a:b:c xmlns:a='urn:a'/></message>",
]


@pytest.mark.parametrize("data", NAMESPACE_ERRORS)
def test_namespace_errors_are_not_well_formed(data: bytes) -> None:
    assert reject(data)[0] == "not-well-formed"


@pytest.mark.parametrize("data", NAMESPACE_ERRORS[:3])
def test_namespace_errors_at_every_split_point(data: bytes) -> None:
    for split in range(1, len(data)):
        parser = StreamParser()
        parser.feed(HEADER)
        with pytest.raises(StreamError) as info:
            parser.feed(data[:split])
            parser.feed(data[split:])
        assert info.value.condition == "not-well-formed", split


def test_declared_prefixes_and_the_xml_namespace_are_fine() -> None:
    events = feed_all(
        [
            HEADER + b"<message xmlns:x='urn:x' x:a='1'><x:body xml:lang='en'>hi</x:body>"
            b"<b xmlns:y='y-is-a-relative-uri'><y:c/></b>"
            b"<d xmlns:xml='http://www.w3.org/XML/1998/namespace'/></message>"
        ]
    )
    assert len(describe(events)) == 2


@pytest.mark.parametrize(
    "data",
    [
        HEADER + b"<presence/>" + HEADER,
        HEADER + HEADER + b"<message/></stream:stream>",
        HEADER + b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/>",
        HEADER + b"<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:client'>",
    ],
)
def test_a_stream_header_inside_the_stream_is_not_well_formed(data: bytes) -> None:
    parser = StreamParser()
    with pytest.raises(StreamError) as info:
        for i in range(len(data)):  # byte by byte: refused as soon as the header is complete
            parser.feed(data[i : i + 1])
    assert info.value.condition == "not-well-formed"


@pytest.mark.parametrize(
    "header",
    [
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
        b" to='localhost' version='1.0'/>",
        b"<?xml version='1.0'?><stream:stream xmlns='jabber:client'"
        b" xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0' />",
    ],
)
def test_a_self_closing_stream_header_is_not_well_formed(header: bytes) -> None:
    assert reject(header, header=False)[0] == "not-well-formed"
    assert feed_split_rejects(header)


def feed_split_rejects(data: bytes) -> bool:
    for split in range(1, len(data)):
        parser = StreamParser()
        try:
            parser.feed(data[:split])
            parser.feed(data[split:])
        except StreamError as exc:
            if exc.condition != "not-well-formed":
                return False
        else:
            return False
    return True


def test_streams_with_other_headers_get_their_own_synthetic_header() -> None:
    """Streams share the synthetic header of an identical client header (a bounded table):
    one with another stream prefix, or other prefixes declared, must still parse as its own
    header says, also after hibernating, and also beyond the table's size."""
    for i in range(70):
        prefix = "stream" if i % 2 else f"s{i}"
        extra = f" xmlns:p{i}='urn:p{i}'" if i % 3 else ""
        header = (
            f"<{prefix}:stream xmlns='jabber:client' xmlns:{prefix}="
            f"'http://etherx.jabber.org/streams'{extra} to='localhost' version='1.0'>"
        ).encode()
        for _ in range(2):  # the second time from the table
            parser = StreamParser()
            assert isinstance(parser.feed(header)[0], StreamOpened)
            stanza = f"<message><x{i} xmlns='urn:x'/></message>".encode()
            assert parser.hibernate()
            (event,) = parser.feed(stanza)
            assert isinstance(event, StanzaReceived)
            assert event.element[0].tag == f"{{urn:x}}x{i}"
            closed = parser.feed(f"</{prefix}:stream>".encode())
            assert closed == [StreamClosed()]
