"""What mod_mam archives (Prosody's should_store), preferences (XEP-0313 §6) in and out of
XML, and Prosody's archive_expires_after format."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree

from minixmpp.errors import ModuleError, StanzaError
from minixmpp.jid import JID, InvalidJID
from minixmpp.xml import stanza as st

NS_MAM = "urn:xmpp:mam:2"
NS_SID = "urn:xmpp:sid:0"
NS_HINTS = "urn:xmpp:hints"
STANZA_ID = f"{{{NS_SID}}}stanza-id"
MAX_PREF_JIDS = 1000  # JIDs in the always and never lists together
_CHILDREN_WORTH_KEEPING = (
    # (tag or namespace wildcard, reason): Prosody's order after the body
    ("subject", "subject"),
    ("{urn:xmpp:eme:0}encryption", "encrypted"),
    ("{urn:xmpp:receipts}*", "receipt"),
    ("{urn:xmpp:chat-markers:0}*", "marker"),
    ("{jabber:x:conference}x", "invite"),
    (
        "{http://jabber.org/protocol/muc#user}x/{http://jabber.org/protocol/muc#user}invite",
        "invite",
    ),
    ("{urn:xmpp:jingle-message:0}*", "jingle call"),
    ("{urn:xmpp:jingle-message:1}*", "jingle call"),
)


def should_store(stanza: etree._Element, outgoing: bool) -> tuple[bool, str]:
    """Whether a message is archived, and why (Prosody's rules). Errors only when they come
    back to one of the user's resources (a bounce of what it sent), never the user's own."""
    kind = stanza.get("type") or "normal"
    if kind == "headline":
        return False, "headline"
    if kind == "error":
        bounce = not outgoing and "/" in (stanza.get("to") or "")
        return bounce, "bounce"
    if kind == "groupchat":
        return False, "groupchat"
    if (
        stanza.find(f"{{{NS_HINTS}}}no-store") is not None
        or stanza.find(f"{{{NS_HINTS}}}no-permanent-store") is not None
    ):
        return False, "hint"
    if stanza.find(f"{{{NS_HINTS}}}store") is not None:
        return True, "hint"
    if stanza.find("body") is not None:
        return True, "body"
    for path, why in _CHILDREN_WORTH_KEEPING:
        if stanza.find(path) is not None:
            return True, why
    return False, "default"


def strip_stanza_ids(stanza: etree._Element, user_bare: str) -> None:
    """Remove ``<stanza-id/>`` elements that claim to be from ``user_bare``'s archive: only
    the archive stamps those (XEP-0359 §3.1)."""
    for sid in stanza.findall(STANZA_ID):
        try:
            by = JID.parse(sid.get("by", ""))
        except InvalidJID:
            continue
        if by.resource is None and by.bare == user_bare:
            stanza.remove(sid)


def without_namespaces(stanza: etree._Element, namespaces: frozenset[str]) -> etree._Element | None:
    """A copy without the children in ``namespaces`` (chat states); None if none is left."""
    copy = st.keep(stanza)
    for child in list(copy):
        if isinstance(child.tag, str) and etree.QName(child).namespace in namespaces:
            copy.remove(child)
    return copy if len(copy) else None


@dataclass
class Prefs:
    """Archiving preferences: the default (always, never, roster) and JIDs always or never
    archived (bare JIDs, or full JIDs: XEP-0313 compares what is given)."""

    default: str
    always: list[str] = field(default_factory=list)
    never: list[str] = field(default_factory=list)

    def rule(self, jid: str) -> str:
        if jid in self.always:
            return "always"
        if jid in self.never:
            return "never"
        return self.default

    def element(self) -> etree._Element:
        prefs = st.element(f"{{{NS_MAM}}}prefs", {"default": self.default})
        for name, jids in (("always", self.always), ("never", self.never)):
            listing = st.sub(prefs, f"{{{NS_MAM}}}{name}")
            for jid in jids:
                st.sub(listing, f"{{{NS_MAM}}}jid", text=jid)
        return prefs

    def stored(self) -> dict[str, object]:
        return {"default": self.default, "always": self.always, "never": self.never}

    @classmethod
    def from_stored(cls, data: object, default: str) -> Prefs:
        if not isinstance(data, dict):
            return cls(default)
        return cls(
            str(data.get("default") or default),
            list(data.get("always") or []),
            list(data.get("never") or []),
        )

    @classmethod
    def from_element(cls, prefs: etree._Element, default: str) -> Prefs:
        """What a client set; JIDs that do not prepare are left out (as Prosody)."""
        chosen = prefs.get("default", default)
        if chosen not in ("always", "never", "roster"):
            raise StanzaError("bad-request", "The default must be always, never or roster")
        result = cls(chosen)
        for name, target in (("always", result.always), ("never", result.never)):
            listing = prefs.find(f"{{{NS_MAM}}}{name}")
            for el in () if listing is None else listing.iterchildren(f"{{{NS_MAM}}}jid"):
                try:
                    jid = JID.parse((el.text or "").strip()).full
                except InvalidJID:
                    continue
                if jid not in result.always and jid not in result.never:
                    target.append(jid)
        if len(result.always) + len(result.never) > MAX_PREF_JIDS:
            raise StanzaError("not-acceptable", f"Preferences are limited to {MAX_PREF_JIDS} JIDs")
        return result


_PERIOD = re.compile(r"(\d+)\s*([dwmy]?)")
_UNITS = {"": 1.0, "d": 86400.0, "w": 7 * 86400.0, "m": 31 * 86400.0, "y": 365.2425 * 86400.0}


def expiry_seconds(value: str | int) -> float | None:
    """Prosody's archive_expires_after: "never", seconds, or a number with d, w, m (31 days)
    or y; None for never."""
    if isinstance(value, int):
        return float(value)
    text = value.strip().lower()
    if text == "never":
        return None
    found = _PERIOD.fullmatch(text)
    if found is None:
        raise ModuleError(f'archive_expires_after: cannot read {value!r} (e.g. "1w", "never")')
    return int(found.group(1)) * _UNITS[found.group(2)]


def default_policy(value: bool | str) -> str:
    """Prosody's default_archive_policy (true, false or "roster") as a prefs default."""
    if value is True:
        return "always"
    if value is False:
        return "never"
    if value == "roster":
        return "roster"
    raise ModuleError(f'default_archive_policy: {value!r} is not true, false or "roster"')
