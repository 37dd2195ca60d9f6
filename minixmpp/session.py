"""Sessions: who is on the other end of a stream, and what modules may do with them.

``Session`` is the typed interface modules see (a ``Protocol``); ``C2SSession`` is the one
implementation for clients, whatever carries them (TCP or WebSocket: see connection.py), and
``host.HostOrigin`` the one for a host itself. A session keeps identity (host, JID, whether it is
secure, authenticated, bound), per-module ``data``, and ``send``/``close``; how the stream is
negotiated is the modules' business (mod_tls, mod_saslauth, mod_bind), through the few methods
here that change a session's state, checked against ``TRANSITIONS``.

A session can outlive its connection: when the connection drops without a stream close,
``connection-lost`` fires, and a handler that returns True keeps the session bound without a
connection (hibernating, XEP-0198) until it ``attach()``es a new one or ``end()``s it, or a
new login of the same account resumes it (``take_over()``: the session moves to the newcomer's
connection). Outbound filters see every element the session is sent, before it is written; one
may change it or take it (return None); one that raises ends the stream with
internal-server-error. Inbound filters see every element the client sends, before it is
routed (XEP-0198 counts stanzas there); one may take it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from lxml import etree

from minixmpp.events import (
    CONNECTION_LOST,
    RESOURCE_UNBIND,
    STREAM_FEATURES,
    ConnectionLost,
    ResourceUnbind,
    StreamFeatures,
)
from minixmpp.jid import JID
from minixmpp.xml import stanza as st

if TYPE_CHECKING:
    from minixmpp.host import Host

log = logging.getLogger("minixmpp.session")

NS_STREAM = "http://etherx.jabber.org/streams"

Filter = Callable[[etree._Element], etree._Element | None]

TRANSITIONS: dict[str, dict[str, str]] = {
    "unauthenticated": {"authenticate": "authenticated", "end": "ended"},
    "authenticated": {"bind": "bound", "end": "ended"},
    "bound": {"detach": "hibernating", "end": "ended"},
    "hibernating": {"attach": "bound", "end": "ended"},
    "ended": {"end": "ended"},
}


class Link(Protocol):
    """What a session needs from the connection under it (connection.Connection)."""

    kind: str  # "tcp" or "websocket"

    def send_element(self, element: etree._Element) -> bool: ...
    async def drain(self) -> None: ...
    def close(
        self, condition: str | None = None, text: str | None = None, app: str | None = None
    ) -> None: ...
    def request_restart(self) -> None: ...
    def adopt(self, session: C2SSession) -> None: ...
    def send_features(self, features: etree._Element) -> bool: ...
    def authenticated(self) -> None: ...
    def ssl_object(self) -> ssl.SSLObject | ssl.SSLSocket | None: ...
    def end_point_hash(self) -> bytes | None: ...
    async def start_tls(self, context: ssl.SSLContext, proceed: etree._Element) -> bool: ...


class Session(Protocol):
    """What modules see of a session (a client's, or the host's own: ``c2s`` False)."""

    id: int
    host: str
    jid: JID
    username: str | None
    resource: str | None
    ip: str
    secure: bool
    lang: str
    data: dict[str, Any]
    presence: etree._Element | None  # the last available presence (mod_presence)
    priority: int
    filters: Filters
    auth_epoch: int  # Users.epoch when the credentials were looked up (mod_saslauth)

    @property
    def c2s(self) -> bool: ...
    @property
    def state(self) -> str: ...
    @property
    def authenticated(self) -> bool: ...
    @property
    def bound(self) -> bool: ...
    @property
    def transport(self) -> str: ...
    @property
    def tls_version(self) -> str | None: ...

    def send(self, stanza: etree._Element) -> bool: ...
    async def drain(self) -> None: ...
    def close(
        self, condition: str | None = None, text: str | None = None, app: str | None = None
    ) -> None: ...
    def channel_bindings(self) -> dict[str, bytes]: ...
    def authenticate(self, username: str, epoch: int = 0) -> None: ...
    def restart_stream(self) -> None: ...
    async def stream_features(self) -> etree._Element: ...
    def send_features(self, features: etree._Element) -> bool: ...
    def set_bound(self, resource: str) -> None: ...
    async def start_tls(self, context: ssl.SSLContext, proceed: etree._Element) -> bool: ...
    async def unbound(self) -> None: ...


class Filters:
    """Stanza filters, highest priority first: ``out`` (what the session is sent) and
    ``incoming`` (what the client sends, before the router sees it)."""

    __slots__ = ("_entries", "_in_entries", "incoming", "out")

    def __init__(self) -> None:
        # Tuples, empty ones shared: most sessions never get a filter, and two empty lists
        # were 112 bytes of every idle connection.
        self._entries: _Entries = ()
        self._in_entries: _Entries = ()
        self.out: tuple[Filter, ...] = ()
        self.incoming: tuple[Filter, ...] = ()

    def add(self, fn: Filter, priority: int = 0) -> None:
        self._entries = _insert(self._entries, fn, priority)
        self.out = tuple(f for _, _, f in self._entries)

    def remove(self, fn: Filter) -> None:
        self._entries = tuple(e for e in self._entries if e[2] is not fn)
        self.out = tuple(f for _, _, f in self._entries)

    def add_incoming(self, fn: Filter, priority: int = 0) -> None:
        self._in_entries = _insert(self._in_entries, fn, priority)
        self.incoming = tuple(f for _, _, f in self._in_entries)

    def remove_incoming(self, fn: Filter) -> None:
        self._in_entries = tuple(e for e in self._in_entries if e[2] is not fn)
        self.incoming = tuple(f for _, _, f in self._in_entries)


_Entries = tuple[tuple[int, int, Filter], ...]


def _insert(entries: _Entries, fn: Filter, priority: int) -> _Entries:
    """``entries`` and ``fn``, highest priority first, the earlier added first among equals."""
    added = [*entries, (-priority, len(entries), fn)]
    added.sort(key=lambda e: (e[0], e[1]))
    return tuple(added)


_ids = iter(range(1, 1 << 62))


class SessionLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The session's logger: records carry ``session`` (``c2s<id>``) as an extra.

    The extra mapping is made per record, only for records that are logged: a dict of its
    own held by every session was ~200 bytes of each idle connection."""

    def __init__(self, session_id: int) -> None:
        self.logger = log
        self.session_id = session_id

    @property
    def extra(self) -> dict[str, object]:  # type: ignore[override]
        return {"session": f"c2s{self.session_id}"}


class C2SSession:
    """A client's session (see the module docstring)."""

    c2s = True
    __slots__ = (
        "__weakref__", "_hosts", "_unbind_task", "auth_epoch", "data", "filters", "host", "id",
        "ip", "jid", "lang", "link", "log", "presence", "priority", "resource", "secure",
        "state", "username",
    )  # fmt: skip

    def __init__(self, hosts: dict[str, Host], link: Link, *, ip: str, secure: bool) -> None:
        self.id = next(_ids)
        self.log = SessionLog(self.id)
        self.link: Link | None = link
        self.ip = ip
        self.secure = secure
        self.host = ""
        self.jid = JID(None, "invalid")
        self.username: str | None = None
        self.resource: str | None = None
        self.auth_epoch = 0  # Users.epoch when the credentials were looked up
        self.lang = "en"
        self.data: dict[str, Any] = {}
        self.presence: etree._Element | None = None
        self.priority = 0
        self.filters = Filters()
        self.state = "unauthenticated"
        self._hosts = hosts
        self._unbind_task: asyncio.Task[Any] | None = None

    def _go(self, action: str) -> None:
        new = TRANSITIONS[self.state].get(action)
        if new is None:
            raise RuntimeError(f"c2s{self.id}: cannot {action} while {self.state}")
        self.state = new

    @property
    def authenticated(self) -> bool:
        return self.state != "unauthenticated" and self.username is not None

    @property
    def bound(self) -> bool:
        return self.state == "bound" or self.state == "hibernating"

    @property
    def transport(self) -> str:
        return self.link.kind if self.link is not None else "none"

    # -- output --------------------------------------------------------------------------

    def send(self, stanza: etree._Element) -> bool:
        """Send a stanza or stream element. False if it cannot go out (any more)."""
        for fn in self.filters.out:
            try:
                filtered = fn(stanza)
            except Exception:
                self.log.exception("an outbound filter failed")
                self.close("internal-server-error")
                return False
            if filtered is None:
                return True  # taken by the filter (dropped, or queued for later)
            stanza = filtered
        link = self.link
        return link is not None and link.send_element(stanza)

    async def drain(self) -> None:
        """Wait until everything sent so far has been handed to the socket, or the connection
        is gone. A module that sends much (a backlog) sends it in parts and waits here between
        them: a client whose unsent output grows past 4 MB is dropped."""
        if self.link is not None:
            await self.link.drain()

    def close(
        self, condition: str | None = None, text: str | None = None, app: str | None = None
    ) -> None:
        """Close the stream (with a stream error when ``condition`` is given)."""
        if self.link is not None:
            self.link.close(condition, text, app)
        else:
            self.end(text or condition)

    # -- state changes (mod_saslauth, mod_bind, and the connection) ----------------------

    def authenticate(self, username: str, epoch: int = 0) -> None:
        """SASL proved the identity (credentials looked up at ``epoch``: see Users.epoch)."""
        self._go("authenticate")
        self.username = username
        self.auth_epoch = epoch
        self.jid = JID(username, self.host)
        if self.link is not None:
            self.link.authenticated()

    def restart_stream(self) -> None:
        """The client opens a new stream once the element being handled is answered."""
        if self.link is not None:
            self.link.request_restart()

    async def stream_features(self) -> etree._Element:
        """``<stream:features/>`` as the modules make them for this session now
        (``stream-features``)."""
        features = st.element(f"{{{NS_STREAM}}}features")
        await self._hosts[self.host].events.fire(STREAM_FEATURES, StreamFeatures(self, features))
        return features

    def send_features(self, features: etree._Element) -> bool:
        """Send ``features`` (from ``stream_features``) without a stream restart, as SASL2
        does after its success (XEP-0388); they pass no filter. False if they cannot go out."""
        return self.link is not None and self.link.send_features(features)

    def set_bound(self, resource: str) -> None:
        """The resource is chosen and registered (mod_bind does that)."""
        self._go("bind")
        self.resource = resource
        self.jid = JID(self.username, self.host, resource)

    async def start_tls(self, context: ssl.SSLContext, proceed: etree._Element) -> bool:
        """Send ``proceed`` and upgrade the connection (mod_tls). False if refused or failed."""
        if self.link is None:
            return False
        if await self.link.start_tls(context, proceed):
            self.secure = True
            return True
        return False

    # -- the end, and life without a connection ------------------------------------------

    def connection_lost(self, error: str | None) -> None:
        """The connection dropped without a stream close (called by the connection)."""
        self.link = None
        if self.state != "bound":
            self.end(error or "connection closed")
            return
        host = self._hosts[self.host]
        if not host.events.has(CONNECTION_LOST):
            self.end(error or "connection closed")
            return
        self._go("detach")
        host.keep(asyncio.ensure_future(self._offer_hibernation(host, error)))

    async def _offer_hibernation(self, host: Host, error: str | None) -> None:
        try:
            kept = await host.events.fire(CONNECTION_LOST, ConnectionLost(self, error))
        except Exception:
            self.log.exception("a connection-lost handler failed")
            kept = None
        if not kept and self.state == "hibernating":
            self.end(error or "connection closed")

    def attach(self, link: Link) -> None:
        """A hibernating session continues on ``link`` (XEP-0198 resumption)."""
        self._go("attach")
        self.link = link

    def take_over(self, newcomer: C2SSession) -> None:
        """XEP-0198 resumption: this bound session (hibernating, or still on its connection)
        goes on over the connection of ``newcomer``, a new login of the same account that has
        not bound a resource; ``newcomer`` ends. The connection this session still had, if
        any, is closed with ``conflict`` (XEP-0198 §5). The session keeps its JID, presence,
        data and filters; it takes the new connection's address and security."""
        link = newcomer.link
        if (
            link is None
            or newcomer.bound
            or newcomer.username != self.username
            or newcomer.host != self.host
            or self.state not in ("bound", "hibernating")
        ):
            raise RuntimeError(f"c2s{self.id}: c2s{newcomer.id} cannot take it over")
        ip, secure, epoch = newcomer.ip, newcomer.secure, newcomer.auth_epoch
        newcomer.link = None
        newcomer.end()  # authenticated, never bound: nothing to unbind
        old = self.link
        if old is not None:
            self.link = None
            self._go("detach")
            newcomer.ip = self.ip  # what the old connection's last log line names
            old.adopt(newcomer)  # its close must not end this session
            old.close("conflict", "Replaced by new connection")
        self.ip, self.secure, self.auth_epoch = ip, secure, epoch
        self.attach(link)
        link.adopt(self)

    def end(self, error: str | None = None) -> None:
        """The session is over: unregister it and tell the modules (resource-unbind)."""
        was = self.state
        self._go("end")
        self.link = None
        if was not in ("bound", "hibernating") or not self.host:
            return
        host = self._hosts[self.host]
        host.sessions.remove(self)
        task = asyncio.ensure_future(self._unbind(host, error))
        self._unbind_task = task
        host.keep(task)

    async def _unbind(self, host: Host, error: str | None) -> None:
        try:
            await host.events.fire(RESOURCE_UNBIND, ResourceUnbind(self, error))
        except Exception:
            self.log.exception("a resource-unbind handler failed")

    async def unbound(self) -> None:
        """Wait until the modules have handled this session's end (its unavailable is out)."""
        if self._unbind_task is not None:
            await asyncio.shield(self._unbind_task)

    # -- what the connection knows ---------------------------------------------------------

    def channel_bindings(self) -> dict[str, bytes]:
        """Channel-binding data this connection can offer to SCRAM-PLUS."""
        link = self.link
        ssl_object = link.ssl_object() if link is not None and self.secure else None
        if link is None or ssl_object is None:
            return {}
        bindings = {}
        end_point = link.end_point_hash()
        if end_point is not None:
            bindings["tls-server-end-point"] = end_point
        if ssl_object.version() != "TLSv1.3":  # RFC 9266: no tls-unique on TLS 1.3
            unique = ssl_object.get_channel_binding("tls-unique")
            if unique:
                bindings["tls-unique"] = unique
        return bindings

    @property
    def tls_version(self) -> str | None:
        ssl_object = self.link.ssl_object() if self.link is not None else None
        return None if ssl_object is None else ssl_object.version()
