"""Entity capabilities (XEP-0115) as PEP needs them: which nodes a client wants notifications
for (its ``<node>+notify`` features), known from the caps in its presence.

A caps hash seen for the first time is resolved by asking the client (disco#info to its full
JID on ``node#ver``, as Prosody does, with Prosody's id ``disco``). An answer whose hash checks
out (``verify``) is cached for everyone who advertises the same hash; an answer that does not
(a legacy ``ext`` client, or one that lies) serves that client alone. The cache is bounded by
entries (``pep_info_cache_size``) and by the node names it holds (``MAX_CACHED_NAMES``), and
each answer by ``MAX_NOTIFY`` names, so no client can grow it without bound; questions waiting
for an answer are bounded too (``MAX_PENDING``), the oldest forgotten first.
"""

from __future__ import annotations

import base64
import hashlib
from collections import OrderedDict
from dataclasses import dataclass

from lxml import etree

NS_CAPS = "http://jabber.org/protocol/caps"
NS_INFO = "http://jabber.org/protocol/disco#info"
NS_DATA = "jabber:x:data"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
ALGORITHMS = {"sha-1": "sha1", "sha-224": "sha224", "sha-256": "sha256", "sha-384": "sha384"}
ALGORITHMS["sha-512"] = "sha512"
MAX_NOTIFY = 256  # +notify features taken from one answer
MAX_CACHED_NAMES = 200_000  # node names held by the whole cache
MAX_PENDING = 10_000  # disco#info questions waiting for an answer

Nodes = frozenset[str]


@dataclass(frozen=True, slots=True)
class Caps:
    """What a presence's ``<c/>`` says: ``key`` names it in the cache."""

    key: str
    node: str  # the disco#info node to ask: node#ver
    ver: str
    algorithm: str | None  # None: legacy caps (no hash attribute), never verified


def caps_of(presence: etree._Element) -> Caps | None:
    c = presence.find(f"{{{NS_CAPS}}}c")
    if c is None:
        return None
    node, ver, algorithm = c.get("node"), c.get("ver"), c.get("hash")
    if not node or not ver or len(node) + len(ver) > 1024:
        return None
    if algorithm is None:
        ext = c.get("ext") or ""
        return Caps(f"{node}#{ver}#{ext}"[:2048], f"{node}#{ver}", ver, None)
    if algorithm not in ALGORITHMS:
        return None
    return Caps(f"{algorithm}:{ver}", f"{node}#{ver}", ver, algorithm)


def verification_string(query: etree._Element) -> str:
    """XEP-0115 §5.1: identities, features, then extended forms, each sorted."""
    identities = sorted(
        "/".join((i.get("category", ""), i.get("type", ""), i.get(XML_LANG, ""), i.get("name", "")))
        for i in query.iterchildren(f"{{{NS_INFO}}}identity")
    )
    features = sorted(f.get("var", "") for f in query.iterchildren(f"{{{NS_INFO}}}feature"))
    parts = [f"{i}<" for i in identities] + [f"{f}<" for f in features]
    forms = []
    for x in query.iterchildren(f"{{{NS_DATA}}}x"):
        fields: dict[str, list[str]] = {}
        for field in x.iterchildren(f"{{{NS_DATA}}}field"):
            values = [v.text or "" for v in field.iterchildren(f"{{{NS_DATA}}}value")]
            fields[field.get("var", "")] = values
        form_type = fields.pop("FORM_TYPE", [""])
        text = "".join(f"{v}<" for v in form_type)
        for var in sorted(fields):
            text += f"{var}<" + "".join(f"{v}<" for v in sorted(fields[var]))
        forms.append((form_type[0] if form_type else "", text))
    parts += [text for _, text in sorted(forms)]
    return "".join(parts)


def verify(caps: Caps, query: etree._Element) -> bool:
    """Whether ``query`` (a disco#info answer) hashes to the ``ver`` the presence gave."""
    if caps.algorithm is None:
        return False
    digest = hashlib.new(ALGORITHMS[caps.algorithm], verification_string(query).encode())
    return base64.b64encode(digest.digest()).decode() == caps.ver


def notify_nodes(query: etree._Element) -> Nodes:
    """The nodes of the ``…+notify`` features in a disco#info answer (at most MAX_NOTIFY)."""
    found: set[str] = set()
    for feature in query.iterchildren(f"{{{NS_INFO}}}feature"):
        var = feature.get("var") or ""
        if var.endswith("+notify") and len(var) > 7:
            found.add(var[:-7])
            if len(found) >= MAX_NOTIFY:
                break
    return frozenset(found)


class CapsCache:
    """Verified caps -> the nodes they want notifications for, least recently used first out;
    and the questions asked but not yet answered."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._known: OrderedDict[str, Nodes] = OrderedDict()
        self._names = 0
        self.pending: OrderedDict[tuple[str, str], Caps] = OrderedDict()

    def get(self, key: str) -> Nodes | None:
        nodes = self._known.get(key)
        if nodes is not None:
            self._known.move_to_end(key)
        return nodes

    def put(self, key: str, nodes: Nodes) -> None:
        old = self._known.pop(key, None)
        if old is not None:
            self._names -= len(old)
        self._known[key] = nodes
        self._names += len(nodes)
        while self._known and (len(self._known) > self.size or self._names > MAX_CACHED_NAMES):
            _, dropped = self._known.popitem(last=False)
            self._names -= len(dropped)

    def asked(self, owner: str, contact: str, caps: Caps) -> bool:
        """Record a question to ``contact`` for ``owner``; False if it is already waiting."""
        key = (owner, contact)
        if self.pending.get(key) == caps:
            return False
        self.pending[key] = caps
        self.pending.move_to_end(key)
        while len(self.pending) > MAX_PENDING:
            self.pending.popitem(last=False)
        return True

    def clear(self) -> None:
        self._known.clear()
        self._names = 0
        self.pending.clear()

    def answered(self, owner: str, contact: str) -> Caps | None:
        return self.pending.pop((owner, contact), None)
