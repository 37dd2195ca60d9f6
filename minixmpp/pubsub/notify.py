"""Event notifications (XEP-0060 §7.1.2, §7.2.2, §8.4, §8.5): the messages a service sends
its subscribers, as Prosody builds them (one id per broadcast, ``headline`` unless the node's
``notification_type`` says ``normal``)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from lxml import etree

from minixmpp.pubsub.store import Item
from minixmpp.xml import stanza as st

NS_EVENT = "http://jabber.org/protocol/pubsub#event"
NS_ATOM = "http://www.w3.org/2005/Atom"


def event_message(
    service: str,
    kind: str,
    node: str,
    config: Mapping[str, Any],
    child: etree._Element | None = None,
) -> etree._Element:
    """``<message from=service><event><kind node=…>child</kind></event></message>``, with no
    ``to`` yet. ``kind`` is ``items`` (``child``: an ``<item/>`` or ``<retract/>``),
    ``purge`` or ``delete``."""
    message = st.message(
        from_=service,
        type=config.get("notification_type") or "headline",
        id=secrets.token_urlsafe(18),
    )
    event = st.sub(message, f"{{{NS_EVENT}}}event")
    container = st.sub(event, f"{{{NS_EVENT}}}{kind}", {"node": node})
    if child is not None:
        container.append(child)
    return message


def event_item(
    kind: str, item: Item, config: Mapping[str, Any], *, publisher: bool
) -> etree._Element:
    """What an ``items`` event carries: ``<retract id/>``, or the ``<item/>`` (without its
    payload when the node does not deliver payloads)."""
    if kind == "retract":
        return st.element(f"{{{NS_EVENT}}}retract", {"id": item.id})
    child = item.element(NS_EVENT, publisher=publisher)
    if not config.get("include_payload", True):
        for payload in list(child):
            child.remove(payload)
    return child


def wanted(kind: str, config: Mapping[str, Any]) -> bool:
    """Whether the node's configuration lets ``kind`` of event go out (Prosody's
    ``notify_<kind>``: ``notify_items`` is ``pubsub#deliver_notifications``)."""
    return config.get(f"notify_{kind}") is not False


def atom_summary(payload: etree._Element) -> str | None:
    """The text body of an Atom entry, for subscribers who asked for one (Prosody's template:
    the summary, or "<author> posted <title>", or the title)."""
    if payload.tag != f"{{{NS_ATOM}}}entry":
        return None
    summary = payload.findtext(f"{{{NS_ATOM}}}summary")
    if summary:
        return summary
    title = payload.findtext(f"{{{NS_ATOM}}}title") or ""
    author = payload.findtext(f"{{{NS_ATOM}}}author/{{{NS_ATOM}}}name")
    text = f"{author} posted {title}" if author else title
    return text or None
