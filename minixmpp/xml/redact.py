"""Stanzas fit for a log: no passwords, SASL payloads or whole tokens.

Works on the parsed element, never on raw bytes: how the XML was written (quotes, spaces,
CDATA, prefixes, a read split in two) cannot hide a secret from it. What a secret looks like
beyond passwords and SASL is the modules' business: each gives the patterns of its own
(``module.add_log_secret``, e.g. mod_invites' tokens), and any text matching one is cut wherever
it is (an attribute, a URI, a message body), keeping the pattern's first group.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence

from lxml import etree

from minixmpp.xml import stanza as st
from minixmpp.xml.dataforms import NS_DATA

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_SASL2 = "urn:xmpp:sasl:2"
SASL2_PAYLOADS = frozenset({"initial-response", "challenge", "response", "additional-data"})
HIDDEN = "[redacted]"


def _cut(text: str, patterns: Sequence[re.Pattern[str]]) -> str:
    for pattern in patterns:
        text = pattern.sub(r"\1…", text)
    return text


def _secret(el: etree._Element) -> bool:
    """An element whose whole text is secret."""
    qname = etree.QName(el)
    if qname.namespace == NS_SASL:  # auth, response, challenge, success: SASL payloads
        return True
    if qname.namespace == NS_SASL2 and qname.localname in SASL2_PAYLOADS:  # XEP-0388
        return True
    if qname.localname == "password":  # jabber:iq:register and any other
        return True
    if qname.namespace == NS_DATA and qname.localname == "value":
        field = el.getparent()
        if field is not None:
            var = (field.get("var") or "").lower()
            return field.get("type") == "text-private" or "password" in var
    return False


def for_log(element: etree._Element, patterns: Sequence[re.Pattern[str]] = ()) -> bytes:
    """``element`` serialised with its secrets cut out (a copy: the element is not changed):
    passwords and SASL payloads (SASL2's too), and text matching ``patterns``."""
    clean = copy.deepcopy(element)
    secrets = []
    for el in clean.iter(tag=etree.Element):  # the parser keeps no comments or PIs
        if patterns:
            for name, value in el.attrib.items():
                el.set(name, _cut(str(value), patterns))
            if el.text:
                el.text = _cut(el.text, patterns)
            if el.tail:
                el.tail = _cut(el.tail, patterns)
        if _secret(el):
            secrets.append(el)
    for el in secrets:
        had_content = bool(el.text) or len(el) > 0
        for child in list(el):
            el.remove(child)
        el.text = HIDDEN if had_content else None
    return st.tostring(clean)
