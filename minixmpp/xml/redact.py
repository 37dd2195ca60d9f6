"""Stanzas fit for a log: no passwords, SASL payloads or whole tokens.

Works on the parsed element, never on raw bytes: how the XML was written (quotes, spaces,
CDATA, prefixes, a read split in two) cannot hide a secret from it.
"""

from __future__ import annotations

import copy
import re

from lxml import etree

from minixmpp.xml import stanza as st
from minixmpp.xml.dataforms import NS_DATA

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
# An invite token: 24 base64url characters (18 random bytes). Any such run is cut, wherever it
# is (an attribute, a URI, a landing page URL, a message body): the first 4 are kept.
_TOKEN = re.compile(r"(?<![A-Za-z0-9_-])([A-Za-z0-9_-]{4})[A-Za-z0-9_-]{20}(?![A-Za-z0-9_-])")
HIDDEN = "[redacted]"


def _cut_tokens(text: str) -> str:
    return _TOKEN.sub(r"\1…", text)


def _secret(el: etree._Element) -> bool:
    """An element whose whole text is secret."""
    qname = etree.QName(el)
    if qname.namespace == NS_SASL:  # auth, response, challenge, success: SASL payloads
        return True
    if qname.localname == "password":  # jabber:iq:register and any other
        return True
    if qname.namespace == NS_DATA and qname.localname == "value":
        field = el.getparent()
        if field is not None:
            var = (field.get("var") or "").lower()
            return field.get("type") == "text-private" or "password" in var
    return False


def for_log(element: etree._Element) -> bytes:
    """``element`` serialised with its secrets cut out (a copy: the element is not changed)."""
    clean = copy.deepcopy(element)
    secrets = []
    for el in clean.iter(tag=etree.Element):  # the parser keeps no comments or PIs
        for name, value in el.attrib.items():
            el.set(name, _cut_tokens(str(value)))
        if el.text:
            el.text = _cut_tokens(el.text)
        if el.tail:
            el.tail = _cut_tokens(el.tail)
        if _secret(el):
            secrets.append(el)
    for el in secrets:
        had_content = bool(el.text) or len(el) > 0
        for child in list(el):
            el.remove(child)
        el.text = HIDDEN if had_content else None
    return st.tostring(clean)
