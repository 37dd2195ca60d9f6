"""Result Set Management (XEP-0059): the ``<set/>`` a request may carry, and the one a page
of results ends with."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from minixmpp.errors import StanzaError
from minixmpp.xml import stanza as st

NS_RSM = "http://jabber.org/protocol/rsm"
SET = f"{{{NS_RSM}}}set"


@dataclass(frozen=True)
class Request:
    max: int | None = None
    after: str | None = None
    before: str | None = None  # "" (an empty <before/>): the last page
    index: int | None = None


def parse(el: etree._Element | None) -> Request | None:
    """The request in ``el`` (a ``<set/>``), None without one; bad-request if malformed."""
    if el is None:
        return None

    def number(name: str) -> int | None:
        text = el.findtext(f"{{{NS_RSM}}}{name}")
        if text is None:
            return None
        text = text.strip()
        if not text.isdigit() or len(text) > 9:
            raise StanzaError("bad-request", f"RSM <{name}/> must be a non-negative integer")
        return int(text)

    before = el.find(f"{{{NS_RSM}}}before")
    after = el.findtext(f"{{{NS_RSM}}}after")
    if after is not None and not after:
        raise StanzaError("bad-request", "RSM <after/> must name an item")
    return Request(
        max=number("max"),
        after=after,
        before=None if before is None else (before.text or ""),
        index=number("index"),
    )


def result(first: str | None, last: str | None, count: int, index: int | None) -> etree._Element:
    """The ``<set/>`` that describes a page: its first and last item and the whole count."""
    out = st.element(SET)
    if first is not None:
        st.sub(out, f"{{{NS_RSM}}}first", {"index": None if index is None else str(index)}, first)
        st.sub(out, f"{{{NS_RSM}}}last", text=last)
    st.sub(out, f"{{{NS_RSM}}}count", text=str(count))
    return out
