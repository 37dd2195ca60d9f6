"""Sans-I/O XMPP stream parser: ``feed(bytes) -> [StreamOpened | StanzaReceived | StreamClosed]``.

Theory of operation
-------------------
A stream is one long XML document. Parsing has two phases:

1. Header. A small byte scanner finds the end of the opening ``<stream:stream …>`` tag (skipping
   the XML declaration, refusing DOCTYPEs, comments and processing instructions outright). Those
   header bytes go to a throwaway lxml parser that checks well-formedness and gives us the
   element's namespaces and attributes (-> ``StreamOpened``).
2. Stanzas. A second lxml pull parser receives a *synthetic* header that declares the same
   prefixes but **no default namespace**, then every byte after the client's header. Stanzas in
   ``jabber:client`` therefore come out as plain ``message``/``presence``/``iq`` elements, which
   detach from the root and serialise without namespace clutter; the rest of the code works with
   Prosody-style plain tags. (A client that repeats ``xmlns='jabber:client'`` on a stanza gets that
   stanza normalised.) Each finished top-level element is detached from the root, so memory stays
   flat, and its tail text is checked and dropped.

Policy (RFC 6120 §11.1 and §4.9.3): DOCTYPE, comments, processing instructions and entity
references other than the predefined five raise ``restricted-xml``; malformed XML raises
``not-well-formed``; a non-UTF-8 encoding raises ``unsupported-encoding``; text between stanzas
other than whitespace raises ``bad-format``; a stanza larger than the size limit raises
``policy-violation``. Input is fed in slices of at most 16 KiB, so the size limit trips within one
slice of the limit however large the incoming chunk. The parser raises only ``StreamError``.
"""

from __future__ import annotations

import copy
import re
from typing import NamedTuple

from lxml import etree

from minixmpp.errors import StreamError
from minixmpp.xml.headers import synthetic_header

NS_STREAM = "http://etherx.jabber.org/streams"
NS_CLIENT = "jabber:client"
NS_XML = "http://www.w3.org/XML/1998/namespace"

_SLICE = 16 * 1024
STANZA_TOO_BIG = "<stanza-too-big xmlns='urn:xmpp:errors'/>"  # Prosody's application condition
_CLIENT_PREFIX = "{" + NS_CLIENT + "}"
_STREAM_TAG = "{" + NS_STREAM + "}stream"
_UNDECLARED_ENTITY = {26, 27}  # libxml2 XML_ERR_UNDECLARED_ENTITY / XML_WAR_UNDECLARED_ENTITY
# Namespace errors (an undeclared prefix, xmlns:xml rebound, xmlns:xmlns, an empty prefix
# declaration, a qualified attribute twice). libxml2 records them and goes on parsing: the pull
# parser only raises at close(), so they are looked up after every feed.
_NAMESPACE_ERRORS = frozenset(
    getattr(etree.ErrorTypes, name) for name in dir(etree.ErrorTypes) if name.startswith("NS_ERR_")
)
_ENCODING_RE = re.compile(rb"""encoding\s*=\s*["']([^"']*)["']""")
# A complete, well-formed prolog up to the end of the root start tag, in one C-speed match.
# Anything else (split input, errors) goes through the byte scanner, which decides.
_HEADER_RE = re.compile(
    rb"(?:\xef\xbb\xbf)?"
    rb"(?P<decl><\?xml[ \t\r\n][^?]*(?:\?(?!>)[^?]*)*\?>)?"
    rb"[ \t\r\n]*"
    rb"<(?P<name>[^!?/ \t\r\n>'\"][^ \t\r\n/>'\"]*)[^>'\"]*(?:(?:'[^']*'|\"[^\"]*\")[^>'\"]*)*>"
)
_NAME_RE = re.compile(rb"<([^?! \t\r\n/>][^ \t\r\n/>]*)")  # the root's name, not <?xml
# Stream headers are parsed whole (with a closing tag appended) by one reusable parser.
_HEADER_PARSER = etree.XMLParser(no_network=True)
_WS = b" \t\r\n"
_TAG_END_OR_QUOTE = re.compile(rb"['\">]")
_BOM = b"\xef\xbb\xbf"


class StreamOpened(NamedTuple):
    """The peer opened (or reopened) its stream."""

    to: str | None
    from_: str | None
    version: str | None
    lang: str | None
    id: str | None


class StanzaReceived(NamedTuple):
    """A complete top-level element: a stanza (plain tag) or a nonza (namespaced tag)."""

    element: etree._Element


class StreamClosed(NamedTuple):
    """The peer sent ``</stream:stream>``."""


Event = StreamOpened | StanzaReceived | StreamClosed


def _syntax_error(exc: etree.XMLSyntaxError) -> StreamError:
    if getattr(exc, "code", None) in _UNDECLARED_ENTITY:
        return StreamError("restricted-xml", "Entity references are not allowed")
    return StreamError("not-well-formed")


class StreamParser:
    """Incremental parser for one direction of one XMPP stream."""

    __slots__ = (
        "_declares_prefixes", "_end_tag", "_header", "_header_prefixes", "_in_tag", "_parser",
        "_pending", "_quote", "_root", "_scan", "_synthetic", "_tag_open", "_tag_quote",
        "_text_after", "closed", "fragments", "max_stanza_size",
    )  # fmt: skip

    def __init__(self, max_stanza_size: int = 256 * 1024, *, fragments: bool = False) -> None:
        """``fragments``: no stream header: top-level elements follow each other, each
        declaring its own namespaces (the elements of RFC 7395's WebSocket framing); they come
        out as parsed (``{jabber:client}message``), for the framing to check and normalise."""
        self.max_stanza_size = max_stanza_size
        self.fragments = fragments
        self._parser: etree.XMLPullParser | None = None
        self._root: etree._Element | None = None
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next bytes must start a new stream (RFC 6120 §4.3.3)."""
        if self._parser is not None:
            self._drop_parser()
        self._header = bytearray()
        self._scan = 0
        self._in_tag = False
        self._quote = 0
        # the stanza parser's header, kept to rebuild it after hibernate()
        self._synthetic = b"<fragments>" if self.fragments else b""
        self._end_tag = b"</fragments>" if self.fragments else b""
        self._pending = 0
        self._declares_prefixes = False  # an 'xmlns:' in the stanza being parsed (see _detach)
        self._header_prefixes = False  # the header declared prefixes other than its own
        self._tag_open = False  # the last '<' fed has not met its '>' yet
        self._tag_quote = b""  # ... and is inside this quote (an attribute value)
        self._text_after = False  # non-whitespace after the last complete tag
        self.closed = False

    def has_pending_input(self) -> bool:
        """True if any byte after the last complete element is held (the STARTTLS check).

        Unfinished tags and text sit inside libxml2 where no event shows them, so this also
        follows the last tag fed: it must be closed by a '>' outside quotes (one inside an
        attribute value does not end it), with only whitespace after it.
        """
        if self._parser is None:
            return bool(self._header.strip())
        root = self._root
        assert root is not None
        return (
            self._tag_open
            or self._text_after
            or len(root) > 0
            or bool(root.text and root.text.strip())
        )

    def hibernate(self) -> bool:
        """Free the lxml parser of an idle stream that sits between stanzas.

        It is rebuilt from the saved header when the next byte arrives. A parser is ~11 KB of C
        state per connection; most connections are idle most of the time.
        """
        if self._parser is None or self.closed or self.has_pending_input():
            return False
        self._drop_parser()
        return True

    def release(self) -> None:
        """Free the lxml parser now (the connection is over)."""
        if self._parser is not None:
            self._drop_parser()

    def _drop_parser(self) -> None:
        # An lxml pull parser and its document reference each other, so a parser that is simply
        # dropped waits for the cyclic GC. Ending its (synthetic) document breaks the cycle and
        # frees it at once.
        parser, self._parser, self._root = self._parser, None, None
        assert parser is not None
        try:
            parser.feed(self._end_tag)
            parser.close()
            for _ in parser.read_events():  # the root's queued 'end' event would keep the cycle
                pass
        except etree.XMLSyntaxError:
            pass  # the stream was broken anyway; the GC will collect this one

    @property
    def hibernating(self) -> bool:
        return self._parser is None and bool(self._synthetic)

    def feed(self, data: bytes) -> list[Event]:
        """Parse ``data``; return the events it completes. Raises StreamError."""
        if self.closed:
            return []
        if self._parser is None and self._synthetic:
            self._start_stanza_parser()
        self._follow_last_tag(data)
        events: list[Event] = []
        if self._parser is None:
            self._header += data
            end = self._find_header_end()
            if end < 0:
                if len(self._header) > self.max_stanza_size:
                    raise StreamError("policy-violation", "XML stanza is too big", STANZA_TOO_BIG)
                return events
            rest = bytes(self._header[end:])
            events.append(self._open(bytes(self._header[:end])))
            self._header = bytearray()
            data = rest
        for start in range(0, len(data), _SLICE):
            if self._feed_slice(data[start : start + _SLICE], events):
                break  # the stream has ended
        return events

    def _follow_last_tag(self, data: bytes) -> None:
        # A raw '<' only ever starts markup (attribute values cannot hold one), so only the
        # bytes after the last one need a look.
        lt = data.rfind(b"<")
        if lt >= 0:
            self._tag_open, self._tag_quote, self._text_after = True, b"", False
            data = data[lt + 1 :]
        pos = 0
        while pos < len(data):
            if self._tag_quote:
                end = data.find(self._tag_quote, pos)
                if end < 0:
                    return
                self._tag_quote = b""
                pos = end + 1
            elif self._tag_open:
                found = _TAG_END_OR_QUOTE.search(data, pos)
                if found is None:
                    return
                if found.group() == b">":
                    self._tag_open = False
                else:
                    self._tag_quote = found.group()
                pos = found.end()
            else:
                if data[pos:].strip(_WS):
                    self._text_after = True
                return

    # -- phase 1: the stream header -------------------------------------------------------

    def _find_header_end(self) -> int:
        buf = self._header
        if self._scan == 0 and bytes(buf[:2]) not in (b"\xff\xfe", b"\xfe\xff"):
            match = _HEADER_RE.match(buf)
            if match is not None:
                decl = match.group("decl")
                encoding = _ENCODING_RE.search(decl) if decl else None
                if encoding and encoding.group(1).lower() not in (b"utf-8", b"utf8"):
                    raise StreamError("unsupported-encoding")
                return match.end()
        if self._scan == 0:
            if bytes(buf[:2]) in (b"\xff\xfe", b"\xfe\xff"):
                raise StreamError("unsupported-encoding")
            if _BOM.startswith(bytes(buf[:3])) and len(buf) < 3:
                return -1  # maybe a UTF-8 byte order mark, still arriving
            if buf.startswith(_BOM):
                self._scan = 3
        i, n = self._scan, len(buf)
        while i < n:
            c = buf[i]
            if self._in_tag:  # inside the root start tag: find its '>' outside quotes
                if self._quote:
                    if c == self._quote:
                        self._quote = 0
                elif c in b"'\"":
                    self._quote = c
                elif c == 0x3E:
                    return i + 1
                i += 1
            elif c in _WS:
                i += 1
            elif c != 0x3C:
                raise StreamError("not-well-formed", "Text before the stream header")
            elif i + 1 >= n:
                break
            elif buf[i + 1] == 0x21:  # '<!': a DOCTYPE or a comment
                raise StreamError("restricted-xml", "DTDs and comments are not allowed")
            elif buf[i + 1] == 0x3F:  # '<?': the XML declaration, or a forbidden PI
                if n - i < 6:
                    break
                if not _is_xml_decl(buf[i : i + 6]):
                    raise StreamError("restricted-xml", "Processing instructions are not allowed")
                close = buf.find(b"?>", i + 2)
                if close < 0:
                    break
                m = _ENCODING_RE.search(buf, i, close)
                if m and m.group(1).lower() not in (b"utf-8", b"utf8"):
                    raise StreamError("unsupported-encoding")
                i = close + 2
            else:
                self._in_tag = True
                i += 1
        self._scan = i
        return -1

    def _open(self, header: bytes) -> StreamOpened:
        name = _NAME_RE.search(header)
        if name is None:
            raise StreamError("not-well-formed")
        self_closing = header.endswith(b"/>")
        closing = b"" if self_closing else b"</" + name.group(1) + b">"
        try:
            root = etree.fromstring(header + closing, _HEADER_PARSER)
        except etree.XMLSyntaxError as exc:
            raise _syntax_error(exc) from None
        if root.tag != _STREAM_TAG:
            raise StreamError("invalid-namespace")
        if root.nsmap.get(None) != NS_CLIENT:
            raise StreamError("invalid-namespace")
        if self_closing:  # a stream that ends as it opens
            raise StreamError("not-well-formed", "The stream header must not be self-closing")
        self._synthetic, self._end_tag, self._header_prefixes = synthetic_header(root)
        self._start_stanza_parser()
        attrs = root.attrib
        return StreamOpened(
            to=attrs.get("to"),
            from_=attrs.get("from"),
            version=attrs.get("version"),
            lang=attrs.get("{" + NS_XML + "}lang"),
            id=attrs.get("id"),
        )

    # -- phase 2: stanzas -----------------------------------------------------------------

    def _start_stanza_parser(self) -> None:
        self._parser = etree.XMLPullParser(events=("end", "comment", "pi"))
        # The parser reports no start events (they would double the work per element), so a
        # sentinel child reveals the root element, then leaves.
        ((_, sentinel),) = self._feed_lxml(self._synthetic + b"<sentinel/>")
        self._root = sentinel.getparent()
        assert self._root is not None
        self._root.remove(sentinel)

    def _feed_lxml(self, data: bytes) -> list[tuple[str, etree._Element]]:
        parser = self._parser
        assert parser is not None
        try:
            parser.feed(data)
            events = list(parser.read_events())
        except etree.XMLSyntaxError as exc:
            raise _syntax_error(exc) from None
        errors = parser.feed_error_log
        if errors and any(entry.type in _NAMESPACE_ERRORS for entry in errors):
            # e.g. <x:body> without xmlns:x: relayed, it would break the recipient's parser
            raise StreamError("not-well-formed")
        return events  # type: ignore[return-value]

    def _feed_slice(self, data: bytes, out: list[Event]) -> bool:
        """Parse one slice into ``out``; True once the stream has ended."""
        self._pending += len(data)
        if b"xmlns:" in data:
            self._declares_prefixes = True
        completed = False
        root = self._root
        assert root is not None
        for kind, el in self._feed_lxml(data):
            if kind != "end":
                raise StreamError(
                    "restricted-xml", "Comments and processing instructions are not allowed"
                )
            parent = el.getparent()
            if parent is None:
                self.closed = True
                out.append(StreamClosed())
                return True
            if parent is not root:
                continue
            if el.tag == _STREAM_TAG:
                raise StreamError("not-well-formed", "Stream header inside the stream")
            tail = el.tail
            if tail is not None:
                if tail.strip():
                    raise StreamError("bad-format", "Text is not allowed between stanzas")
                el.tail = None
            el = self._detach(root, el)
            if el.tag.startswith(_CLIENT_PREFIX) and not self.fragments:
                normalise(el)
            out.append(StanzaReceived(el))
            completed = True
        if len(root) and root[-1].tag == _STREAM_TAG:  # an unfinished one: do not wait for its end
            raise StreamError("not-well-formed", "Stream header inside the stream")
        if root.text is not None:
            if root.text.strip():
                raise StreamError("bad-format", "Text is not allowed between stanzas")
            root.text = None  # whitespace keepalives would pile up here
        if not len(root):  # no stanza in progress: the next one starts afresh
            self._declares_prefixes = False
        if completed:
            self._pending = 0
        elif self._pending > self.max_stanza_size:
            raise StreamError("policy-violation", "XML stanza is too big", STANZA_TOO_BIG)
        return False

    def _detach(self, root: etree._Element, el: etree._Element) -> etree._Element:
        """Take a finished stanza out of the stream's tree (memory stays flat).

        lxml's detaching (moveNodeToDocument) has a bug: a namespace declaration that repeats
        one of an ancestor (the stanza's own, or the header's prefixes) is dropped, and the
        elements that used it are pointed at the ancestor's declaration even where its prefix
        is shadowed; serialised, they are then written in another namespace than the server
        saw. A stanza that may be hit (one that declares a prefix, or a header with prefixes of
        its own) is copied before it is detached: the copy keeps every declaration. Other
        stanzas, nearly all, are detached as they are.
        """
        if self._declares_prefixes or self._header_prefixes:
            copied = copy.deepcopy(el)
            root.remove(el)
            return copied
        root.remove(el)
        return el


def _is_xml_decl(start: bytes | bytearray) -> bool:
    return len(start) >= 6 and start[:5] == b"<?xml" and start[5:6] in (b" ", b"\t", b"\r", b"\n")


def normalise(stanza: etree._Element) -> None:
    """Move jabber:client elements of a stanza that restated the namespace to plain tags.

    Only from the top down to the first element of another namespace: a plain tag below such an
    element would be written in that element's default namespace (``<x xmlns='urn:x'><body/>``),
    so the jabber:client elements there keep their namespace.
    """
    todo = [stanza]
    while todo:
        el = todo.pop()
        if el.tag.startswith(_CLIENT_PREFIX):
            el.tag = el.tag[len(_CLIENT_PREFIX) :]
        todo.extend(
            child
            for child in el
            if child.tag.startswith(_CLIENT_PREFIX) or not child.tag.startswith("{")
        )
    etree.cleanup_namespaces(stanza)
