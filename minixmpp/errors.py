"""Stanza and stream errors (RFC 6120 §8.3 and §4.9), raised anywhere, converted in one place.

Code fails with ``raise StanzaError(condition, text)``; the router turns it into an error reply.
A ``StreamError`` closes the whole stream. Nothing else ever reaches the wire as an error text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from lxml import etree

NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"

ErrorType = Literal["auth", "cancel", "continue", "modify", "wait"]

# RFC 6120 §8.3.3: the usual type for each defined condition.
DEFAULT_TYPES: dict[str, ErrorType] = {
    "bad-request": "modify",
    "conflict": "cancel",
    "feature-not-implemented": "cancel",
    "forbidden": "auth",
    "gone": "cancel",
    "internal-server-error": "wait",
    "item-not-found": "cancel",
    "jid-malformed": "modify",
    "not-acceptable": "modify",
    "not-allowed": "cancel",
    "not-authorized": "auth",
    "policy-violation": "modify",
    "recipient-unavailable": "wait",
    "redirect": "modify",
    "registration-required": "auth",
    "remote-server-not-found": "cancel",
    "remote-server-timeout": "wait",
    "resource-constraint": "wait",
    "service-unavailable": "cancel",
    "subscription-required": "auth",
    "undefined-condition": "cancel",
    "unexpected-request": "wait",
}

STREAM_CONDITIONS = frozenset(
    {
        "bad-format",
        "bad-namespace-prefix",
        "conflict",
        "connection-timeout",
        "host-gone",
        "host-unknown",
        "improper-addressing",
        "internal-server-error",
        "invalid-from",
        "invalid-namespace",
        "invalid-xml",
        "not-authorized",
        "not-well-formed",
        "policy-violation",
        "remote-connection-failed",
        "reset",
        "resource-constraint",
        "restricted-xml",
        "see-other-host",
        "system-shutdown",
        "undefined-condition",
        "unsupported-encoding",
        "unsupported-feature",
        "unsupported-stanza-type",
        "unsupported-version",
    }
)


class StanzaError(Exception):
    """A stanza-level error: the router answers the offending stanza with it.

    ``app`` is an application-specific condition placed inside ``<error/>`` (XEP-0050's
    ``<bad-sessionid/>``); ``extra`` elements are appended to the error reply after
    ``<error/>`` (Prosody sends a canceled ``<command/>`` there). ``then``: a stream error to
    close the client's stream with once the reply is out (one failure too many).
    """

    def __init__(
        self,
        condition: str,
        text: str | None = None,
        type: ErrorType | None = None,
        *,
        app: etree._Element | None = None,
        extra: Sequence[etree._Element] = (),
        then: StreamError | None = None,
    ) -> None:
        if condition not in DEFAULT_TYPES:
            raise ValueError(f"unknown stanza error condition {condition!r}")
        super().__init__(condition if text is None else f"{condition}: {text}")
        self.condition = condition
        self.text = text
        self.type: ErrorType = type or DEFAULT_TYPES[condition]
        self.app = app
        self.extra = tuple(extra)
        self.then = then


class StreamError(Exception):
    """A stream-level error: the stream is closed with ``<stream:error>``.

    ``app`` is an application-specific condition element as XML text, e.g.
    ``<stanza-too-big xmlns='urn:xmpp:errors'/>``.
    """

    def __init__(self, condition: str, text: str | None = None, app: str | None = None) -> None:
        if condition not in STREAM_CONDITIONS:
            raise ValueError(f"unknown stream error condition {condition!r}")
        super().__init__(condition if text is None else f"{condition}: {text}")
        self.condition = condition
        self.text = text
        self.app = app


class ModuleError(Exception):
    """A module cannot be found, imported or loaded; the message names it and says why."""
