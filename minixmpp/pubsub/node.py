"""A node's record (what the service keeps in memory and stores), and who may do what:
Prosody's capability table per affiliation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from minixmpp.errors import StanzaError
from minixmpp.events import EventName

if TYPE_CHECKING:
    from lxml import etree

_NONE = frozenset(
    {"get_nodes", "subscribe", "unsubscribe", "get_subscription", "get_subscriptions"}
    | {"be_subscribed", "be_unsubscribed"}
)
_MEMBER = _NONE | {"get_items"}
_PUBLISHER = _MEMBER | {"publish", "retract", "get_configuration"}
CAPABILITIES: dict[str, frozenset[str]] = {
    "outcast": frozenset({"get_subscription", "get_subscriptions", "be_unsubscribed"}),
    "none": _NONE,
    "member": _MEMBER,
    "publisher": _PUBLISHER,
    "owner": _PUBLISHER
    | {"create", "delete", "configure", "set_affiliation"}
    | {"subscribe_other", "unsubscribe_other", "get_subscription_other"}
    | {"get_subscriptions_other"},
}
AFFILIATIONS = frozenset(CAPABILITIES)
MAX_NAME = 1023  # bytes of a node name or an item id
SUBSCRIPTIONS_PER_JID = 10  # subscriptions one bare JID may hold on one node (its resources)


@dataclass
class Node:
    name: str
    config: dict[str, Any]  # what was set; the service's defaults fill the rest
    subscribers: dict[str, dict[str, Any]] = field(default_factory=dict)
    affiliations: dict[str, str] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "subscribers": self.subscribers,
            "affiliations": self.affiliations,
        }


@dataclass(frozen=True, slots=True)
class NodeChange:
    """A node's items changed (``kind``: items, retract, purge) or it was deleted (delete):
    what another module keeps in step with PEP needs (the XEP-0048 bookmarks sync)."""

    service: str  # the service's JID (an account's bare JID for PEP)
    node: str
    kind: str
    item_id: str | None  # items, retract
    payload: etree._Element | None  # items: what was published (do not keep: copy it)
    actor: str | None  # who did it; None: the server itself


# Fired on the account's host by mod_pep after each change of a PEP node.
PEP_NODE_CHANGED: EventName[NodeChange] = EventName("pep-node-changed")


def bare(jid: str) -> str:
    return jid.partition("/")[0]


def check_name(name: str, what: str = "Node names") -> None:
    if len(name.encode()) > MAX_NAME:
        raise StanzaError("not-acceptable", f"{what} are limited to {MAX_NAME} bytes")
