"""XEP-0060's errors: a stanza error with a pubsub-specific condition (§7, §8) inside, as
Prosody's pubsub_error_reply builds them."""

from __future__ import annotations

from minixmpp.errors import ErrorType, StanzaError
from minixmpp.xml import stanza as st

NS_ERRORS = "http://jabber.org/protocol/pubsub#errors"


def pubsub_error(
    condition: str,
    pubsub_condition: str | None = None,
    text: str | None = None,
    *,
    type: ErrorType | None = None,
    feature: str | None = None,
) -> StanzaError:
    """``condition`` (RFC 6120) with ``<pubsub_condition xmlns='…pubsub#errors'/>`` in it."""
    app = None
    if pubsub_condition is not None:
        app = st.element(f"{{{NS_ERRORS}}}{pubsub_condition}", {"feature": feature})
    return StanzaError(condition, text, type, app=app)


def nodeid_required() -> StanzaError:
    return pubsub_error("bad-request", "nodeid-required")


def invalid_jid() -> StanzaError:
    return pubsub_error("bad-request", "invalid-jid")
