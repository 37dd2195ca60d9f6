"""Free functions over lxml elements: building, replying, errors, serialising.

Stanzas use plain tags for the ``jabber:client`` namespace (``message``, ``iq``, ``body``), the
way the stream parser delivers them and the way they appear on the wire inside a c2s stream.
Payload elements carry their own namespace (``{jabber:iq:roster}query``); ``sub()`` declares it
as the default namespace so the output has no generated prefixes. Never place a plain-tag element
under a namespaced one: lxml would serialise it without ``xmlns=""``; use ``embed()``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

from lxml import etree

from minixmpp.errors import NS_STANZAS, NS_STREAMS, ErrorType, StanzaError

Element = etree._Element

NS_CLIENT = "jabber:client"
NS_DELAY = "urn:xmpp:delay"


def _nsmap(tag: str) -> Any:
    # A default-namespace map ({None: ns}); lxml-stubs wrongly types keys as str only.
    if tag.startswith("{"):
        return {None: tag[1 : tag.index("}")]}
    return None


def element(
    tag: str, attrib: Mapping[str, str | None] | None = None, text: str | None = None
) -> Element:
    """A new element; ``None``-valued attributes are left out."""
    el = etree.Element(tag, nsmap=_nsmap(tag))
    if attrib:
        for key, value in attrib.items():
            if value is not None:
                el.set(key, value)
    if text is not None:
        el.text = text
    return el


def sub(
    parent: Element,
    tag: str,
    attrib: Mapping[str, str | None] | None = None,
    text: str | None = None,
) -> Element:
    """Append and return a child element (see ``element``)."""
    nsmap = _nsmap(tag)
    if nsmap is not None and parent.nsmap.get(None) == nsmap[None]:
        nsmap = None  # inherits the parent's default namespace
    el = etree.SubElement(parent, tag, nsmap=nsmap)
    if attrib:
        for key, value in attrib.items():
            if value is not None:
                el.set(key, value)
    if text is not None:
        el.text = text
    return el


def iq(
    type: str,
    id: str,
    *,
    to: str | None = None,
    from_: str | None = None,
) -> Element:
    return element("iq", {"type": type, "id": id, "to": to, "from": from_})


def message(
    *,
    to: str | None = None,
    from_: str | None = None,
    type: str | None = None,
    id: str | None = None,
    body: str | None = None,
) -> Element:
    el = element("message", {"to": to, "from": from_, "type": type, "id": id})
    if body is not None:
        sub(el, "body", text=body)
    return el


def presence(
    *,
    to: str | None = None,
    from_: str | None = None,
    type: str | None = None,
    id: str | None = None,
) -> Element:
    return element("presence", {"to": to, "from": from_, "type": type, "id": id})


def reply(stanza: Element) -> Element:
    """An empty reply: addresses swapped, same id, ``result`` for IQs (Prosody's st.reply)."""
    a = stanza.attrib
    kind = stanza.tag
    return element(
        kind,
        {
            "id": a.get("id"),
            "type": "result" if kind == "iq" else a.get("type"),
            "to": a.get("from"),
            "from": a.get("to"),
        },
    )


def error_element(type: ErrorType, condition: str, text: str | None = None) -> Element:
    err = element("error", {"type": type})
    sub(err, f"{{{NS_STANZAS}}}{condition}")
    if text is not None:
        sub(err, f"{{{NS_STANZAS}}}text", text=text)
    return err


def error_reply(stanza: Element, error: StanzaError) -> Element:
    """The error reply to ``stanza`` (Prosody's st.error_reply: no payload is echoed)."""
    out = reply(stanza)
    out.set("type", "error")
    element = error_element(error.type, error.condition, error.text)
    if error.app is not None:
        element.append(error.app)
    out.append(element)
    for extra in error.extra:
        out.append(extra)
    return out


def stream_error(condition: str, text: str | None = None, app: str | None = None) -> bytes:
    parts = [f"<stream:error><{condition} xmlns='{NS_STREAMS}'/>"]
    if text is not None:
        parts.append(f"<text xmlns='{NS_STREAMS}'>{escape(text)}</text>")
    if app is not None:
        parts.append(app)
    parts.append("</stream:error>")
    return "".join(parts).encode()


def tostring(el: Element) -> bytes:
    """UTF-8 bytes for the wire (lxml's default would escape all non-ASCII text)."""
    return etree.tostring(el, encoding="UTF-8", xml_declaration=False)


_STORED_PARSER = etree.XMLParser(no_network=True)


def from_stored(data: bytes) -> Element | None:
    """A stanza read back from storage; ``None`` if it does not parse (e.g. stored by an older
    version that let a namespace error through): the caller drops it and goes on."""
    try:
        return etree.fromstring(data, _STORED_PARSER)
    except etree.XMLSyntaxError:
        return None


def escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&apos;")
    )


def first_child(stanza: Element) -> Element | None:
    """The first child element (IQ payload), skipping nothing: stanzas have no comments."""
    for child in stanza:
        return child
    return None


def children(el: Element, tag: str) -> Iterator[Element]:
    return el.iterchildren(tag)


def child_text(el: Element, tag: str) -> str | None:
    found = el.find(tag)
    return None if found is None else (found.text or "")


def is_error_or_result(stanza: Element) -> bool:
    t = stanza.get("type")
    return t == "error" or (t == "result" and stanza.tag == "iq")


def add_delay(stanza: Element, from_: str, stamp: str) -> Element:
    """Stamp ``stanza`` as held since ``stamp`` (XEP-0203 ``<delay/>``: ``Clock.stamp()``)."""
    return sub(stanza, f"{{{NS_DELAY}}}delay", {"from": from_, "stamp": stamp})


def keep(stanza: Element) -> Element:
    """A copy of ``stanza`` to store beyond the handler that received it.

    A parsed element keeps its whole stream parser alive (lxml documents reference their
    parser), so anything stored for long (a session's presence) must be a copy made this way.
    """
    return etree.fromstring(tostring(stanza))


def embed(stanza: Element) -> Element:
    """A copy of ``stanza`` in explicit ``jabber:client``, fit to nest in another namespace.

    Used where a stanza travels inside a namespaced wrapper (XEP-0297 forwarding).
    """
    wrapper = etree.fromstring(
        b"<w xmlns='" + NS_CLIENT.encode() + b"'>" + tostring(stanza) + b"</w>"
    )
    return copy.deepcopy(wrapper[0])
