"""What the server received and sent, per stream, and the domain events it fired: the test
harness's log, queryable while a test runs and written out as a transcript when it fails.

Every element in (redacted as for logs: no passwords or SASL payloads) and every write out is
a ``Record``, in order, with the stream it belongs to and that stream's JID at the time.
Matchers select records: a tag name (``"message"``, ``"iq"``), a callable taking the record,
and attribute values (``type="chat"``, ``id="x"``); ``from_`` stands for ``from``.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from lxml import etree

if TYPE_CHECKING:
    from minixmpp.connection import Connection

log = logging.getLogger("minixmpp.testing")
NS_CLIENT = "jabber:client"
_WRAP_START = b"<w xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)

Matcher = str | Callable[["Record"], bool] | None


@dataclass(eq=False)
class Record:
    """One element in or out: ``incoming`` is from the client to the server."""

    seq: int
    at: float  # the server's clock (monotonic)
    stream: int  # the connection's number, stable for its life
    jid: str | None  # its session's JID then (full once bound, bare once authenticated)
    incoming: bool
    data: bytes
    _element: etree._Element | None = field(default=None, repr=False)
    _parsed: bool = field(default=False, repr=False)

    @property
    def element(self) -> etree._Element | None:
        """The element, parsed (in the ``jabber:client`` namespace as clients see it); None
        for what is not one whole element (a stream header, the closing tag)."""
        if not self._parsed:
            self._parsed = True
            try:
                wrapper = etree.fromstring(_WRAP_START + self.data + b"</w>", _PARSER)
            except etree.XMLSyntaxError:
                wrapper = None
            if wrapper is not None and len(wrapper) == 1:
                self._element = wrapper[0]
        return self._element

    @property
    def tag(self) -> str | None:
        """The local name of the element (``message``, ``iq``, ``features``…)."""
        element = self.element
        return None if element is None else etree.QName(element).localname

    def get(self, name: str, default: str | None = None) -> str | None:
        element = self.element
        return default if element is None else element.get(name, default)

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")

    def matches(self, matcher: Matcher = None, **attrs: str | None) -> bool:
        if isinstance(matcher, str):
            if self.tag != matcher:
                return False
        elif matcher is not None and not matcher(self):
            return False
        return all(self.get(name.rstrip("_")) == value for name, value in attrs.items())


def _detached(payload: Any) -> Any:
    """An event's payload as the log keeps it: a dataclass's fields (attributes, as on the
    payload), with sessions replaced by their JIDs, so the log keeps no session alive."""
    if not dataclasses.is_dataclass(payload) or isinstance(payload, type):
        return payload
    fields = {}
    for f in dataclasses.fields(payload):
        value = getattr(payload, f.name)
        if hasattr(value, "jid") and hasattr(value, "send"):  # a session
            value = value.jid.full
        fields[f.name] = value
    return SimpleNamespace(**fields)


def match(tag: str | None = None, **attrs: str | None) -> Callable[[Record], bool]:
    """A matcher: elements named ``tag`` (any, when None) with these attribute values
    (``from_`` for ``from``); for ``wait_for``, where a bare string names an event."""
    return lambda record: record.matches(tag, **attrs)


def covers(jid: str, full: str | None) -> bool:
    """``jid`` names the stream whose JID is ``full``: the same JID, or its bare JID (a bare
    JID covers every resource)."""
    if full is None:
        return False
    return full == jid or ("/" not in jid and full.split("/", 1)[0] == jid)


def belongs(record: Record, jid: str) -> bool:
    """``record`` is of ``jid``'s streams (a bare JID: any resource)."""
    return covers(jid, record.jid)


@dataclass(frozen=True)
class Mark:
    """A point in the log: queries and waits ``since`` it see only what came after."""

    records: int  # the sequence number of the next record
    events: int  # the number of events fired before


LIMIT = 200_000  # records kept: past it, the oldest half is dropped (a long-running testserver)


class TrafficLog:
    """The log (``server.traffic``). Queries take a JID (bare: all its resources) and a
    matcher; ``since`` a ``mark()`` (default: the last ``clear()``, i.e. the start or the last
    reset)."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.events: list[tuple[str, str, Any]] = []  # (host, name, payload)
        self._events_dropped = 0
        self._next = 0
        self._streams: dict[int, int] = {}  # id(connection) -> its number
        self._numbers = itertools.count(1)
        self._base = Mark(0, 0)
        self.changed: list[Callable[[], None]] = []  # called after each new record or event
        self.clock: Callable[[], float] = lambda: 0.0

    # -- recording (the server's wiretap and event tap) ------------------------------------

    def tap(self, conn: Connection, incoming: bool, data: bytes | str) -> None:
        number = self._streams.get(id(conn))
        if number is None:
            number = self._streams[id(conn)] = next(self._numbers)
        session = conn.session
        jid = session.jid.full if session.username is not None else None
        raw = data.encode() if isinstance(data, str) else data
        self.records.append(Record(self._next, self.clock(), number, jid, incoming, raw))
        self._next += 1
        if len(self.records) > LIMIT:
            del self.records[: LIMIT // 2]
        self._notify()

    def event_tap(self, host: str) -> Callable[[str, Any], None]:
        def tap(name: str, payload: Any) -> None:
            try:
                self.events.append((host, name, _detached(payload)))
            except Exception:  # the log must never break the server
                log.exception("the test harness could not record event %s", name)
                return
            if len(self.events) > LIMIT:
                del self.events[: LIMIT // 2]
                self._events_dropped += LIMIT // 2
            self._notify()

        return tap

    def _notify(self) -> None:
        for callback in self.changed:
            callback()

    def forget_stream(self, conn: Connection) -> None:
        self._streams.pop(id(conn), None)

    # -- querying -------------------------------------------------------------------------

    def mark(self) -> Mark:
        return Mark(self._next, self._events_dropped + len(self.events))

    def clear(self) -> None:
        """Forget everything so far (a reset does)."""
        self.records.clear()
        self._events_dropped += len(self.events)
        self.events.clear()
        self._streams.clear()
        self._base = self.mark()

    def _since(self, since: Mark | None) -> list[Record]:
        first = (since or self._base).records
        return self.records[bisect.bisect_left(self.records, first, key=lambda r: r.seq) :]

    def received_by(
        self, jid: str, matcher: Matcher = None, *, since: Mark | None = None, **attrs: str | None
    ) -> list[Record]:
        """What the server sent to ``jid``'s streams."""
        return [
            r
            for r in self._since(since)
            if not r.incoming and belongs(r, jid) and r.matches(matcher, **attrs)
        ]

    def sent_by(
        self, jid: str, matcher: Matcher = None, *, since: Mark | None = None, **attrs: str | None
    ) -> list[Record]:
        """What ``jid``'s streams sent to the server."""
        return [
            r
            for r in self._since(since)
            if r.incoming and belongs(r, jid) and r.matches(matcher, **attrs)
        ]

    def find(
        self, matcher: Matcher = None, *, since: Mark | None = None, **attrs: str | None
    ) -> list[Record]:
        """Every record, either way, of every stream, that matches."""
        return [r for r in self._since(since) if r.matches(matcher, **attrs)]

    def events_named(self, name: str, *, since: Mark | None = None) -> list[Any]:
        """The payloads of the events ``name`` fired (on any host)."""
        start = max(0, (since or self._base).events - self._events_dropped)
        return [payload for _, n, payload in self.events[start:] if n == name]

    def transcript(self, jid: str | None = None, *, since: Mark | None = None) -> str:
        """Every stream's exchange, as text: one line per element, ``C:`` what the client
        sent, ``S:`` what the server sent (``jid``: only that account's streams)."""
        lines = []
        for r in self._since(since):
            if jid is not None and not belongs(r, jid):
                continue
            who = r.jid or "unauthenticated"
            arrow = "C:" if r.incoming else "S:"
            lines.append(f"[{r.at:.3f}] stream {r.stream} ({who}) {arrow} {r.text}")
        return "\n".join(lines) + ("\n" if lines else "")
