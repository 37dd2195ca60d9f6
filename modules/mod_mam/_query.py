"""An archive query (XEP-0313 §4 with XEP-0059 paging) read from its IQ, and the query form.

Prosody's reading: the form's FORM_TYPE must be ``urn:xmpp:mam:2``; ``with`` is compared as a
bare JID; RSM ``<before/>`` (empty: the last page) pages backwards, ``<before>ID``/``<after>ID``
take precedence over the form's ``before-id``/``after-id``; ``<flip-page/>`` reverses the order
of a page; at most ``max_archive_query_results`` items a page (20 unless ``<max/>`` says).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from lxml import etree

from minixmpp.errors import StanzaError
from minixmpp.jid import JID, InvalidJID
from minixmpp.xml import dataforms as df

NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"
DEFAULT_MAX = 20


@dataclass
class Query:
    queryid: str | None
    with_: str | None = None
    start: float | None = None
    end: float | None = None
    before: str | None = None
    after: str | None = None
    ids: list[str] | None = None
    max: int = DEFAULT_MAX
    reverse: bool = False  # RSM <before/>: newest first from the store
    flip: bool = False  # the page is sent in the other order than it was read


def query_form() -> etree._Element:
    """The form of ``iq-get`` (Prosody 0.12's, with the extended fields)."""
    time = "xs:dateTime"
    return df.Form(
        fields=[
            df.hidden("FORM_TYPE", NS_MAM),
            df.Field("with", "jid-single"),
            df.Field("start", datatype=time),
            df.Field("end", datatype=time),
            df.Field("before-id"),
            df.Field("after-id"),
            df.Field("ids", "list-multi"),
        ]
    ).element()


def parse_time(text: str) -> float:
    """An XEP-0082 dateTime (no zone: UTC) as Unix time."""
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise StanzaError("bad-request", "invalid timestamp") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def parse(query: etree._Element, max_results: int) -> Query:
    q = Query(query.get("queryid"))
    x = query.find(f"{{{df.NS_DATA}}}x")
    if x is not None:
        values = df.submitted(x)
        if df.first(values, "FORM_TYPE") != NS_MAM:
            raise StanzaError("bad-request", f"Unexpected FORM_TYPE, expected '{NS_MAM}'")
        with_ = df.first(values, "with")
        if with_ is not None:
            try:
                q.with_ = JID.parse(with_.strip()).bare
            except InvalidJID:
                raise StanzaError("bad-request", f"Invalid JID: {with_}") from None
        for name in ("start", "end"):
            text = df.first(values, name)
            if text is not None:
                setattr(q, name, parse_time(text))
        q.before = df.first(values, "before-id")
        q.after = df.first(values, "after-id")
        if "ids" in values:
            q.ids = [v for v in values["ids"] if v]
    rsm = query.find(f"{{{NS_RSM}}}set")
    if rsm is not None and len(rsm):
        text = rsm.findtext(f"{{{NS_RSM}}}max")
        if text is not None:
            try:
                q.max = int(text.strip())
            except ValueError:
                raise StanzaError("bad-request", "Invalid RSM max") from None
            if q.max < 0:
                raise StanzaError("bad-request", "Invalid RSM max")
        before = rsm.find(f"{{{NS_RSM}}}before")
        if before is not None:
            q.reverse = True
            if before.text:
                q.before = before.text
        after = rsm.findtext(f"{{{NS_RSM}}}after")
        if after:
            q.after = after
    q.max = min(q.max, max_results)
    q.flip = q.reverse != (query.find(f"{{{NS_MAM}}}flip-page") is not None)
    return q
