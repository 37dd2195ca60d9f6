"""The event bus and the catalogue of domain events (name constant beside its payload).

Handlers are ``async def``; higher priority runs first, equal priorities in hook order; the
first handler that returns something other than ``None`` stops propagation and its value is the
result of ``fire()``. A veto is an exception, not a flag.

Stanza events follow Prosody's names: ``stanza/<ns>:<name>`` and ``stanza/iq/<ns>:<name>`` on
unauthenticated streams; ``pre-<kind>/<to>`` then ``<kind>/<to>`` (kind message, presence or iq;
to full, bare, host or self) once bound; ``iq-<type>/<to>/<ns>:<name>`` for IQ payloads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from lxml import etree

    from minixmpp.jid import JID
    from minixmpp.session import Session
    from minixmpp.storage import Transaction

Handler = Callable[[Any], Awaitable[Any]]


class Origin(Protocol):
    """Where a stanza comes from: a c2s ``Session``, or a host itself (``HostOrigin``)."""

    @property
    def host(self) -> str: ...
    @property
    def jid(self) -> JID: ...
    @property
    def username(self) -> str | None: ...
    @property
    def resource(self) -> str | None: ...
    @property
    def data(self) -> dict[str, Any]: ...
    @property
    def bound(self) -> bool: ...
    @property
    def c2s(self) -> bool: ...
    @property
    def lang(self) -> str: ...

    def send(self, stanza: etree._Element) -> bool: ...


class EventBus:
    """Named events with prioritised async handlers. One bus per virtual host."""

    def __init__(self) -> None:
        self._entries: dict[str, list[tuple[int, int, Handler]]] = {}
        self._handlers: dict[str, tuple[Handler, ...]] = {}
        self._seq = 0

    def hook(self, name: str, handler: Handler, priority: int = 0) -> None:
        self._seq += 1
        entries = self._entries.setdefault(name, [])
        entries.append((-priority, self._seq, handler))
        entries.sort(key=lambda e: (e[0], e[1]))
        self._handlers[name] = tuple(h for _, _, h in entries)

    def unhook(self, name: str, handler: Handler) -> None:
        entries = [e for e in self._entries.get(name, ()) if e[2] is not handler]
        if entries:
            self._entries[name] = entries
            self._handlers[name] = tuple(h for _, _, h in entries)
        else:
            self._entries.pop(name, None)
            self._handlers.pop(name, None)

    def has(self, name: str) -> bool:
        return name in self._handlers

    def handlers(self, name: str) -> tuple[Handler, ...]:
        """The handlers of ``name`` in calling order (empty if none): lets hot paths skip the
        coroutine of ``fire()`` for events nobody listens to."""
        return self._handlers.get(name, ())

    async def fire(self, name: str, event: Any) -> Any:
        handlers = self._handlers.get(name)
        return await run_handlers(handlers, event) if handlers else None


async def run_handlers(handlers: tuple[Handler, ...], event: Any) -> Any:
    """Call ``handlers`` in order until one returns something other than None."""
    for handler in handlers:
        result = await handler(event)
        if result is not None:
            return result
    return None


# -- stanza events -------------------------------------------------------------------------


@dataclass(slots=True)
class StanzaEvent:
    """A stanza (or stream-level element) from ``session``.

    ``to`` is the prepared addressee once the router has parsed it; ``None`` when the stanza is
    for the sender's own account (no ``to``, or its bare JID, which the router then removes as
    Prosody does) or before resource binding.
    """

    session: Origin
    stanza: etree._Element
    to: JID | None = None


# A resource sent its initial presence (StanzaEvent): stored messages may be delivered now
OFFLINE_BROADCAST = "message/offline/broadcast"


# -- stream and session lifecycle -----------------------------------------------------------

STREAM_FEATURES = "stream-features"
AUTHENTICATION_SUCCESS = "authentication-success"
AUTHENTICATION_FAILURE = "authentication-failure"
RESOURCE_BIND = "resource-bind"
RESOURCE_UNBIND = "resource-unbind"


@dataclass(slots=True)
class StreamFeatures:
    """Fired when ``<stream:features/>`` is built; handlers append children to ``features``."""

    session: Session
    features: etree._Element


@dataclass(slots=True)
class SessionEvent:
    """``authentication-success``/``-failure``, ``resource-bind``: something about a session."""

    session: Session


@dataclass(slots=True)
class ResourceUnbind:
    """A bound session is going away; ``error`` says why when it was not a clean close."""

    session: Session
    error: str | None = None


# -- accounts --------------------------------------------------------------------------------

USER_CREATED = "user-created"
USER_DELETING = "user-deleting"  # before the account and its data go: read what you need
USER_DELETED = "user-deleted"
USER_PASSWORD_CHANGED = "user-password-changed"  # noqa: S105 - an event name


@dataclass(slots=True)
class UserEvent:
    """An account was created, deleted or had its password changed (by any path)."""

    username: str
    host: str
    source: str = "core"
    session: Session | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# In-band registration (mod_register), Prosody's names.
USER_REGISTERING = "user-registering"  # Registration: a handler refuses by raising StanzaError
USER_REGISTERED = "user-registered"  # UserEvent, source "register" (the module's name)
USER_DEREGISTERED = "user-deregistered"  # UserEvent: the account removed itself
# Registration: an existing account's password was reset by registering it again
USER_PASSWORD_RESET = "user-password-reset"  # noqa: S105 - an event name


@dataclass(slots=True)
class Registration:
    """An account about to be registered. Handlers of ``user-registering`` run from the highest
    priority down; one that refuses raises ``StanzaError`` (its type, condition and text go to
    the client) and no later handler runs. ``allow_reset`` names an existing account whose
    password this registration may overwrite (a password-reset invite)."""

    username: str
    password: str = field(repr=False)  # never logged
    host: str = ""
    additional: dict[str, str] = field(default_factory=dict)
    ip: str = ""
    session: Session | None = None
    allow_reset: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Run inside the transaction that creates the account or resets its password (e.g. using
    # up an invite): one that raises StanzaError undoes it all, so both happen or neither does.
    in_transaction: list[Callable[[Transaction], Awaitable[None]]] = field(default_factory=list)


# -- server lifecycle -----------------------------------------------------------------------

SERVER_STARTED = "server-started"
SERVER_STOPPING = "server-stopping"


@dataclass(slots=True)
class ServerEvent:
    host: str
