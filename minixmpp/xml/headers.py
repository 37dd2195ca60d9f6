"""The header a stream's stanza parser starts from: the client's stream header as a start tag
with its prefix and declarations (each stanza is parsed as a child of it), shared between the
streams whose client headers are alike."""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from lxml import etree

# The synthetic headers made so far, by the client header's prefix and declarations. Nearly
# every client sends the same header, and each stream kept its own copy of the same bytes for
# as long as it lived; the table is bounded, a header beyond it gets bytes of its own.
_HEADERS: dict[
    tuple[str | None, tuple[tuple[str | None, str], ...]], tuple[bytes, bytes, bool]
] = {}
_MAX_HEADERS = 64


def synthetic_header(root: etree._Element) -> tuple[bytes, bytes, bool]:
    """The stanza parser's header for a stream whose header is ``root``, its end tag, and
    whether the header declares prefixes other than its own."""
    key = (root.prefix, tuple(root.nsmap.items()))
    known = _HEADERS.get(key)
    if known is not None:
        return known
    decls = "".join(
        f" xmlns:{prefix}={quoteattr(uri)}" for prefix, uri in root.nsmap.items() if prefix
    )
    made = (
        f"<{root.prefix}:stream{decls}>".encode(),
        f"</{root.prefix}:stream>".encode(),
        len([p for p in root.nsmap if p]) > 1,
    )
    if len(_HEADERS) < _MAX_HEADERS:
        _HEADERS[key] = made
    return made
