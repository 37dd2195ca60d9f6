"""Fault injection (``server.faults``): what a client must survive, on demand.

- ``close_streams(jid, condition, text)``: a stream error to the account's streams;
  ``see_other_host(jid, address)``: RFC 6120's redirect (RFC 7395's ``see-other-uri`` on
  WebSocket).
- ``server.restart()`` keeps the data and the ports; ``restart(kill=True)`` drops every
  connection without a goodbye first, as a crash would.
- ``delay_reply(id, seconds)`` and ``drop_reply(id)``: the server's answer to the stanza with
  that id (an IQ result or error, a message error…), held for ``seconds`` of the server's
  clock (so a frozen clock holds it until advanced) or never sent.
- ``fail_next_write()``: the next storage transaction fails as a full disk would
  (``sqlite3.OperationalError``), and the one after works again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape, quoteattr

from lxml import etree

from minixmpp.jid import JID
from minixmpp.testing.traffic import covers

if TYPE_CHECKING:
    from minixmpp.connection import Connection
    from minixmpp.session import Session
    from minixmpp.testing.server import XmppServer

NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"


@dataclass
class _Rule:
    id: str
    jid: str | None
    delay: float | None  # None: drop


class Faults:
    def __init__(self, server: XmppServer) -> None:
        self._owner = server
        self._rules: list[_Rule] = []
        self._failing_writes = 0
        self._real_transaction: Any = None

    def clear(self) -> None:
        """No fault pending any more (a reset does this)."""
        self._rules.clear()
        if self._owner._server is not None:
            self._owner.server.intercept = None
            self._unpatch()
        self._failing_writes = 0

    def _sessions(self, jid: str) -> list[Session]:
        parsed = JID.parse(jid)
        host = self._owner.server.hosts[parsed.domain]
        if parsed.node is None:
            raise ValueError("a user's JID is needed")
        sessions = host.sessions.of_user(parsed.node)
        return [s for s in sessions if parsed.resource is None or s.resource == parsed.resource]

    # -- streams --------------------------------------------------------------------------

    def close_streams(self, jid: str, condition: str = "reset", text: str | None = None) -> int:
        """Close the streams of ``jid`` (bare: every resource) with a stream error; how many."""
        sessions = self._sessions(str(jid))
        for session in sessions:
            session.close(condition, text)
        return len(sessions)

    def see_other_host(self, jid: str, address: str) -> int:
        """Send ``jid``'s streams elsewhere: ``<see-other-host>address</see-other-host>``
        (``host``, ``host:port`` or ``[v6]:port``; on WebSocket, ``see-other-uri``, so give
        a ``ws://`` or ``wss://`` URL there)."""
        sessions = self._sessions(str(jid))
        for session in sessions:
            conn: Any = getattr(session, "link", None)  # a client's connection
            if conn is None:
                continue
            if conn.kind == "websocket":
                conn.write(
                    f"<close xmlns='{NS_FRAMING}' see-other-uri={quoteattr(address)}/>".encode()
                )
            else:
                conn.write(
                    f"<stream:error><see-other-host xmlns='{NS_STREAMS}'>{escape(address)}"
                    "</see-other-host></stream:error>".encode()
                )
            conn.close()
        return len(sessions)

    # -- replies --------------------------------------------------------------------------

    def delay_reply(self, id: str, seconds: float, *, jid: str | None = None) -> None:
        """Hold the server's next element with this ``id`` (to ``jid``'s streams, or any)
        for ``seconds`` of the server's clock."""
        self._add(_Rule(id, jid, seconds))

    def drop_reply(self, id: str, *, jid: str | None = None) -> None:
        """Never send the server's next element with this ``id``."""
        self._add(_Rule(id, jid, None))

    def _add(self, rule: _Rule) -> None:
        self._rules.append(rule)
        self._owner.server.intercept = self._intercept

    def _intercept(self, conn: Connection, element: etree._Element) -> bool:
        id = element.get("id")
        if id is None:
            return False
        for rule in self._rules:
            if rule.id != id:
                continue
            if rule.jid is not None and not covers(rule.jid, conn.session.jid.full):
                continue
            self._rules.remove(rule)
            if not self._rules:
                self._owner.server.intercept = None
            if rule.delay is not None:
                self._owner.server.clock.call_later(rule.delay, conn.send_element, element)
            return True
        return False

    # -- storage --------------------------------------------------------------------------

    def fail_next_write(self, count: int = 1) -> None:
        """The next ``count`` storage transactions fail (``sqlite3.OperationalError``)."""
        storage: Any = self._owner.server.storage
        self._failing_writes += count
        if self._real_transaction is None:
            self._real_transaction = storage.transaction
            storage.transaction = self._transaction

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Any]:
        if self._failing_writes > 0:
            self._failing_writes -= 1
            if self._failing_writes == 0:
                self._unpatch()
            raise sqlite3.OperationalError("database or disk is full (injected by the test)")
        async with self._real_transaction() as tx:
            yield tx

    def _unpatch(self) -> None:
        storage: Any = self._owner.server.storage
        if self._real_transaction is not None:
            del storage.transaction  # the class's method again
            self._real_transaction = None
