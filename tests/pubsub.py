"""Helpers for the PubSub and PEP tests: requests over a raw client, Prosody's replies."""

from __future__ import annotations

from lxml import etree

from minixmpp.roster import RosterItem
from minixmpp.testing import TestServer
from tests.xmpp import RawClient, stanza_error
from tests.xmpp import until_pong as until_pong  # re-exported for the pubsub tests

NS = "http://jabber.org/protocol/pubsub"
NS_OWNER = f"{NS}#owner"
NS_EVENT = f"{NS}#event"
NS_ERRORS = f"{NS}#errors"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_INFO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"
NS_CAPS = "http://jabber.org/protocol/caps"

_ids = iter(range(1, 1_000_000))


async def pubsub(
    client: RawClient, body: str, *, type: str = "set", to: str | None = None, owner: bool = False
) -> etree._Element:
    """``<iq><pubsub>body</pubsub></iq>``: the reply."""
    ns = NS_OWNER if owner else NS
    return await client.iq(
        f"<pubsub xmlns='{ns}'>{body}</pubsub>", type=type, to=to, id=f"ps{next(_ids)}"
    )


def form(form_type: str, **fields: str) -> str:
    """A submitted data form; field names use ``__`` for ``#`` (``pubsub__access_model``)."""
    parts = [
        f"<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
        f"<value>{NS}#{form_type}</value></field>"
    ]
    for name, value in fields.items():
        parts.append(f"<field var='{name.replace('__', '#')}'><value>{value}</value></field>")
    parts.append("</x>")
    return "".join(parts)


def publish(node: str, payload: str, item_id: str | None = None, **options: str) -> str:
    """The body of a publish request (with ``publish-options`` when given)."""
    id_attr = f" id='{item_id}'" if item_id is not None else ""
    body = f"<publish node='{node}'><item{id_attr}>{payload}</item></publish>"
    if options:
        body += f"<publish-options>{form('publish-options', **options)}</publish-options>"
    return body


def error_of(reply: etree._Element) -> tuple[str | None, str | None, str | None, str | None]:
    """(type, condition, pubsub condition, text) of an error reply."""
    assert reply.get("type") == "error", etree.tostring(reply)
    kind, condition, text = stanza_error(reply)
    error = reply.find("error")
    assert error is not None
    app = next((etree.QName(c).localname for c in error if NS_ERRORS in str(c.tag)), None)
    return kind, condition, app, text


def item_ids(reply: etree._Element, ns: str = NS) -> list[str | None]:
    return [i.get("id") for i in reply.iter(f"{{{ns}}}item")]


def rsm_of(reply: etree._Element) -> tuple[str | None, str | None, str | None, str | None]:
    """(first, first's index, last, count) of the reply's ``<set/>``."""
    found = reply.find(f".//{{{NS_RSM}}}set")
    assert found is not None, etree.tostring(reply)
    first = found.find(f"{{{NS_RSM}}}first")
    return (
        None if first is None else first.text,
        None if first is None else first.get("index"),
        found.findtext(f"{{{NS_RSM}}}last"),
        found.findtext(f"{{{NS_RSM}}}count"),
    )


def events(stanzas: list[etree._Element]) -> list[etree._Element]:
    """The pubsub event messages among ``stanzas``."""
    return [s for s in stanzas if s.tag == "message" and s.find(f"{{{NS_EVENT}}}event") is not None]


async def contacts(srv: TestServer, a: str, b: str, subscription: str = "both") -> None:
    """``a`` has ``b`` in its roster with ``subscription``, and ``b`` has ``a`` the other way
    (written into the store, as if by the clients)."""
    rosters = srv.server.hosts["localhost"].rosters
    reverse = {"both": "both", "from": "to", "to": "from"}[subscription]
    await rosters.save("localhost", a, RosterItem(f"{b}@localhost", subscription=subscription))
    await rosters.save("localhost", b, RosterItem(f"{a}@localhost", subscription=reverse))
